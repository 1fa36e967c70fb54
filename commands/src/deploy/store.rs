//! Every SQL statement of the deploy feature.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::model::{Deploy, DeployState, Lock};

/// The columns of a [`Deploy`], approvals included; reads share it so they cannot drift.
const DEPLOY_COLUMNS: &str = "
    d.id, d.correlation_id, d.service, d.environment, d.version, d.state, d.is_rollback,
    d.rollback_of, d.reason, d.freeze_overridden, d.requested_by_id, d.requested_by_name,
    d.requested_at, d.approvals_required,
    ARRAY(SELECT a.approver_name FROM deploy_approvals a
          WHERE a.deploy_id = d.id AND a.decision = 'approve' ORDER BY a.at) AS approved_by,
    d.approval_expires_at, d.started_at, d.finished_at, d.backend, d.link, d.detail,
    d.guild_id, d.channel_id, d.status_message_id, d.thread_id, d.checkpoint";

#[derive(Debug, sqlx::FromRow)]
pub(super) struct DeployRow {
    id: i64,
    correlation_id: Uuid,
    service: String,
    environment: String,
    version: String,
    state: DeployState,
    is_rollback: bool,
    rollback_of: Option<i64>,
    reason: String,
    freeze_overridden: bool,
    requested_by_id: i64,
    requested_by_name: String,
    requested_at: DateTime<Utc>,
    approvals_required: i32,
    approved_by: Vec<String>,
    approval_expires_at: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    backend: String,
    link: Option<String>,
    detail: String,
    guild_id: Option<i64>,
    channel_id: Option<i64>,
    status_message_id: Option<i64>,
    thread_id: Option<i64>,
    pub(super) checkpoint: Option<serde_json::Value>,
}

impl DeployRow {
    pub(super) fn into_deploy(self) -> Deploy {
        Deploy {
            id: self.id,
            correlation_id: self.correlation_id,
            service: self.service,
            environment: self.environment,
            version: self.version,
            state: self.state,
            is_rollback: self.is_rollback,
            rollback_of: self.rollback_of,
            reason: self.reason,
            freeze_overridden: self.freeze_overridden,
            requested_by_id: self.requested_by_id,
            requested_by_name: self.requested_by_name,
            requested_at: self.requested_at,
            approvals_required: self.approvals_required,
            approved_by: self.approved_by,
            approval_expires_at: self.approval_expires_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            backend: self.backend,
            link: self.link,
            detail: self.detail,
            guild_id: self.guild_id,
            channel_id: self.channel_id,
            status_message_id: self.status_message_id,
            thread_id: self.thread_id,
        }
    }
}

