//! A service's `backend = { kind = "...", ... }`: what carries out its deploys. The keys
//! depend on `kind`; each problem names its place, e.g. `services[1].backend.repo`.

mod kubernetes;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use toml::{Table, Value};

use super::problem::closest;
use super::secret::Secret;
use super::values::{UrlUse, Values};
pub use kubernetes::KubernetesTargetConfig;

/// Each backend `kind` and the keys it reads.
pub(super) const BACKEND_KINDS: &[(&str, &[&str])] = &[
    (
        "github_actions",
        &[
            "kind",
            "repo",
            "workflow",
            "ref",
            "token",
            "api_base",
            "poll_interval",
            "timeout",
        ],
    ),
    ("webhook", &["kind", "url", "secret", "timeout"]),
    (
        "command",
        &["kind", "program", "args", "timeout", "workdir"],
    ),
    ("kubernetes", kubernetes::KEYS),
];

/// What a command backend's `args` may contain in braces, each replaced by the deploy's value
/// (`{service}`, `{version}`, …). Anything else in braces that looks like a name is a typo.
pub const COMMAND_PLACEHOLDERS: &[&str] = &[
    "service",
    "version",
    "environment",
    "deploy_id",
    "requested_by",
];

/// Default `api_base` of a github_actions backend: github.com (GitHub Enterprise differs).
const DEFAULT_GITHUB_API_BASE: &str = "https://api.github.com";
/// Default `ref` of a github_actions backend.
const DEFAULT_GITHUB_REF: &str = "main";
/// Default `poll_interval` of a github_actions backend: progress shows within seconds, and a
/// token's 5,000 requests an hour cover a dozen deploys polled at once.
const DEFAULT_GITHUB_POLL_INTERVAL: Duration = Duration::from_secs(10);
/// Default `timeout` of a github_actions backend: a workflow run that has not finished within
/// an hour is stuck (GitHub itself allows a job six hours).
const DEFAULT_GITHUB_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// Default `timeout` of a webhook backend: the deployer reports back within half an hour.
const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Default `timeout` of a command backend: a deploy script runs for minutes, not hours.
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// `backend = { kind = "...", ... }` of a service: what carries out its deploys.
#[derive(Debug, Clone)]
pub enum BackendConfig {
    /// Dispatches a GitHub Actions workflow and follows its run.
    GithubActions {
        /// `owner/name`.
        repo: String,
        /// The workflow file name (`deploy.yml`) or id.
        workflow: String,
        /// Key `ref`: the branch or tag the workflow runs on. Default `main`.
        git_ref: String,
        /// A token allowed to dispatch the workflow and read its runs.
        token: Secret,
        /// Without a trailing `/`. Default `https://api.github.com`.
        api_base: String,
        /// How often the run is checked. Default 10 s.
        poll_interval: Duration,
        /// When an unfinished run counts as failed. Default 60 min.
        timeout: Duration,
    },
    /// Posts the deploy to a URL; the deployer reports back.
    Webhook {
        /// Absolute http(s) URL, without a trailing `/`.
        url: String,
        /// Signs the requests, and authenticates the deployer's reports.
        secret: Secret,
        /// When a deploy without a final report counts as failed. Default 30 min.
        timeout: Duration,
    },
    /// Runs a program on opsbot's host.
    Command {
        /// Not empty; relative paths start from the working directory.
        program: String,
        /// Each may contain [`COMMAND_PLACEHOLDERS`] in braces. Default none.
        args: Vec<String>,
        /// When the program is stopped and the deploy failed. Default 10 min.
        timeout: Duration,
        /// Where the program runs. Default: opsbot's working directory.
        workdir: Option<PathBuf>,
    },
    /// Sets a Deployment's container image and follows the rollout.
    Kubernetes {
        /// The backend's own keys; `deployment`, `container` and `image` are set.
        target: KubernetesTargetConfig,
        /// Key `environments`: per environment, the keys that differ there.
        environments: BTreeMap<String, KubernetesTargetConfig>,
        /// When an unfinished rollout counts as failed. Default 15 min.
        timeout: Duration,
    },
}

impl BackendConfig {
    /// The `kind` as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::GithubActions { .. } => "github_actions",
            BackendConfig::Webhook { .. } => "webhook",
            BackendConfig::Command { .. } => "command",
            BackendConfig::Kubernetes { .. } => "kubernetes",
        }
    }

    /// How long a deploy through this backend may take.
    pub fn timeout(&self) -> Duration {
        match self {
            BackendConfig::GithubActions { timeout, .. }
            | BackendConfig::Webhook { timeout, .. }
            | BackendConfig::Command { timeout, .. }
            | BackendConfig::Kubernetes { timeout, .. } => *timeout,
        }
    }
}

