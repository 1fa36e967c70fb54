//! The `github_actions` backend: a `workflow_dispatch` of the service's workflow, then the run
//! it created is polled until it completes.
//!
//! The dispatch API does not say which run it created, so opsbot finds it by the deploy id:
//! the workflow must take the inputs opsbot sends and put the deploy id in its `run-name`:
//!
//! ```yaml
//! on:
//!   workflow_dispatch:
//!     inputs:
//!       service: { required: true }
//!       version: { required: true }
//!       environment: { required: true }
//!       deploy_id: { required: true }
//!       requested_by: { required: false }
//! run-name: deploy ${{ inputs.deploy_id }} ${{ inputs.service }} ${{ inputs.version }} to ${{ inputs.environment }}
//! ```
//!
//! The deploy id must appear as a word of its own (spaces or `#`, `(`, `)`, `,`, `:` around
//! it). Checkpoints: `{"dispatched_at": unix}` just before the dispatch (a restart then looks
//! for the run instead of dispatching twice) and `{"run_id": N, "dispatched_at": unix}` once
//! the run is found (a restart resumes polling it).

mod api;

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::api::{ApiError, GitHub, Method, is_path_segment, parse, rate_limit_wait};
use super::{BackendEvent, DeployJob, Finish};

/// GitHub usually lists a dispatched run within seconds; after this long without it, the
/// workflow most likely does not put the deploy id in its `run-name`.
pub const RUN_LOOKUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Runs created this long before the dispatch are not ours (allows for clock skew).
const CREATED_SLACK_SECONDS: i64 = 60;

#[derive(Debug, Clone)]
pub struct GithubActionsSpec {
    /// `owner/name`.
    pub repo: String,
    /// The workflow's file name (`deploy.yml`) or numeric id.
    pub workflow: String,
    /// The branch or tag the workflow runs on.
    pub git_ref: String,
    /// Needs `actions: write` on the repository (fine-grained) or `repo` (classic).
    pub token: secrecy::SecretString,
    /// `https://api.github.com`, or `https://HOST/api/v3` for GitHub Enterprise Server.
    pub api_base: String,
    pub poll_interval: Duration,
    /// How long the run may take, from the dispatch to its completion.
    pub timeout: Duration,
}

impl GithubActionsSpec {
    pub const DEFAULT_API_BASE: &str = "https://api.github.com";
    /// Often enough for the deploy thread to feel live, far below the API's rate limit.
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(10);
    /// Deploy workflows rarely take longer; a run still going after an hour needs a person.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60 * 60);
}

/// Dispatches (or, with a checkpoint, resumes) the deploy and follows its run to the end.
pub async fn execute(
    spec: &GithubActionsSpec,
    job: &DeployJob,
    checkpoint: Option<Value>,
    events: mpsc::UnboundedSender<BackendEvent>,
    cancel: CancellationToken,
) -> Finish {
    let tracker = match Tracker::new(spec, &events) {
        Ok(tracker) => tracker,
        Err(reason) => return Finish::Failed { reason },
    };
    let resumed = Resume::from_checkpoint(checkpoint.as_ref());
    let dispatched_at = resumed
        .dispatched_at
        .unwrap_or_else(|| chrono::Utc::now().timestamp());
    let elapsed = u64::try_from(chrono::Utc::now().timestamp() - dispatched_at).unwrap_or(0);
    let deadline = Instant::now() + spec.timeout.saturating_sub(Duration::from_secs(elapsed));
    tokio::select! {
        finish = tracker.run(job, resumed, dispatched_at, deadline) => finish,
        () = cancel.cancelled() => Finish::Interrupted,
    }
}

/// What a checkpoint says was done before a restart.
#[derive(Debug, Default, Clone, Copy)]
struct Resume {
    dispatched_at: Option<i64>,
    run_id: Option<u64>,
}

impl Resume {
    fn from_checkpoint(checkpoint: Option<&Value>) -> Resume {
        let Some(checkpoint) = checkpoint else {
            return Resume::default();
        };
        Resume {
            dispatched_at: checkpoint.get("dispatched_at").and_then(Value::as_i64),
            run_id: checkpoint.get("run_id").and_then(Value::as_u64),
        }
    }

