//! Deploy backends: how a deploy is carried out. One file per kind, chosen per service in
//! `[[services]] backend = { kind = ... }`:
//!
//! - [`github_actions`]: `workflow_dispatch` of a workflow, then the run it created is polled.
//! - [`webhook`]: a signed JSON POST; the receiver reports progress to
//!   `POST /webhooks/deploy/{id}`, signed the same way ([`webhook::verify`]).
//! - [`command`]: a local process, with the deploy as arguments and environment variables.
//! - [`kubernetes`]: a Deployment's container image is patched and its rollout followed.
//!
//! The tracker (`deploy::tracker`) calls [`execute`] and records what it reports.

pub mod command;
pub mod github_actions;
pub mod kubernetes;
pub mod webhook;

use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Everything a backend learns about the deploy it carries out.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployJob {
    pub deploy_id: i64,
    /// The deploy's correlation id (also on every audit event of the deploy).
    pub correlation_id: Uuid,
    pub service: String,
    pub version: String,
    pub environment: String,
    /// The name of the person who asked.
    pub requested_by: String,
    pub is_rollback: bool,
}

/// A backend as configured for a service.
#[derive(Debug, Clone)]
pub enum BackendSpec {
    GithubActions(github_actions::GithubActionsSpec),
    Webhook(webhook::WebhookSpec),
    Command(command::CommandSpec),
    Kubernetes(kubernetes::KubernetesSpec),
}

impl BackendSpec {
    /// The `kind` as written in the config (and stored on the deploy).
    pub fn kind(&self) -> &'static str {
        match self {
            BackendSpec::GithubActions(_) => "github_actions",
            BackendSpec::Webhook(_) => "webhook",
            BackendSpec::Command(_) => "command",
            BackendSpec::Kubernetes(_) => "kubernetes",
        }
    }
}

impl BackendSpec {
    /// What carries out a deploy to `environment`, in words for people: the program, the
    /// workflow, the webhook's host (never its path or query, which may carry a token), the
    /// Deployment.
    pub fn describe(&self, environment: &str) -> String {
        match self {
            BackendSpec::GithubActions(spec) => format!(
                "GitHub Actions {} {}@{}",
                spec.repo, spec.workflow, spec.git_ref
            ),
            BackendSpec::Webhook(spec) => {
                let (scheme, rest) = spec.url.split_once("://").unwrap_or(("", &spec.url));
                let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
                let host = authority.rsplit('@').next().unwrap_or_default();
                format!("webhook {scheme}://{host}")
            }
            BackendSpec::Command(spec) => spec.program.clone(),
            BackendSpec::Kubernetes(spec) => match spec.targets.get(environment) {
                Some(target) => format!(
                    "Kubernetes deployment {}{}",
                    target
                        .namespace
                        .as_deref()
                        .map(|ns| format!("{ns}/"))
                        .unwrap_or_default(),
                    target.deployment
                ),
                None => "Kubernetes".to_owned(),
            },
        }
    }
}

/// What a backend reports while it works.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendEvent {
    /// A line of progress for people (posted in the deploy's thread).
    Progress(String),
    /// Where to watch the deploy (the GitHub run, the deployer's page).
    Link { label: String, url: String },
    /// State to persist so tracking resumes after opsbot restarts (e.g. the GitHub run id);
    /// handed back to [`execute`] as `checkpoint`.
    Checkpoint(Value),
}

/// How [`execute`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    Succeeded {
        detail: String,
    },
    /// `reason` is written for people: what failed and, where known, what to do.
    Failed {
        reason: String,
    },
    /// The backend accepted the deploy and will report the outcome itself (webhook
    /// callbacks); the tracker waits for it until the backend's timeout.
    AwaitCallback {
        timeout: Duration,
    },
    /// `cancel` was triggered (opsbot is shutting down) before the outcome was known; the
    /// deploy stays `running` and tracking resumes from the last checkpoint after a restart.
    Interrupted,
}

/// Carries out (or, with a `checkpoint`, resumes tracking) `job` on `spec`, reporting through
/// `events` (dropped sends are ignored). Never panics; every failure becomes
/// [`Finish::Failed`] with a clear reason.
pub async fn execute(
    spec: &BackendSpec,
    job: &DeployJob,
    checkpoint: Option<Value>,
    events: mpsc::UnboundedSender<BackendEvent>,
    cancel: CancellationToken,
) -> Finish {
    match spec {
        BackendSpec::GithubActions(s) => {
            github_actions::execute(s, job, checkpoint, events, cancel).await
        }
        BackendSpec::Webhook(s) => webhook::execute(s, job, events, cancel).await,
        BackendSpec::Command(s) => command::execute(s, job, checkpoint, events, cancel).await,
        BackendSpec::Kubernetes(s) => kubernetes::execute(s, job, checkpoint, events, cancel).await,
    }
}

#[cfg(test)]
mod describe_tests {
    use super::*;

    #[test]
    fn a_webhook_is_named_by_its_host_only() {
        let spec = BackendSpec::Webhook(webhook::WebhookSpec {
            url: "https://bot:pw@deployer.example:8443/hook?token=secret".to_owned(),
            secret: secrecy::SecretString::from("s"),
            timeout: Duration::from_secs(1),
        });
        assert_eq!(
            spec.describe("staging"),
            "webhook https://deployer.example:8443"
        );
    }
}