pub(super) async fn select_deploys(
    db: impl PgExecutor<'_>,
    filter: &'static str,
    bind: impl FnOnce(
        sqlx::query::QueryAs<'_, sqlx::Postgres, DeployRow, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<
        '_,
        sqlx::Postgres,
        DeployRow,
        sqlx::postgres::PgArguments,
    >,
) -> Result<Vec<DeployRow>, sqlx::Error> {
    let sql = format!("SELECT {DEPLOY_COLUMNS} FROM deploys d {filter}");
    bind(sqlx::query_as::<_, DeployRow>(sqlx::AssertSqlSafe(sql)))
        .fetch_all(db)
        .await
}

pub async fn deploy_by_id(db: impl PgExecutor<'_>, id: i64) -> Result<Option<Deploy>, sqlx::Error> {
    Ok(select_deploys(db, "WHERE d.id = $1", |q| q.bind(id))
        .await?
        .into_iter()
        .next()
        .map(DeployRow::into_deploy))
}

/// The newest deploy of `service` that started between `from` and `to` and did not fail
/// (running or succeeded): what an alert of that service correlates with.
pub async fn started_between(
    db: impl PgExecutor<'_>,
    service: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Option<Deploy>, sqlx::Error> {
    Ok(select_deploys(
        db,
        "WHERE d.service = $1 AND d.started_at BETWEEN $2 AND $3 AND d.state IN ('running', 'succeeded')
         ORDER BY d.started_at DESC, d.id DESC LIMIT 1",
        |q| q.bind(service.to_owned()).bind(from).bind(to),
    )
    .await?
    .into_iter()
    .next()
    .map(DeployRow::into_deploy))
}

/// A deploy row with its backend checkpoint (for the tracker).
pub(super) async fn deploy_row(
    db: impl PgExecutor<'_>,
    id: i64,
) -> Result<Option<DeployRow>, sqlx::Error> {
    Ok(select_deploys(db, "WHERE d.id = $1", |q| q.bind(id))
        .await?
        .into_iter()
        .next())
}

pub(super) async fn active_deploy(
    db: impl PgExecutor<'_>,
    service: &str,
    environment: &str,
) -> Result<Option<Deploy>, sqlx::Error> {
    Ok(select_deploys(
        db,
        "WHERE d.service = $1 AND d.environment = $2 AND d.state IN ('requested', 'approved', 'running')",
        |q| q.bind(service.to_owned()).bind(environment.to_owned()),
    )
    .await?
    .into_iter()
    .next()
    .map(DeployRow::into_deploy))
}

/// The newest deploys of a service (optionally in one environment), newest first.
pub(super) async fn history(
    db: impl PgExecutor<'_>,
    service: &str,
    environment: Option<&str>,
    limit: i64,
) -> Result<Vec<Deploy>, sqlx::Error> {
    Ok(select_deploys(
        db,
        "WHERE d.service = $1 AND ($2::text IS NULL OR d.environment = $2) ORDER BY d.id DESC LIMIT $3",
        |q| q.bind(service.to_owned()).bind(environment.map(str::to_owned)).bind(limit),
    )
    .await?
    .into_iter()
    .map(DeployRow::into_deploy)
    .collect())
}

/// The most deploys `/deploy status` shows; the rest are counted, not read.
pub const STATUS_MAX: i64 = 25;

/// What `/deploy status` shows: active deploys (newest first, at most [`STATUS_MAX`]), then
/// the latest finished deploy of each configured service and environment while room is left.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusRows {
    /// Sorted by service, environment, newest first.
    pub deploys: Vec<Deploy>,
    /// Active deploys not shown.
    pub more_active: i64,
    /// Some service's latest finished deploy was left out for want of room.
    pub more_finished: bool,
}

/// Active deploys, and the latest finished one per service and environment of `pairs`
/// (the catalog's), bounded: one probe of `deploys_history_idx` per pair, never a scan of the
/// history, however long it is or however many deploys wait.
pub(super) async fn status(
    db: &PgPool,
    service: Option<&str>,
    pairs: &[(String, String)],
) -> Result<StatusRows, sqlx::Error> {
    let active = select_deploys(
        db,
        "WHERE d.state IN ('requested', 'approved', 'running') AND ($1::text IS NULL OR d.service = $1)
         ORDER BY d.id DESC LIMIT $2",
        |q| q.bind(service.map(str::to_owned)).bind(STATUS_MAX),
    )
    .await?;
    let shown = i64::try_from(active.len()).unwrap_or(STATUS_MAX);
    let more_active = if shown == STATUS_MAX {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM deploys
             WHERE state IN ('requested', 'approved', 'running') AND ($1::text IS NULL OR service = $1)",
        )
        .bind(service.map(str::to_owned))
        .fetch_one(db)
        .await?
            - shown
    } else {
        0
    };
    let (services, environments): (Vec<String>, Vec<String>) = pairs
        .iter()
        .filter(|(s, _)| service.is_none_or(|name| s == name))
        .cloned()
        .unzip();
    let room = STATUS_MAX - shown;
    let mut finished = if room > 0 && !services.is_empty() {
        select_deploys(
            db,
            "WHERE d.id IN (
                SELECT l.id FROM unnest($1::text[], $2::text[]) AS p(service, environment)
                CROSS JOIN LATERAL (
                    SELECT x.id FROM deploys x
                    WHERE x.service = p.service AND x.environment = p.environment
                      AND x.state NOT IN ('requested', 'approved', 'running')
                    ORDER BY x.id DESC LIMIT 1) l
                LIMIT $3)",
            |q| q.bind(services.clone()).bind(environments).bind(room + 1),
        )
        .await?
    } else {
        Vec::new()
    };
    let more_finished = if room > 0 {
        i64::try_from(finished.len()).unwrap_or(i64::MAX) > room
    } else {
        !services.is_empty()
    };
    finished.truncate(usize::try_from(room.max(0)).unwrap_or(0));
    let mut deploys: Vec<Deploy> = active
        .into_iter()
        .chain(finished)
        .map(DeployRow::into_deploy)
        .collect();
    deploys.sort_by(|a, b| {
        (&a.service, &a.environment)
            .cmp(&(&b.service, &b.environment))
            .then(b.id.cmp(&a.id))
    });
    Ok(StatusRows {
        deploys,
        more_active,
        more_finished,
    })
}