    fn is_resume(self) -> bool {
        self.dispatched_at.is_some() || self.run_id.is_some()
    }
}

/// The fields of a workflow run opsbot reads. (octocrab's `models::workflows::Run` has no
/// `display_title`, where `run-name` shows, and fails on runs missing any of its ~30 fields.)
#[derive(Debug, Clone, Deserialize)]
struct WorkflowRun {
    id: u64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    display_title: Option<String>,
    #[serde(default)]
    run_number: Option<u64>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    conclusion: Option<String>,
    html_url: String,
    #[serde(default)]
    created_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl WorkflowRun {
    fn label(&self) -> String {
        match self.run_number {
            Some(n) => format!("run #{n}"),
            None => format!("run {}", self.id),
        }
    }

    /// Whether the run's name or title carries `deploy_id` as a word of its own.
    fn is_for(&self, deploy_id: i64) -> bool {
        let id = deploy_id.to_string();
        [&self.display_title, &self.name]
            .into_iter()
            .flatten()
            .any(|title| {
                title
                    .split(|c: char| {
                        c.is_whitespace() || matches!(c, '#' | '(' | ')' | ',' | ':' | '[' | ']')
                    })
                    .any(|word| word == id)
            })
    }
}

#[derive(Debug, Deserialize)]
struct RunList {
    #[serde(default)]
    workflow_runs: Vec<WorkflowRun>,
}

/// Talks to GitHub for one deploy.
struct Tracker<'a> {
    spec: &'a GithubActionsSpec,
    events: &'a mpsc::UnboundedSender<BackendEvent>,
    github: GitHub,
    /// `/repos/{owner}/{repo}`.
    repo_path: String,
}

impl<'a> Tracker<'a> {
    fn new(
        spec: &'a GithubActionsSpec,
        events: &'a mpsc::UnboundedSender<BackendEvent>,
    ) -> Result<Self, String> {
        let repo_path = match spec.repo.split_once('/') {
            Some((owner, name)) if is_path_segment(owner) && is_path_segment(name) => {
                format!("/repos/{owner}/{name}")
            }
            _ => {
                return Err(format!(
                    "invalid repo {:?}: expected \"owner/name\"",
                    spec.repo
                ));
            }
        };
        if !is_path_segment(&spec.workflow) {
            return Err(format!(
                "invalid workflow {:?}: expected a file name such as deploy.yml",
                spec.workflow
            ));
        }
        let github = GitHub::new(spec)?;
        Ok(Tracker {
            spec,
            events,
            github,
            repo_path,
        })
    }

    fn emit(&self, event: BackendEvent) {
        let _ = self.events.send(event);
    }

    async fn run(
        &self,
        job: &DeployJob,
        resumed: Resume,
        dispatched_at: i64,
        deadline: Instant,
    ) -> Finish {
        let run = match resumed.run_id {
            Some(run_id) => {
                self.emit(BackendEvent::Progress(format!(
                    "resuming the tracking of GitHub Actions run {run_id}"
                )));
                match self.get_run_until_ok(run_id, deadline).await {
                    Ok(run) => {
                        self.emit(BackendEvent::Link {
                            label: "GitHub Actions run".to_owned(),
                            url: run.html_url.clone(),
                        });
                        run
                    }
                    Err(finish) => return finish,
                }
            }
            None => {
                if resumed.is_resume() {
                    self.emit(BackendEvent::Progress(
                        "opsbot restarted after dispatching the workflow; looking for its run"
                            .to_owned(),
                    ));
                } else {
                    self.emit(BackendEvent::Checkpoint(
                        json!({ "dispatched_at": dispatched_at }),
                    ));
                    if let Err(e) = self.dispatch(job).await {
                        let mut reason = e.reason(self.spec);
                        // hyper's "(Connect)" errors happen before anything is sent.
                        let maybe_sent = match &e {
                            ApiError::Server { .. } => true,
                            ApiError::Network(message) => !message.contains("(Connect)"),
                            _ => false,
                        };
                        if maybe_sent {
                            // Not retried: GitHub may have started the run all the same.
                            reason.push_str(&format!(
                                " — the dispatch may still have started a run: check the Actions tab of {} before deploying again",
                                self.spec.repo
                            ));
                        }
                        return Finish::Failed { reason };
                    }
                    self.emit(BackendEvent::Progress(format!(
                        "dispatched {} on {} in {}",
                        self.spec.workflow, self.spec.git_ref, self.spec.repo
                    )));
                }
                let run = match self.find_run(job.deploy_id, dispatched_at, deadline).await {
                    Ok(run) => run,
                    Err(finish) => return finish,
                };
                self.emit(BackendEvent::Checkpoint(
                    json!({ "run_id": run.id, "dispatched_at": dispatched_at }),
                ));
                self.emit(BackendEvent::Link {
                    label: "GitHub Actions run".to_owned(),
                    url: run.html_url.clone(),
                });
                run
            }
        };
        self.follow(run, deadline).await
    }

