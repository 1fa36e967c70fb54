//! `backend = { kind = "kubernetes", ... }`: a Deployment whose container image a deploy sets.
//!
//! ```toml
//! backend = { kind = "kubernetes", namespace = "shop", deployment = "api", container = "api", image = "ghcr.io/acme/api:{version}", timeout = "15m" }
//! # where environments differ: any of kubeconfig, context, namespace, deployment, container, image
//! backend.environments.production = { context = "prod", namespace = "shop-prod" }
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use toml::Value;

use super::super::problem::closest;
use super::super::values::Values;
use super::{BackendConfig, BackendFields};

/// The keys of a kubernetes backend.
pub(in crate::config) const KEYS: &[&str] = &[
    "kind",
    "kubeconfig",
    "context",
    "namespace",
    "deployment",
    "container",
    "image",
    "timeout",
    "environments",
];

/// The keys an environment may override.
const TARGET_KEYS: &[&str] = &[
    "kubeconfig",
    "context",
    "namespace",
    "deployment",
    "container",
    "image",
];

/// What an image template may contain in braces; `{version}` is required.
const IMAGE_PLACEHOLDERS: &[&str] = &["version", "service", "environment"];

/// Default `timeout`: kubectl's default progress deadline is 10 min; a rollout that has not
/// finished 5 min after that is stuck in a way the deadline did not catch.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Where a Deployment is: the backend's keys, or one environment's overrides of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KubernetesTargetConfig {
    /// Default: `KUBECONFIG`/`~/.kube/config`, else the in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    /// Default: the kubeconfig's current context.
    pub context: Option<String>,
    /// Default: the context's namespace (in a pod, the pod's).
    pub namespace: Option<String>,
    pub deployment: Option<String>,
    pub container: Option<String>,
    /// With `{version}` in it.
    pub image: Option<String>,
}

impl KubernetesTargetConfig {
    /// This target with `other`'s keys where it has them.
    pub fn overridden_by(&self, other: &KubernetesTargetConfig) -> KubernetesTargetConfig {
        KubernetesTargetConfig {
            kubeconfig: other.kubeconfig.clone().or(self.kubeconfig.clone()),
            context: other.context.clone().or(self.context.clone()),
            namespace: other.namespace.clone().or(self.namespace.clone()),
            deployment: other.deployment.clone().or(self.deployment.clone()),
            container: other.container.clone().or(self.container.clone()),
            image: other.image.clone().or(self.image.clone()),
        }
    }
}

impl Values<'_> {
    pub(super) fn kubernetes(&mut self, fields: &mut BackendFields<'_>) -> Option<BackendConfig> {
        let base_path = fields.path.clone();
        let mut valid = true;
        for (key, example) in [
            ("deployment", "\"api\""),
            ("container", "\"api\""),
            ("image", "\"ghcr.io/acme/api:{version}\""),
        ] {
            if !fields.table.contains_key(key) {
                self.report(
                    &base_path,
                    format!("has no `{key}`, which a kubernetes backend needs"),
                    Some(format!("add {key} = {example}")),
                );
                valid = false;
            }
        }
        let target = self.kubernetes_target(&base_path, fields.table, &mut valid);
        let timeout = fields
            .optional("timeout")
            .map(|(path, value)| self.duration(&path, value));
        let mut environments = BTreeMap::new();
        if let Some((path, value)) = fields.optional("environments") {
            let Value::Table(table) = value else {
                self.report(
                    &path,
                    format!(
                        "expected a table of environments, found {}",
                        value.type_str()
                    ),
                    Some("e.g. environments.production = { context = \"prod\" }".to_owned()),
                );
                return None;
            };
            for (name, value) in table {
                let env_path = format!("{path}.{name}");
                let Value::Table(mut overrides) = value else {
                    self.report(
                        &env_path,
                        format!("expected a table, found {}", value.type_str()),
                        Some(format!("keys: {}", TARGET_KEYS.join(", "))),
                    );
                    valid = false;
                    continue;
                };
                self.unknown_keys(
                    &env_path,
                    &overrides,
                    TARGET_KEYS,
                    "a kubernetes environment",
                );
                let target = self.kubernetes_target(&env_path, &mut overrides, &mut valid);
                environments.insert(name, target);
            }
        }
        let timeout = timeout.unwrap_or(Some(DEFAULT_TIMEOUT))?;
        valid.then_some(BackendConfig::Kubernetes {
            target,
            environments,
            timeout,
        })
    }

    /// The target keys of `table` (at `path`); clears `valid` on a problem.
    fn kubernetes_target(
        &mut self,
        path: &str,
        table: &mut toml::Table,
        valid: &mut bool,
    ) -> KubernetesTargetConfig {
        let mut text = |values: &mut Self, key: &str, expected: &str| -> Option<String> {
            let value = table.remove(key)?;
            let key_path = format!("{path}.{key}");
            let found = values.non_empty(&key_path, value, expected);
            if found.is_none() {
                *valid = false;
            }
            found
        };
        let kubeconfig = text(self, "kubeconfig", "a kubeconfig file path").map(PathBuf::from);
        let context = text(self, "context", "a kubeconfig context name");
        let namespace = text(self, "namespace", "a namespace such as \"shop\"");
        let deployment = text(self, "deployment", "a Deployment name such as \"api\"");
        let container = text(self, "container", "a container name such as \"api\"");
        let image = text(
            self,
            "image",
            "an image such as \"ghcr.io/acme/api:{version}\"",
        );
        let image = image.filter(|image| {
            let ok = self.image_template(&format!("{path}.image"), image);
            if !ok {
                *valid = false;
            }
            ok
        });
        KubernetesTargetConfig {
            kubeconfig,
            context,
            namespace,
            deployment,
            container,
            image,
        }
    }

    /// Whether `image` names `{version}` and only known placeholders.
    fn image_template(&mut self, path: &str, image: &str) -> bool {
        let names = super::placeholders(image);
        let list = IMAGE_PLACEHOLDERS
            .iter()
            .map(|n| format!("{{{n}}}"))
            .collect::<Vec<_>>()
            .join(" ");
        for name in &names {
            if !IMAGE_PLACEHOLDERS.contains(name) {
                let hint = match closest(name, IMAGE_PLACEHOLDERS) {
                    Some(guess) => format!("did you mean `{{{guess}}}`? placeholders: {list}"),
                    None => format!("placeholders: {list}"),
                };
                self.report(
                    path,
                    format!("unknown placeholder `{{{name}}}`"),
                    Some(hint),
                );
                return false;
            }
        }
        if !names.contains(&"version") {
            self.report(
                path,
                format!("`{image}` has no `{{version}}`, so every deploy would set the same image"),
                Some("write e.g. image = \"ghcr.io/acme/api:{version}\"".to_owned()),
            );
            return false;
        }
        true
    }

    /// Reports a kubernetes backend's `environments.<name>` that the service does not
    /// deploy to (a typo would otherwise silently deploy with the base keys).
    pub(in crate::config) fn backend_environments_known(
        &mut self,
        service_path: &str,
        deployed_to: &[String],
        backend: &BackendConfig,
    ) {
        let BackendConfig::Kubernetes { environments, .. } = backend else {
            return;
        };
        for name in environments.keys() {
            if !deployed_to.contains(name) {
                self.report(
                    &format!("{service_path}.backend.environments.{name}"),
                    format!("the service does not deploy to `{name}`"),
                    Some(format!("its environments: {}", deployed_to.join(", "))),
                );
            }
        }
    }
}