/// Succeeded deploys of a service to an environment, newest first.
pub(super) async fn succeeded(
    db: impl PgExecutor<'_>,
    service: &str,
    environment: &str,
    limit: i64,
) -> Result<Vec<Deploy>, sqlx::Error> {
    Ok(select_deploys(
        db,
        "WHERE d.service = $1 AND d.environment = $2 AND d.state = 'succeeded' ORDER BY d.id DESC LIMIT $3",
        |q| q.bind(service.to_owned()).bind(environment.to_owned()).bind(limit),
    )
    .await?
    .into_iter()
    .map(DeployRow::into_deploy)
    .collect())
}

/// Versions deployed before (for autocomplete), newest first, distinct.
pub async fn recent_versions(
    db: &PgPool,
    service: Option<&str>,
    prefix: &str,
    limit: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let pattern = format!("{}%", crate::audit::escape_like(prefix));
    sqlx::query_scalar!(
        r#"SELECT version AS "version!" FROM deploys
           WHERE ($1::text IS NULL OR service = $1) AND version LIKE $2
           GROUP BY version ORDER BY max(id) DESC LIMIT $3"#,
        service,
        pattern,
        limit
    )
    .fetch_all(db)
    .await
}

pub(super) struct NewDeploy<'a> {
    pub correlation_id: Uuid,
    pub service: &'a str,
    pub environment: &'a str,
    pub version: &'a str,
    pub state: DeployState,
    pub is_rollback: bool,
    pub rollback_of: Option<i64>,
    pub reason: &'a str,
    pub freeze_overridden: bool,
    pub requested_by_id: i64,
    pub requested_by_name: &'a str,
    pub approvals_required: i32,
    pub approval_expires_at: Option<DateTime<Utc>>,
    pub backend: &'a str,
    pub guild_id: Option<i64>,
    pub channel_id: Option<i64>,
}