    /// `POST .../dispatches`: GitHub answers 204 (or, newer versions, 200 with the run).
    async fn dispatch(&self, job: &DeployJob) -> Result<(), ApiError> {
        let body = json!({
            "ref": self.spec.git_ref,
            "inputs": {
                "service": job.service,
                "version": job.version,
                "environment": job.environment,
                "deploy_id": job.deploy_id.to_string(),
                "requested_by": job.requested_by,
            },
        });
        let path = format!(
            "{}/actions/workflows/{}/dispatches",
            self.repo_path, self.spec.workflow
        );
        self.github
            .request(Method::Post(&body), &path)
            .await
            .map(|_| ())
    }

    /// Lists the workflow's dispatched runs until one carries the deploy id.
    async fn find_run(
        &self,
        deploy_id: i64,
        dispatched_at: i64,
        deadline: Instant,
    ) -> Result<WorkflowRun, Finish> {
        let path = format!(
            "{}/actions/workflows/{}/runs?event=workflow_dispatch&per_page=20",
            self.repo_path, self.spec.workflow
        );
        let lookup_deadline = deadline.min(Instant::now() + RUN_LOOKUP_TIMEOUT);
        let mut errors = ErrorStreak::default();
        loop {
            match self
                .github
                .request(Method::Get, &path)
                .await
                .and_then(|body| parse::<RunList>(&body))
            {
                Ok(list) => {
                    errors.clear(self);
                    let found = list
                        .workflow_runs
                        .into_iter()
                        .filter(|run| run.is_for(deploy_id))
                        .filter(|run| {
                            run.created_at.is_none_or(|at| {
                                at.timestamp() >= dispatched_at - CREATED_SLACK_SECONDS
                            })
                        })
                        .max_by_key(|run| run.id);
                    if let Some(run) = found {
                        return Ok(run);
                    }
                }
                Err(e) if e.is_transient() => errors.note(self, &e),
                Err(e) => {
                    return Err(Finish::Failed {
                        reason: e.reason(self.spec),
                    });
                }
            }
            if Instant::now() + self.spec.poll_interval > lookup_deadline {
                return Err(Finish::Failed {
                    reason: format!(
                        "dispatched {} but found no run for deploy {deploy_id} within {}: the workflow must set \
                         `run-name: deploy ${{{{ inputs.deploy_id }}}} ...` so opsbot can find its run (check the Actions tab of {})",
                        self.spec.workflow,
                        humantime::format_duration(RUN_LOOKUP_TIMEOUT.min(self.spec.timeout)),
                        self.spec.repo
                    ),
                });
            }
            tokio::time::sleep(self.spec.poll_interval).await;
        }
    }

