//! Carries deploys through their lifecycle while `opsbot run` (or the shell) runs: starts
//! approved deploys on their backend, records what the backend reports (progress in the
//! deploy's thread, the status message edited live, announcements), expires approvals that
//! waited too long, fails webhook deploys whose outcome never came, and takes over deploys a
//! stopped replica was tracking. All state is in Postgres, so a restart resumes tracking.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::backends::{self, BackendEvent, DeployJob, Finish};
use super::model::{Deploy, DeployState};
use super::{store, view};
use crate::audit::Outcome;
use crate::chat::Message;
use crate::desk::{Desk, Invocation, record_in};
use crate::error::CommandError;
use crate::{Actor, Source, outbox};

/// How often the tracker looks for work when nothing wakes it.
pub const TRACK_INTERVAL: Duration = Duration::from_secs(2);
/// A replica tracking a deploy renews its claim this often...
const LEASE_RENEWAL: Duration = Duration::from_secs(10);
/// ...for this long: a replica that stopped is taken over within ~30 s.
const LEASE: Duration = Duration::from_secs(30);
/// Progress lines longer than this are cut (one Discord message, with room to spare).
const PROGRESS_MAX: usize = 1800;

/// Runs until `shutdown`; deploys being tracked are left `running` for the next start.
pub async fn run(desk: Desk, shutdown: CancellationToken) {
    let executions = TaskTracker::new();
    loop {
        if let Err(e) = tick(&desk, &executions, &shutdown).await {
            tracing::warn!(error = %e, "deploy tracker: a round failed; retrying");
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = desk.deploy_wakeup().notified() => {}
            _ = tokio::time::sleep(TRACK_INTERVAL) => {}
        }
    }
    executions.close();
    executions.wait().await;
}

/// One round: expire, time out, start, and pick up untracked running deploys.
pub async fn tick(
    desk: &Desk,
    executions: &TaskTracker,
    shutdown: &CancellationToken,
) -> Result<(), CommandError> {
    sweep(desk, Sweep::ExpireApprovals).await?;
    sweep(desk, Sweep::TimeOutCallbacks).await?;
    sweep(desk, Sweep::StartApproved).await?;
    let lease = LEASE.as_secs_f64();
    for id in store::claim_untracked_running(&desk.pool, lease).await? {
        executions.spawn(track(desk.clone(), id, shutdown.child_token()));
    }
    Ok(())
}

fn lifecycle_command(deploy: &Deploy) -> String {
    if deploy.is_rollback {
        "rollback".to_owned()
    } else {
        "deploy run".to_owned()
    }
}

pub(super) fn system(deploy: &Deploy, source: Source) -> Invocation {
    let mut inv = Invocation::new(
        Actor::system(source),
        lifecycle_command(deploy),
        serde_json::json!({ "deploy_id": deploy.id }),
    );
    inv.correlation_id = Some(deploy.correlation_id);
    inv.channel_id = deploy.channel_id;
    inv
}

/// The transitions the tracker makes on its own, each round.
#[derive(Debug, Clone, Copy)]
enum Sweep {
    /// requested → expired: nobody approved within the approval window.
    ExpireApprovals,
    /// running → failed: a webhook deployer never reported the outcome.
    TimeOutCallbacks,
    /// approved → running: carried out by the backend from now on.
    StartApproved,
}

/// Why a webhook deploy failed for want of a report, naming the service's `timeout`.
async fn callback_timeout_detail(
    desk: &Desk,
    tx: &mut sqlx::PgConnection,
    id: i64,
) -> Result<String, CommandError> {
    let service = store::deploy_by_id(&mut *tx, id).await?.map(|d| d.service);
    let timeout = service
        .as_deref()
        .and_then(|name| desk.deploys().services.get(name))
        .and_then(|spec| match &spec.backend {
            backends::BackendSpec::Webhook(webhook) => Some(webhook.timeout),
            _ => None,
        });
    Ok(match timeout {
        Some(timeout) => format!(
            "the deployer accepted the deploy but reported no outcome within {} (the webhook backend's `timeout`); check the deployer's logs",
            humantime::format_duration(timeout)
        ),
        None => "the deployer accepted the deploy but reported no outcome in time (the webhook backend's `timeout`); check the deployer's logs".to_owned(),
    })
}