/// Inserts a deploy; `Ok(None)` when another deploy of that service and environment is active.
pub(super) async fn insert_deploy(
    db: impl PgExecutor<'_>,
    new: &NewDeploy<'_>,
) -> Result<Option<i64>, sqlx::Error> {
    let inserted = sqlx::query_scalar!(
        "INSERT INTO deploys (correlation_id, service, environment, version, state, is_rollback,
                              rollback_of, reason, freeze_overridden, requested_by_id, requested_by_name,
                              approvals_required, approval_expires_at, backend, guild_id, channel_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
         RETURNING id",
        new.correlation_id,
        new.service,
        new.environment,
        new.version,
        new.state.as_str(),
        new.is_rollback,
        new.rollback_of,
        new.reason,
        new.freeze_overridden,
        new.requested_by_id,
        new.requested_by_name,
        new.approvals_required,
        new.approval_expires_at,
        new.backend,
        new.guild_id,
        new.channel_id,
    )
    .fetch_one(db)
    .await;
    match inserted {
        Ok(id) => Ok(Some(id)),
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("deploys_one_active_idx") => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Moves a deploy from one of `from` to `to`; `false` if it was in no state of `from` (someone
/// else moved it first). Finished states stamp `finished_at`, `running` stamps `started_at`.
pub(super) async fn transition(
    db: impl PgExecutor<'_>,
    id: i64,
    from: &[DeployState],
    to: DeployState,
    detail: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let from: Vec<String> = from.iter().map(|s| s.as_str().to_owned()).collect();
    let done = sqlx::query!(
        "UPDATE deploys SET state = $3,
                detail = COALESCE($4, detail),
                started_at = CASE WHEN $3 = 'running' THEN now() ELSE started_at END,
                finished_at = CASE WHEN $3 IN ('succeeded', 'failed', 'cancelled', 'rejected', 'expired') THEN now() ELSE finished_at END,
                tracked_until = CASE WHEN $3 = 'running' THEN tracked_until ELSE NULL END,
                updated_at = now()
         WHERE id = $1 AND state = ANY($2)",
        id,
        &from,
        to.as_str(),
        detail,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn attach_status_message(
    db: impl PgExecutor<'_>,
    id: i64,
    channel_id: i64,
    message_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE deploys SET channel_id = $2, status_message_id = $3, updated_at = now() WHERE id = $1",
        id,
        channel_id,
        message_id
    )
    .execute(db)
    .await?;
    Ok(())
}

pub(super) async fn set_thread(
    db: impl PgExecutor<'_>,
    id: i64,
    thread_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE deploys SET thread_id = $2 WHERE id = $1",
        id,
        thread_id
    )
    .execute(db)
    .await?;
    Ok(())
}

pub(super) async fn set_checkpoint(
    db: impl PgExecutor<'_>,
    id: i64,
    checkpoint: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE deploys SET checkpoint = $2 WHERE id = $1",
        id,
        checkpoint
    )
    .execute(db)
    .await?;
    Ok(())
}

pub(super) async fn set_link(
    db: impl PgExecutor<'_>,
    id: i64,
    link: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE deploys SET link = $2, updated_at = now() WHERE id = $1",
        id,
        link
    )
    .execute(db)
    .await?;
    Ok(())
}

pub(super) async fn set_callback_deadline(
    db: impl PgExecutor<'_>,
    id: i64,
    deadline: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE deploys SET callback_deadline = $2 WHERE id = $1",
        id,
        deadline
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Claims running deploys no replica is tracking (just started, or orphaned by a restart)
/// for `lease_seconds`; returns their ids.
pub(super) async fn claim_untracked_running(
    db: &PgPool,
    lease_seconds: f64,
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar!(
        "UPDATE deploys SET tracked_until = now() + make_interval(secs => $1)
         WHERE id IN (SELECT id FROM deploys
                      WHERE state = 'running' AND callback_deadline IS NULL
                        AND (tracked_until IS NULL OR tracked_until < now())
                      FOR UPDATE SKIP LOCKED)
         RETURNING id",
        lease_seconds
    )
    .fetch_all(db)
    .await
}

/// Keeps the lease of a deploy this replica tracks.
pub(super) async fn renew_lease(
    db: &PgPool,
    id: i64,
    lease_seconds: f64,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE deploys SET tracked_until = now() + make_interval(secs => $2) WHERE id = $1 AND state = 'running'",
        id,
        lease_seconds
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Approved deploys, claimed (row-locked) for starting by this transaction.
pub(super) async fn claim_approved(db: impl PgExecutor<'_>) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT id FROM deploys WHERE state = 'approved' ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 20"
    )
    .fetch_all(db)
    .await
}

/// Requested deploys whose approval window has closed.
pub(super) async fn due_for_expiry(db: impl PgExecutor<'_>) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT id FROM deploys WHERE state = 'requested' AND approval_expires_at < now()
         ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 50"
    )
    .fetch_all(db)
    .await
}

/// Webhook deploys whose outcome was not reported in time.
pub(super) async fn due_for_callback_timeout(
    db: impl PgExecutor<'_>,
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT id FROM deploys WHERE state = 'running' AND callback_deadline < now()
         ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 50"
    )
    .fetch_all(db)
    .await
}

