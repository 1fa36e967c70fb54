//! The `kubernetes` backend: sets a container's image on a Deployment and follows the
//! rollout the way `kubectl rollout status` does.
//!
//! ```toml
//! backend = { kind = "kubernetes", namespace = "shop", deployment = "api", container = "api", image = "ghcr.io/acme/api:{version}" }
//! ```
//!
//! A deploy reads the Deployment (refusing a paused one), patches the container's image with
//! a strategic merge patch carrying a `kubernetes.io/change-cause` annotation, then watches
//! the Deployment until [`rollout::rollout_status`] says it is complete, the progress deadline
//! passed, or the backend's timeout ran out. Each change of the replica counts is a progress
//! line in the deploy's thread. `/rollback` is a deploy of an earlier version through the
//! same path. API errors become the failure reason ([`failure`]).

mod live;
pub mod rollout;

pub use live::{LiveState, LiveWorkload, live};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Api, Client, Config};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{BackendEvent, DeployJob, Finish};
use rollout::{Rollout, rollout_status};

/// The annotation `kubectl rollout history` shows for each revision.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
/// A 409 Conflict on the patch is retried this many times: another writer (an autoscaler,
/// a controller) changed the Deployment at the same moment, and trying again is right.
const CONFLICT_ATTEMPTS: u32 = 5;
/// Errors in a row while watching before the deploy fails: the watch is restarted after
/// each (API servers close watches on their own; a brief outage should not fail a deploy).
const WATCH_ERRORS_MAX: u32 = 4;
/// After the backend's timeout, how long the watch gets to report its own (more precise)
/// failure before a hung call is given up on.
const BACKSTOP: Duration = Duration::from_secs(2);

/// A service's Kubernetes backend: the Deployment of each environment.
#[derive(Debug, Clone)]
pub struct KubernetesSpec {
    /// By environment name; each configured environment of the service has one.
    pub targets: BTreeMap<String, KubernetesTarget>,
    /// How long a rollout may take before the deploy counts as failed.
    pub timeout: Duration,
}

/// Where one environment's Deployment is, and what its image is called.
#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesTarget {
    /// A kubeconfig file; `None`: the usual inference (`KUBECONFIG`, `~/.kube/config`,
    /// else the in-cluster service account, the default when opsbot runs in a pod).
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig; `None`: its current context.
    pub context: Option<String>,
    /// `None`: the context's namespace (in a pod: the pod's).
    pub namespace: Option<String>,
    pub deployment: String,
    pub container: String,
    /// With `{version}` (and optionally `{service}`, `{environment}`) in it.
    pub image: String,
}

impl KubernetesTarget {
    /// The image the deploy of `job` sets.
    pub fn image_for(&self, job: &DeployJob) -> String {
        image_for(&self.image, &job.service, &job.environment, &job.version)
    }
}

/// `template` with its placeholders replaced.
pub fn image_for(template: &str, service: &str, environment: &str, version: &str) -> String {
    template
        .replace("{version}", version)
        .replace("{service}", service)
        .replace("{environment}", environment)
}

/// How one call to the API server ended, written for people.
type Outcome<T> = Result<T, String>;

/// Carries out `job` (or, with a `checkpoint`, follows the rollout it already started).
pub async fn execute(
    spec: &KubernetesSpec,
    job: &DeployJob,
    checkpoint: Option<Value>,
    events: mpsc::UnboundedSender<BackendEvent>,
    cancel: CancellationToken,
) -> Finish {
    let Some(target) = spec.targets.get(&job.environment) else {
        return Finish::Failed {
            reason: format!(
                "the kubernetes backend of {} has no Deployment for environment {}",
                job.service, job.environment
            ),
        };
    };
    let deadline = tokio::time::Instant::now() + spec.timeout;
    let work = async {
        let deployments = connect(target).await?;
        if checkpoint.is_none() {
            set_image(&deployments, target, job, &events).await?;
        } else {
            let _ = events.send(BackendEvent::Progress(format!(
                "following the rollout of deployment {} again",
                deployments.label
            )));
        }
        follow(&deployments, &events, deadline, spec.timeout).await
    };
    tokio::select! {
        outcome = work => match outcome {
            Ok(detail) => Finish::Succeeded { detail },
            Err(reason) => Finish::Failed { reason },
        },
        _ = cancel.cancelled() => Finish::Interrupted,
        // A backstop for calls before the watch (which has its own deadline and message).
        _ = tokio::time::sleep_until(deadline + BACKSTOP) => Finish::Failed {
            reason: format!(
                "the Kubernetes API server did not answer within {}",
                humantime::format_duration(spec.timeout)
            ),
        },
    }
}

