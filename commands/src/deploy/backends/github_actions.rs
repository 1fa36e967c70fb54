//! The `github_actions` backend: `workflow_dispatch` of a workflow (through octocrab), then the
//! run it created is found by its run name, which must contain the deploy id
//! (`run-name: deploy ${{ inputs.deploy_id }} ...` in the workflow), and polled to completion.

use std::time::Duration;

use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{BackendEvent, DeployJob, Finish};

/// How long to look for the run a dispatch created before giving up (GitHub usually lists it
/// within seconds).
const FIND_RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// Runs listed per lookup: the new run is among the newest.
const RUNS_PER_PAGE: &str = "30";

#[derive(Debug, Clone)]
pub struct GithubActionsSpec {
    /// `owner/name`.
    pub repo: String,
    /// The workflow file (`deploy.yml`) or id.
    pub workflow: String,
    pub git_ref: String,
    pub token: secrecy::SecretString,
    pub api_base: String,
    pub poll_interval: Duration,
    pub timeout: Duration,
}

/// GitHub's errors as failure reasons for people.
fn explain(spec: &GithubActionsSpec, what: &str, error: octocrab::Error) -> String {
    match error {
        octocrab::Error::GitHub { source, .. } => {
            let status = source.status_code.as_u16();
            let reset = source
                .rate_limit_reset
                .and_then(|t| chrono::DateTime::from_timestamp(t as i64, 0))
                .map(|t| format!(" (the limit resets at {})", t.format("%H:%M:%S UTC")))
                .unwrap_or_default();
            match status {
                401 => format!(
                    "GitHub rejected the token while trying to {what}: check the token of this service's backend (401: {})",
                    source.message
                ),
                404 => format!(
                    "GitHub found no repository {} with workflow {}, or the token cannot see it, while trying to {what} (404)",
                    spec.repo, spec.workflow
                ),
                422 => format!(
                    "GitHub refused to {what}: {} (422; does the workflow have a workflow_dispatch trigger with inputs service, version, environment, deploy_id, requested_by, and does ref {} exist?)",
                    source.message, spec.git_ref
                ),
                403 | 429
                    if source.message.to_lowercase().contains("rate limit")
                        || source.rate_limit_reset.is_some() =>
                {
                    format!(
                        "GitHub's rate limit was reached while trying to {what}{reset}: {}",
                        source.message
                    )
                }
                _ => format!(
                    "GitHub answered {status} while trying to {what}: {}",
                    source.message
                ),
            }
        }
        other => format!(
            "could not reach GitHub at {} to {what}: {other}",
            spec.api_base
        ),
    }
}