/// Records an approver's decision; `false` when they already decided on this deploy.
pub(super) async fn record_decision(
    db: impl PgExecutor<'_>,
    deploy_id: i64,
    approver_id: i64,
    approver_name: &str,
    decision: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "INSERT INTO deploy_approvals (deploy_id, approver_id, approver_name, decision)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        deploy_id,
        approver_id,
        approver_name,
        decision
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn approvals_count(
    db: impl PgExecutor<'_>,
    deploy_id: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM deploy_approvals WHERE deploy_id = $1 AND decision = 'approve'"#,
        deploy_id
    )
    .fetch_one(db)
    .await
}

/// The unexpired lock on `service` in `environment`, if any.
pub(super) async fn active_lock(
    db: &PgPool,
    service: &str,
    environment: &str,
) -> Result<Option<Lock>, sqlx::Error> {
    Ok(active_locks(db, Some(service))
        .await?
        .into_iter()
        .find(|lock| lock.environment == environment))
}

/// Unexpired locks, of one service or all, by service and environment.
pub(super) async fn active_locks(
    db: &PgPool,
    service: Option<&str>,
) -> Result<Vec<Lock>, sqlx::Error> {
    sqlx::query_as!(
        Lock,
        r#"SELECT service, environment, locked_by_id, locked_by_name, reason, locked_at, until_at AS until
           FROM deploy_locks
           WHERE ($1::text IS NULL OR service = $1) AND (until_at IS NULL OR until_at > now())
           ORDER BY service, environment"#,
        service
    )
    .fetch_all(db)
    .await
}

/// Takes the lock unless an unexpired one is held; `false` if one is.
pub(super) async fn take_lock(db: impl PgExecutor<'_>, lock: &Lock) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "INSERT INTO deploy_locks (service, environment, locked_by_id, locked_by_name, reason, until_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (service, environment) DO UPDATE
            SET locked_by_id = EXCLUDED.locked_by_id, locked_by_name = EXCLUDED.locked_by_name,
                reason = EXCLUDED.reason, locked_at = now(), until_at = EXCLUDED.until_at
            WHERE deploy_locks.until_at IS NOT NULL AND deploy_locks.until_at <= now()",
        lock.service,
        lock.environment,
        lock.locked_by_id,
        lock.locked_by_name,
        lock.reason,
        lock.until,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes the lock; returns it if one was held (and unexpired).
pub(super) async fn release_lock(
    db: impl PgExecutor<'_>,
    service: &str,
    environment: &str,
) -> Result<Option<Lock>, sqlx::Error> {
    sqlx::query_as!(
        Lock,
        r#"DELETE FROM deploy_locks WHERE service = $1 AND environment = $2
           RETURNING service, environment, locked_by_id, locked_by_name, reason, locked_at, until_at AS until"#,
        service,
        environment
    )
    .fetch_optional(db)
    .await
    .map(|lock| lock.filter(|l| l.until.is_none_or(|u| u > Utc::now())))
}

/// The newest deploys of every service, newest first (the dashboard's deploy list).
pub async fn recent_deploys(db: &PgPool, limit: i64) -> Result<Vec<Deploy>, sqlx::Error> {
    Ok(
        select_deploys(db, "ORDER BY d.id DESC LIMIT $1", |q| q.bind(limit))
            .await?
            .into_iter()
            .map(DeployRow::into_deploy)
            .collect(),
    )
}