/// The Deployment's API, and how to name it in messages.
struct Deployments {
    api: Api<Deployment>,
    name: String,
    namespace: String,
    /// `shop/api`.
    label: String,
    /// The API server's URL, for messages about reaching it.
    server: String,
}

async fn connect(target: &KubernetesTarget) -> Outcome<Deployments> {
    let options = KubeConfigOptions {
        context: target.context.clone(),
        ..Default::default()
    };
    let config = match (&target.kubeconfig, &target.context) {
        (Some(path), _) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read the kubeconfig {}: {e}", path.display()))?;
            Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| format!("the kubeconfig {} is not usable: {e}", path.display()))?
        }
        (None, Some(context)) => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| format!("no usable kubeconfig context {context}: {e}"))?,
        (None, None) => Config::infer().await.map_err(|e| {
            format!("no Kubernetes configuration: not in a pod and no kubeconfig found ({e})")
        })?,
    };
    let namespace = target
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let server = config.cluster_url.to_string();
    let client = Client::try_from(config)
        .map_err(|e| format!("cannot build a Kubernetes client for {server}: {e}"))?;
    Ok(Deployments {
        api: Api::namespaced(client, &namespace),
        name: target.deployment.clone(),
        label: format!("{namespace}/{}", target.deployment),
        namespace,
        server,
    })
}

/// Reads the Deployment, refuses a paused one, and patches the container's image.
async fn set_image(
    deployments: &Deployments,
    target: &KubernetesTarget,
    job: &DeployJob,
    events: &mpsc::UnboundedSender<BackendEvent>,
) -> Outcome<()> {
    let current = deployments
        .api
        .get(&deployments.name)
        .await
        .map_err(|e| failure(&e, "get", deployments))?;
    check_deployable(&current, target, job, deployments)?;
    let image = target.image_for(job);
    let cause = change_cause(job);
    let patch = json!({
        "metadata": { "annotations": { CHANGE_CAUSE: cause } },
        "spec": { "template": { "spec": { "containers": [
            { "name": target.container, "image": image }
        ] } } }
    });
    let params = PatchParams {
        field_manager: Some("opsbot".to_owned()),
        ..Default::default()
    };
    let mut attempt = 1;
    let patched = loop {
        match deployments
            .api
            .patch(&deployments.name, &params, &Patch::Strategic(&patch))
            .await
        {
            Ok(patched) => break patched,
            Err(kube::Error::Api(status)) if status.code == 409 && attempt < CONFLICT_ATTEMPTS => {
                tracing::info!(deploy = job.deploy_id, attempt, message = %status.message, "conflict patching the deployment; retrying");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(e) => return Err(failure(&e, "patch", deployments)),
        }
    };
    let generation = patched.metadata.generation.unwrap_or(0);
    let _ = events.send(BackendEvent::Checkpoint(
        json!({ "image": image, "generation": generation }),
    ));
    let _ = events.send(BackendEvent::Progress(format!(
        "deployment {}: container {} set to {image} (generation {generation})",
        deployments.label, target.container
    )));
    Ok(())
}

/// Why the Deployment cannot take this deploy, if it cannot.
fn check_deployable(
    current: &Deployment,
    target: &KubernetesTarget,
    job: &DeployJob,
    deployments: &Deployments,
) -> Outcome<()> {
    let spec = current.spec.clone().unwrap_or_default();
    if spec.paused == Some(true) {
        let what = if job.is_rollback {
            "rolled back"
        } else {
            "deployed to"
        };
        return Err(format!(
            "deployment {} is paused (spec.paused), so it cannot be {what}: its rollout would not start. Resume it first (kubectl rollout resume deployment/{} -n {}) and try again",
            deployments.label, deployments.name, deployments.namespace
        ));
    }
    let containers: Vec<String> = spec
        .template
        .spec
        .map(|pod| pod.containers.into_iter().map(|c| c.name).collect())
        .unwrap_or_default();
    if !containers.contains(&target.container) {
        return Err(format!(
            "deployment {} has no container {}; its containers: {}",
            deployments.label,
            target.container,
            if containers.is_empty() {
                "none".to_owned()
            } else {
                containers.join(", ")
            }
        ));
    }
    Ok(())
}

/// `kubernetes.io/change-cause`: which deploy, and who asked.
pub fn change_cause(job: &DeployJob) -> String {
    let what = if job.is_rollback {
        "rollback"
    } else {
        "deploy"
    };
    format!(
        "opsbot {what} #{}: {} {} to {}, requested by {}",
        job.deploy_id, job.service, job.version, job.environment, job.requested_by
    )
}

/// Watches the Deployment until its rollout is complete (`Ok` with the detail), failed, or
/// `deadline` passed.
async fn follow(
    deployments: &Deployments,
    events: &mpsc::UnboundedSender<BackendEvent>,
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> Outcome<String> {
    let config = watcher::Config::default().fields(&format!("metadata.name={}", deployments.name));
    let stream = watcher(deployments.api.clone(), config);
    tokio::pin!(stream);
    let mut last_line = String::new();
    let mut errors = 0;
    loop {
        let next = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(next)) => next,
            Ok(None) => return Err("the watch of the deployment ended unexpectedly".to_owned()),
            Err(_) => {
                return Err(format!(
                    "the rollout of deployment {} did not finish within {}; last seen: {}",
                    deployments.label,
                    humantime::format_duration(timeout),
                    if last_line.is_empty() {
                        "nothing"
                    } else {
                        &last_line
                    }
                ));
            }
        };
        let deployment = match next {
            Ok(watcher::Event::Apply(d) | watcher::Event::InitApply(d)) => d,
            Ok(watcher::Event::Delete(_)) => {
                return Err(format!(
                    "deployment {} was deleted during the rollout",
                    deployments.label
                ));
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => continue,
            Err(e) => {
                errors += 1;
                let reason = watch_failure(&e, deployments);
                if fatal(&e) || errors >= WATCH_ERRORS_MAX {
                    return Err(reason);
                }
                tracing::warn!(deployment = %deployments.label, error = %e, "watching the deployment failed; watching again");
                tokio::time::sleep(Duration::from_millis(500 << errors)).await;
                continue;
            }
        };
        errors = 0;
        let (line, outcome) = match rollout_status(&deployment) {
            Rollout::NotObserved { generation, .. } => (
                format!("waiting for the deployment controller to observe generation {generation}"),
                None,
            ),
            Rollout::Progressing { counts, .. } => (counts.line(), None),
            Rollout::Complete(counts) => (
                counts.line(),
                Some(Ok(format!(
                    "deployment {} rolled out: {}",
                    deployments.label,
                    counts.line()
                ))),
            ),
            Rollout::DeadlineExceeded { counts, message } => (
                counts.line(),
                Some(Err(format!(
                    "deployment {} exceeded its progress deadline (ProgressDeadlineExceeded): {message}; {}",
                    deployments.label,
                    counts.line()
                ))),
            ),
        };
        if line != last_line {
            let _ = events.send(BackendEvent::Progress(line.clone()));
            last_line = line;
        }
        if let Some(outcome) = outcome {
            return outcome;
        }
    }
}

/// Errors that watching again cannot fix.
fn fatal(error: &watcher::Error) -> bool {
    let code = match error {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s))
        | watcher::Error::WatchError(s) => s.code,
        _ => return false,
    };
    matches!(code, 401 | 403 | 404)
}