    /// Polls the run until it completes or the deadline passes.
    async fn follow(&self, mut run: WorkflowRun, deadline: Instant) -> Finish {
        let mut reported_status: Option<String> = None;
        let mut errors = ErrorStreak::default();
        loop {
            let status = run.status.clone().unwrap_or_else(|| "unknown".to_owned());
            if status == "completed" {
                return self.outcome(&run);
            }
            if reported_status.as_deref() != Some(status.as_str()) {
                self.emit(BackendEvent::Progress(format!(
                    "GitHub Actions {} is {}",
                    run.label(),
                    status.replace('_', " ")
                )));
                reported_status = Some(status);
            }
            // The last poll happens at the deadline, so a run ending just before it counts.
            let now = Instant::now();
            let mut wait = self
                .spec
                .poll_interval
                .min(deadline.saturating_duration_since(now));
            if now >= deadline {
                return Finish::Failed {
                    reason: format!(
                        "GitHub Actions {} did not complete within {}; it may still be running: {}",
                        run.label(),
                        humantime::format_duration(self.spec.timeout),
                        run.html_url
                    ),
                };
            }
            loop {
                tokio::time::sleep(wait).await;
                match self.get_run(run.id).await {
                    Ok(latest) => {
                        errors.clear(self);
                        run = latest;
                        break;
                    }
                    Err(e) if e.is_transient() => {
                        errors.note(self, &e);
                        wait = rate_limit_wait(&e)
                            .unwrap_or(self.spec.poll_interval)
                            .max(self.spec.poll_interval);
                        if Instant::now() >= deadline {
                            return Finish::Failed {
                                reason: format!(
                                    "lost track of GitHub Actions {} ({}): {}",
                                    run.label(),
                                    e.reason(self.spec),
                                    run.html_url
                                ),
                            };
                        }
                        wait = wait.min(deadline.saturating_duration_since(Instant::now()));
                    }
                    Err(e) => {
                        return Finish::Failed {
                            reason: format!(
                                "lost track of GitHub Actions {}: {} — {}",
                                run.label(),
                                e.reason(self.spec),
                                run.html_url
                            ),
                        };
                    }
                }
            }
        }
    }

    fn outcome(&self, run: &WorkflowRun) -> Finish {
        match run.conclusion.as_deref() {
            Some("success") => Finish::Succeeded {
                detail: format!("GitHub Actions {} succeeded: {}", run.label(), run.html_url),
            },
            Some(conclusion) => Finish::Failed {
                reason: format!(
                    "GitHub Actions {} ended with conclusion \"{conclusion}\": {}",
                    run.label(),
                    run.html_url
                ),
            },
            None => Finish::Failed {
                reason: format!(
                    "GitHub Actions {} completed without a conclusion: {}",
                    run.label(),
                    run.html_url
                ),
            },
        }
    }

    async fn get_run(&self, run_id: u64) -> Result<WorkflowRun, ApiError> {
        let body = self
            .github
            .request(
                Method::Get,
                &format!("{}/actions/runs/{run_id}", self.repo_path),
            )
            .await?;
        parse(&body)
    }

    /// The run at resume time, trying again through transient errors until the deadline.
    async fn get_run_until_ok(
        &self,
        run_id: u64,
        deadline: Instant,
    ) -> Result<WorkflowRun, Finish> {
        let mut errors = ErrorStreak::default();
        loop {
            match self.get_run(run_id).await {
                Ok(run) => return Ok(run),
                Err(e)
                    if e.is_transient() && Instant::now() + self.spec.poll_interval <= deadline =>
                {
                    errors.note(self, &e);
                    tokio::time::sleep(
                        rate_limit_wait(&e)
                            .unwrap_or(self.spec.poll_interval)
                            .max(self.spec.poll_interval),
                    )
                    .await;
                }
                Err(e) => {
                    return Err(Finish::Failed {
                        reason: format!(
                            "could not resume tracking GitHub Actions run {run_id}: {}",
                            e.reason(self.spec)
                        ),
                    });
                }
            }
        }
    }
}

/// Reports a run of transient errors once (not at every poll) and its end.
#[derive(Debug, Default)]
struct ErrorStreak {
    failing: bool,
}

impl ErrorStreak {
    fn note(&mut self, tracker: &Tracker<'_>, e: &ApiError) {
        if !self.failing {
            self.failing = true;
            tracker.emit(BackendEvent::Progress(format!(
                "{}; still trying",
                e.reason(tracker.spec)
            )));
        }
    }

    fn clear(&mut self, tracker: &Tracker<'_>) {
        if std::mem::take(&mut self.failing) {
            tracker.emit(BackendEvent::Progress("GitHub answers again".to_owned()));
        }
    }
}

#[cfg(test)]
mod tests;