/// The names in braces in a command argument: `{version}` in `v={version}`.
fn placeholders(arg: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            break;
        };
        let inner = &after[..close];
        if !inner.is_empty() && inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            found.push(inner);
            rest = &after[close + 1..];
        } else {
            // Not a name (e.g. JSON): left as written.
            rest = after;
        }
    }
    found
}

fn kinds_list() -> String {
    BACKEND_KINDS
        .iter()
        .map(|(kind, _)| *kind)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Values<'_> {
    /// The backend of the service at `service_path`.
    pub(super) fn backend(
        &mut self,
        service_path: &str,
        value: Option<Value>,
    ) -> Option<BackendConfig> {
        let example = format!(
            "e.g. backend = {{ kind = \"command\", program = \"./scripts/deploy.sh\" }}; kinds: {}",
            kinds_list()
        );
        let Some(value) = value else {
            self.report(service_path, "has no `backend`", Some(example));
            return None;
        };
        let path = format!("{service_path}.backend");
        let Value::Table(mut table) = value else {
            self.report(
                &path,
                format!("expected a table, found {} {value}", value.type_str()),
                Some(example),
            );
            return None;
        };
        let Some(kind_value) = table.get("kind").cloned() else {
            self.report(
                &path,
                "has no `kind`",
                Some(format!("kinds: {}", kinds_list())),
            );
            return None;
        };
        let kind_path = format!("{path}.kind");
        let kind = self.string(&kind_path, kind_value, "a backend kind")?;
        let Some(&(kind, keys)) = BACKEND_KINDS.iter().find(|(known, _)| *known == kind) else {
            let kinds: Vec<&str> = BACKEND_KINDS.iter().map(|(kind, _)| *kind).collect();
            let list = format!("kinds: {}", kinds.join(", "));
            let hint = match closest(&kind, &kinds) {
                Some(guess) => format!("did you mean `{guess}`? {list}"),
                None => list,
            };
            self.report(
                &kind_path,
                format!("unknown backend kind `{kind}`"),
                Some(hint),
            );
            return None;
        };
        self.unknown_keys(&path, &table, keys, &format!("a {kind} backend"));
        let mut fields = BackendFields {
            path,
            kind,
            table: &mut table,
        };
        match kind {
            "github_actions" => self.github_actions(&mut fields),
            "webhook" => self.webhook(&mut fields),
            "kubernetes" => self.kubernetes(&mut fields),
            _ => self.command(&mut fields),
        }
    }

    fn github_actions(&mut self, fields: &mut BackendFields<'_>) -> Option<BackendConfig> {
        let repo = fields
            .required(self, "repo", "\"owner/name\"")
            .and_then(|(path, value)| self.repo(&path, value));
        let workflow = fields
            .required(self, "workflow", "\"deploy.yml\"")
            .and_then(|(path, value)| {
                self.non_empty(&path, value, "a workflow file name such as \"deploy.yml\"")
            });
        let git_ref = fields
            .optional("ref")
            .map(|(path, value)| self.non_empty(&path, value, "a branch or tag such as \"main\""));
        let token = fields
            .required(self, "token", "\"env:GITHUB_TOKEN\"")
            .and_then(|(path, value)| self.secret(&path, value));
        let api_base = fields.optional("api_base").map(|(path, value)| {
            self.http_url(
                &path,
                value,
                "\"https://api.github.com\" or \"https://github.example.com/api/v3\"",
                UrlUse::Base,
            )
        });
        let poll_interval = fields
            .optional("poll_interval")
            .map(|(path, value)| self.duration(&path, value));
        let timeout = fields
            .optional("timeout")
            .map(|(path, value)| self.duration(&path, value));
        Some(BackendConfig::GithubActions {
            repo: repo?,
            workflow: workflow?,
            git_ref: git_ref.unwrap_or_else(|| Some(DEFAULT_GITHUB_REF.to_owned()))?,
            token: token?,
            api_base: api_base.unwrap_or_else(|| Some(DEFAULT_GITHUB_API_BASE.to_owned()))?,
            poll_interval: poll_interval.unwrap_or(Some(DEFAULT_GITHUB_POLL_INTERVAL))?,
            timeout: timeout.unwrap_or(Some(DEFAULT_GITHUB_TIMEOUT))?,
        })
    }

    fn webhook(&mut self, fields: &mut BackendFields<'_>) -> Option<BackendConfig> {
        let url = fields
            .required(self, "url", "\"https://deployer.internal/hooks/opsbot\"")
            .and_then(|(path, value)| {
                self.http_url(
                    &path,
                    value,
                    "\"https://deployer.internal/hooks/opsbot\"",
                    UrlUse::Endpoint,
                )
            });
        let secret = fields
            .required(self, "secret", "\"env:DEPLOY_WEBHOOK_SECRET\"")
            .and_then(|(path, value)| self.secret(&path, value));
        let timeout = fields
            .optional("timeout")
            .map(|(path, value)| self.duration(&path, value));
        Some(BackendConfig::Webhook {
            url: url?,
            secret: secret?,
            timeout: timeout.unwrap_or(Some(DEFAULT_WEBHOOK_TIMEOUT))?,
        })
    }

    fn command(&mut self, fields: &mut BackendFields<'_>) -> Option<BackendConfig> {
        let program = fields
            .required(self, "program", "\"./scripts/deploy.sh\"")
            .and_then(|(path, value)| {
                self.non_empty(&path, value, "a program such as \"./scripts/deploy.sh\"")
            });
        let args = fields
            .optional("args")
            .map(|(path, value)| self.command_args(&path, value));
        let timeout = fields
            .optional("timeout")
            .map(|(path, value)| self.duration(&path, value));
        let workdir = fields.optional("workdir").map(|(path, value)| {
            self.non_empty(&path, value, "a directory")
                .map(PathBuf::from)
        });
        Some(BackendConfig::Command {
            program: program?,
            args: args.unwrap_or_else(|| Some(Vec::new()))?,
            timeout: timeout.unwrap_or(Some(DEFAULT_COMMAND_TIMEOUT))?,
            workdir: workdir.map_or(Some(None), |dir| dir.map(Some))?,
        })
    }

    /// A string with something in it besides spaces.
    fn non_empty(&mut self, path: &str, value: Value, expected: &str) -> Option<String> {
        let text = self.string(path, value, expected)?;
        if text.trim().is_empty() {
            self.report(path, "is empty", Some(format!("write {expected}")));
            return None;
        }
        Some(text)
    }

    /// A GitHub repository, `owner/name`.
    fn repo(&mut self, path: &str, value: Value) -> Option<String> {
        let text = self.string(path, value, "a repository such as \"acme/api\"")?;
        let part = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        match text.split_once('/') {
            Some((owner, name)) if part(owner) && part(name) => Some(text),
            _ => {
                self.report(
                    path,
                    format!("`{text}` is not a repository as owner/name"),
                    Some("write the GitHub repository as owner/name, e.g. \"acme/api\"".to_owned()),
                );
                None
            }
        }
    }

    fn command_args(&mut self, path: &str, value: Value) -> Option<Vec<String>> {
        let known = COMMAND_PLACEHOLDERS
            .iter()
            .map(|name| format!("{{{name}}}"))
            .collect::<Vec<_>>()
            .join(" ");
        let Value::Array(items) = value else {
            self.report(
                path,
                format!(
                    "expected a list of arguments, found {} {value}",
                    value.type_str()
                ),
                Some(format!(
                    "write args = [\"{{service}}\", \"{{version}}\"]; placeholders: {known}"
                )),
            );
            return None;
        };
        let mut args = Vec::new();
        let mut valid = true;
        for (index, item) in items.into_iter().enumerate() {
            let path = format!("{path}[{index}]");
            let Some(arg) = self.string(&path, item, "an argument string") else {
                valid = false;
                continue;
            };
            for name in placeholders(&arg) {
                if COMMAND_PLACEHOLDERS.contains(&name) {
                    continue;
                }
                let list = format!("placeholders: {known}");
                let hint = match closest(name, COMMAND_PLACEHOLDERS) {
                    Some(guess) => format!("did you mean `{{{guess}}}`? {list}"),
                    None => list,
                };
                self.report(
                    &path,
                    format!("unknown placeholder `{{{name}}}`"),
                    Some(hint),
                );
                valid = false;
            }
            args.push(arg);
        }
        valid.then_some(args)
    }
}

/// The keys of one backend table, taken one by one with their paths.
struct BackendFields<'t> {
    /// `services[1].backend`.
    path: String,
    kind: &'static str,
    table: &'t mut Table,
}

impl BackendFields<'_> {
    /// The value of `key` and its path, or `None` when absent.
    fn optional(&mut self, key: &str) -> Option<(String, Value)> {
        let value = self.table.remove(key)?;
        Some((format!("{}.{key}", self.path), value))
    }

    /// The value of `key` and its path; reports it missing, with `example` as the value to
    /// write.
    fn required(
        &mut self,
        values: &mut Values<'_>,
        key: &str,
        example: &str,
    ) -> Option<(String, Value)> {
        let found = self.optional(key);
        if found.is_none() {
            values.report(
                &self.path,
                format!("has no `{key}`, which a {} backend needs", self.kind),
                Some(format!("add {key} = {example}")),
            );
        }
        found
    }
}