fn watch_failure(error: &watcher::Error, deployments: &Deployments) -> String {
    match error {
        watcher::Error::InitialListFailed(e) => failure(e, "list", deployments),
        watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            failure(e, "watch", deployments)
        }
        watcher::Error::WatchError(status) => {
            failure(&kube::Error::Api(status.clone()), "watch", deployments)
        }
        watcher::Error::NoResourceVersion => format!(
            "the API server at {} sent deployments without a resourceVersion",
            deployments.server
        ),
    }
}

/// A failed call to the API server (`verb` on the Deployment), written for people: what was
/// refused and, for RBAC, which verb and resource the Role lacks.
fn failure(error: &kube::Error, verb: &str, deployments: &Deployments) -> String {
    let kube::Error::Api(status) = error else {
        return format!(
            "could not {verb} deployment {} on the Kubernetes API server at {}: {error}",
            deployments.label, deployments.server
        );
    };
    let said = if status.message.is_empty() {
        String::new()
    } else {
        format!(" (API server: {})", status.message)
    };
    match status.code {
        401 => format!(
            "the Kubernetes API server at {} did not accept opsbot's credentials (401 Unauthorized): check the kubeconfig's user or the service account token{said}",
            deployments.server
        ),
        403 => format!(
            "opsbot may not {verb} deployments in namespace {} (403 Forbidden): its Role needs the verb \"{verb}\" on the resource \"deployments\" of apiGroup \"apps\" (see the README's RBAC Role){said}",
            deployments.namespace
        ),
        404 => format!(
            "deployment {} does not exist (404 Not Found): check the backend's namespace and deployment, and the kubeconfig context{said}",
            deployments.label
        ),
        409 => format!(
            "deployment {} kept changing under opsbot: {verb} failed with 409 Conflict {CONFLICT_ATTEMPTS} times{said}",
            deployments.label
        ),
        code @ 500..=599 => format!(
            "the Kubernetes API server failed to {verb} deployment {} ({code} {}){said}",
            deployments.label, status.reason
        ),
        code => format!(
            "the Kubernetes API server refused to {verb} deployment {} ({code} {}){said}",
            deployments.label, status.reason
        ),
    }
}

#[cfg(test)]
mod tests;