/// Moves every deploy due for `sweep`, in one transaction, and publishes each move.
async fn sweep(desk: &Desk, sweep: Sweep) -> Result<(), CommandError> {
    let (from, to, outcome, detail) = match sweep {
        Sweep::ExpireApprovals => (
            DeployState::Requested,
            DeployState::Expired,
            Outcome::Expired,
            "no approval within the approval window",
        ),
        Sweep::TimeOutCallbacks => (
            DeployState::Running,
            DeployState::Failed,
            Outcome::Failed,
            "the deployer accepted the deploy but reported no outcome in time (the webhook backend's `timeout`); check the deployer's logs",
        ),
        Sweep::StartApproved => (
            DeployState::Approved,
            DeployState::Running,
            Outcome::Started,
            "started",
        ),
    };
    let mut tx = desk.pool.begin().await?;
    let due = match sweep {
        Sweep::ExpireApprovals => store::due_for_expiry(&mut *tx).await?,
        Sweep::TimeOutCallbacks => store::due_for_callback_timeout(&mut *tx).await?,
        Sweep::StartApproved => store::claim_approved(&mut *tx).await?,
    };
    for id in due {
        let detail = match sweep {
            Sweep::TimeOutCallbacks => callback_timeout_detail(desk, &mut tx, id).await?,
            _ => detail.to_owned(),
        };
        // A start keeps the deploy's detail; the other moves explain themselves in it.
        let recorded_detail = (to != DeployState::Running).then_some(detail.as_str());
        if store::transition(&mut *tx, id, &[from], to, recorded_detail).await? {
            publish(desk, &mut tx, id, outcome, &detail, Source::Scheduler).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Records a transition that already happened in `tx`: audit event, status message edit,
/// announcement, a line in the thread.
async fn publish(
    desk: &Desk,
    tx: &mut sqlx::PgConnection,
    id: i64,
    outcome: Outcome,
    detail: &str,
    source: Source,
) -> Result<(), CommandError> {
    let deploy = store::deploy_by_id(&mut *tx, id)
        .await?
        .ok_or_else(|| CommandError::internal(format!("deploy {id} vanished")))?;
    let event_id = record_in(
        &mut *tx,
        &system(&deploy, source),
        outcome,
        &format!("{}: {detail}", view::headline(&deploy)),
    )
    .await?;
    if let (Some(channel), Some(message)) = (deploy.channel_id, deploy.status_message_id) {
        let status = view::status_message(&deploy, desk.deploys());
        outbox::enqueue_edit(&mut *tx, channel, message, &status, Some(event_id)).await?;
    }
    if let Some(thread) = deploy.thread_id {
        outbox::enqueue(
            &mut *tx,
            thread,
            &Message::text(
                crate::chat::Text::new()
                    .strong(deploy.state.as_str())
                    .plain(format!(": {detail}")),
            ),
            Some(event_id),
        )
        .await?;
    }
    if let Some(channel) = desk.deploys().announce_channel {
        outbox::enqueue(
            &mut *tx,
            channel,
            &view::announcement(&deploy, "opsbot"),
            Some(event_id),
        )
        .await?;
    }
    Ok(())
}

/// Ends a running deploy with `state`, if it is still running.
pub(super) async fn finish(
    desk: &Desk,
    id: i64,
    state: DeployState,
    detail: &str,
    source: Source,
) -> Result<(), CommandError> {
    let outcome = if state == DeployState::Succeeded {
        Outcome::Succeeded
    } else {
        Outcome::Failed
    };
    let mut tx = desk.pool.begin().await?;
    if store::transition(&mut *tx, id, &[DeployState::Running], state, Some(detail)).await? {
        publish(desk, &mut tx, id, outcome, detail, source).await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn post_progress(
    desk: &Desk,
    deploy: &Deploy,
    line: &str,
) -> Result<(), CommandError> {
    if let Some(thread) = deploy.thread_id {
        let text: String = line.chars().take(PROGRESS_MAX).collect();
        outbox::enqueue(&desk.pool, thread, &Message::text(text), None).await?;
    }
    Ok(())
}

/// Tracks one running deploy on its backend until it finishes or `cancel` fires.
async fn track(desk: Desk, id: i64, cancel: CancellationToken) {
    if let Err(e) = track_inner(&desk, id, &cancel).await {
        tracing::error!(deploy = id, error = %e, "deploy tracking failed; another round will retry");
        // Let the lease lapse so that a later round (here or elsewhere) picks it up again.
    }
}

async fn track_inner(desk: &Desk, id: i64, cancel: &CancellationToken) -> Result<(), CommandError> {
    let Some(row) = store::deploy_row(&desk.pool, id).await? else {
        return Ok(());
    };
    let checkpoint = row.checkpoint.clone();
    let mut deploy = row.into_deploy();
    let Some(spec) = desk
        .deploys()
        .services
        .get(&deploy.service)
        .map(|s| s.backend.clone())
    else {
        let detail = format!(
            "service {} is no longer configured; cannot carry out the deploy",
            deploy.service
        );
        return finish(desk, id, DeployState::Failed, &detail, Source::Scheduler).await;
    };
    if deploy.thread_id.is_none()
        && let (Some(chat), Some(channel), Some(message)) =
            (&desk.chat, deploy.channel_id, deploy.status_message_id)
    {
        match chat
            .start_thread(channel, message, &view::headline(&deploy))
            .await
        {
            Ok(thread) => {
                store::set_thread(&desk.pool, id, thread).await?;
                deploy.thread_id = Some(thread);
            }
            Err(e) => {
                tracing::warn!(deploy = id, error = %e, "could not start the deploy's thread; progress goes to the log only")
            }
        }
    }
    let job = DeployJob {
        deploy_id: id,
        correlation_id: deploy.correlation_id,
        service: deploy.service.clone(),
        version: deploy.version.clone(),
        environment: deploy.environment.clone(),
        requested_by: deploy.requested_by_name.clone(),
        is_rollback: deploy.is_rollback,
    };
    if checkpoint.is_none() {
        let backend = spec.describe(&deploy.environment);
        post_progress(desk, &deploy, &format!("starting: {backend}")).await?;
    }
    let (events, mut reports) = mpsc::unbounded_channel();
    let execution = backends::execute(&spec, &job, checkpoint, events, cancel.clone());
    tokio::pin!(execution);
    let mut renew = tokio::time::interval(LEASE_RENEWAL);
    let finished = loop {
        tokio::select! {
            finished = &mut execution => break finished,
            Some(report) = reports.recv() => handle_report(desk, &mut deploy, report).await?,
            _ = renew.tick() => store::renew_lease(&desk.pool, id, LEASE.as_secs_f64()).await?,
        }
    };
    // Reports sent just before the end.
    while let Ok(report) = reports.try_recv() {
        handle_report(desk, &mut deploy, report).await?;
    }
    match finished {
        Finish::Succeeded { detail } => {
            finish(desk, id, DeployState::Succeeded, &detail, Source::Scheduler).await
        }
        Finish::Failed { reason } => {
            finish(desk, id, DeployState::Failed, &reason, Source::Scheduler).await
        }
        Finish::AwaitCallback { timeout } => {
            let deadline = Utc::now()
                + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::minutes(30));
            store::set_callback_deadline(&desk.pool, id, deadline).await?;
            post_progress(
                desk,
                &deploy,
                "the deployer accepted the deploy; waiting for it to report",
            )
            .await
        }
        Finish::Interrupted => Ok(()),
    }
}

async fn handle_report(
    desk: &Desk,
    deploy: &mut Deploy,
    report: BackendEvent,
) -> Result<(), CommandError> {
    match report {
        BackendEvent::Progress(line) => post_progress(desk, deploy, &line).await,
        BackendEvent::Checkpoint(value) => {
            Ok(store::set_checkpoint(&desk.pool, deploy.id, &value).await?)
        }
        BackendEvent::Link { label, url } => {
            store::set_link(&desk.pool, deploy.id, &format!("[{label}]({url})")).await?;
            deploy.link = Some(format!("[{label}]({url})"));
            if let (Some(channel), Some(message)) = (deploy.channel_id, deploy.status_message_id) {
                let status = view::status_message(deploy, desk.deploys());
                outbox::enqueue_edit(&desk.pool, channel, message, &status, None).await?;
            }
            post_progress(desk, deploy, &format!("{label}: {url}")).await
        }
    }
}