pub async fn execute(
    spec: &GithubActionsSpec,
    job: &DeployJob,
    checkpoint: Option<Value>,
    events: mpsc::UnboundedSender<BackendEvent>,
    cancel: CancellationToken,
) -> Finish {
    let Some((owner, repo)) = spec.repo.split_once('/') else {
        return Finish::Failed {
            reason: format!("repo \"{}\" is not owner/name", spec.repo),
        };
    };
    let client = octocrab::Octocrab::builder()
        .personal_token(spec.token.expose_secret().to_owned())
        .set_connect_timeout(Some(Duration::from_secs(10)))
        .set_read_timeout(Some(Duration::from_secs(30)))
        .base_uri(spec.api_base.as_str())
        .and_then(|b| b.build());
    let client = match client {
        Ok(client) => client,
        Err(e) => {
            return Finish::Failed {
                reason: format!(
                    "could not set up the GitHub client for {}: {e}",
                    spec.api_base
                ),
            };
        }
    };
    let deadline = tokio::time::Instant::now() + spec.timeout;

    let run_id = match checkpoint.as_ref().and_then(|c| c["run_id"].as_u64()) {
        Some(run_id) => run_id,
        None => {
            let inputs = json!({
                "service": job.service,
                "version": job.version,
                "environment": job.environment,
                "deploy_id": job.deploy_id.to_string(),
                "requested_by": job.requested_by,
            });
            let dispatched = client
                .actions()
                .create_workflow_dispatch(
                    owner,
                    repo,
                    spec.workflow.as_str(),
                    spec.git_ref.as_str(),
                )
                .inputs(inputs)
                .send()
                .await;
            if let Err(e) = dispatched {
                return Finish::Failed {
                    reason: explain(spec, "dispatch the workflow", e),
                };
            }
            let _ = events.send(BackendEvent::Progress(format!(
                "dispatched {} in {} at {}",
                spec.workflow, spec.repo, spec.git_ref
            )));
            match find_run(&client, spec, owner, repo, job.deploy_id, &cancel).await {
                Ok(Some(run)) => run,
                Ok(None) => return Finish::Interrupted,
                Err(reason) => return Finish::Failed { reason },
            }
        }
    };
    let _ = events.send(BackendEvent::Checkpoint(json!({ "run_id": run_id })));

    let mut last_status = String::new();
    let mut linked = false;
    loop {
        let route = format!("/repos/{owner}/{repo}/actions/runs/{run_id}");
        let run: Value = match client.get(route, None::<&()>).await {
            Ok(run) => run,
            Err(e) => {
                return Finish::Failed {
                    reason: explain(spec, &format!("read run {run_id}"), e),
                };
            }
        };
        let url = run["html_url"].as_str().unwrap_or_default().to_owned();
        if !linked && !url.is_empty() {
            let _ = events.send(BackendEvent::Link {
                label: "GitHub Actions run".to_owned(),
                url: url.clone(),
            });
            linked = true;
        }
        let status = run["status"].as_str().unwrap_or("unknown").to_owned();
        if status == "completed" {
            let conclusion = run["conclusion"].as_str().unwrap_or("unknown");
            return if conclusion == "success" {
                Finish::Succeeded {
                    detail: format!("GitHub Actions run {run_id} succeeded: {url}"),
                }
            } else {
                Finish::Failed {
                    reason: format!("GitHub Actions run {run_id} ended: {conclusion} ({url})"),
                }
            };
        }
        if status != last_status {
            let _ = events.send(BackendEvent::Progress(format!(
                "GitHub Actions run {run_id}: {}",
                status.replace('_', " ")
            )));
            last_status = status;
        }
        if tokio::time::Instant::now() >= deadline {
            return Finish::Failed {
                reason: format!(
                    "GitHub Actions run {run_id} did not finish within {} ({url})",
                    humantime::format_duration(spec.timeout)
                ),
            };
        }
        tokio::select! {
            _ = tokio::time::sleep(spec.poll_interval) => {}
            _ = cancel.cancelled() => return Finish::Interrupted,
        }
    }
}

/// The run a dispatch created, found by the deploy id in its run name (`display_title`).
/// `Ok(None)` when cancelled.
async fn find_run(
    client: &octocrab::Octocrab,
    spec: &GithubActionsSpec,
    owner: &str,
    repo: &str,
    deploy_id: i64,
    cancel: &CancellationToken,
) -> Result<Option<u64>, String> {
    let started = tokio::time::Instant::now();
    let route = format!(
        "/repos/{owner}/{repo}/actions/workflows/{}/runs",
        spec.workflow
    );
    let params = [("event", "workflow_dispatch"), ("per_page", RUNS_PER_PAGE)];
    let needle = deploy_id.to_string();
    loop {
        let page: Value = client
            .get(route.as_str(), Some(&params))
            .await
            .map_err(|e| explain(spec, "list the workflow's runs", e))?;
        let found = page["workflow_runs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|run| {
                let title = run["display_title"]
                    .as_str()
                    .or_else(|| run["name"].as_str())
                    .unwrap_or_default();
                title
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .any(|word| word == needle)
            });
        if let Some(id) = found.and_then(|run| run["id"].as_u64()) {
            return Ok(Some(id));
        }
        if started.elapsed() >= FIND_RUN_TIMEOUT {
            return Err(format!(
                "dispatched {}, but no run named with deploy id {deploy_id} appeared within {}s: give the workflow `run-name: deploy ${{{{ inputs.deploy_id }}}} ...`",
                spec.workflow,
                FIND_RUN_TIMEOUT.as_secs()
            ));
        }
        tokio::select! {
            _ = tokio::time::sleep(spec.poll_interval) => {}
            _ = cancel.cancelled() => return Ok(None),
        }
    }
}
