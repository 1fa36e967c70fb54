//! The digest's SQL: the rows of a window (deploys, incidents, alerts; denials come from
//! [`crate::audit::denials_between`]) and the claims of fire times in `digest_runs`.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use super::sections::{AlertRow, DeployRow, DigestData, IncidentRow, Window};

/// Most rows of one kind a digest reads: far more than a message can show, few enough that
/// a runaway table cannot stall the scheduler.
pub const ROW_LIMIT: i64 = 5000;

/// Everything `window` shows. `service_label` is the alert label naming the service.
pub async fn read_window(
    db: &mut PgConnection,
    window: Window,
    service_label: &str,
) -> Result<DigestData, sqlx::Error> {
    let deploys: Vec<DeployRow> = sqlx::query_as(
        "SELECT id, service, environment, version, state, is_rollback, freeze_overridden,
                requested_by_name, requested_at, finished_at
         FROM deploys
         WHERE (finished_at > $1 AND finished_at <= $2) OR (requested_at > $1 AND requested_at <= $2)
         ORDER BY id LIMIT $3",
    )
    .bind(window.start)
    .bind(window.end)
    .bind(ROW_LIMIT)
    .fetch_all(&mut *db)
    .await?;
    let incidents: Vec<IncidentRow> = sqlx::query_as(
        "SELECT i.id, i.title, i.severity, i.status, i.started_at, i.resolved_at,
                r.user_name AS commander
         FROM incidents i
         LEFT JOIN incident_roles r ON r.incident_id = i.id AND r.role = 'commander'
         WHERE (i.started_at > $1 AND i.started_at <= $2)
            OR (i.resolved_at > $1 AND i.resolved_at <= $2)
            OR (i.status <> 'resolved' AND i.started_at <= $2)
         ORDER BY i.id LIMIT $3",
    )
    .bind(window.start)
    .bind(window.end)
    .bind(ROW_LIMIT)
    .fetch_all(&mut *db)
    .await?;
    let alerts: Vec<AlertRow> = sqlx::query_as(
        "SELECT COALESCE(common_labels->>'alertname', group_labels->>'alertname', '') AS alertname,
                COALESCE(common_labels->>$4, group_labels->>$4, '') AS service,
                status, first_seen_at, resolved_at, acked_by_name, silenced_by_name, route_index
         FROM alert_groups
         WHERE (first_seen_at > $1 AND first_seen_at <= $2)
            OR (resolved_at > $1 AND resolved_at <= $2)
            OR (status = 'firing' AND first_seen_at <= $2)
         ORDER BY id LIMIT $3",
    )
    .bind(window.start)
    .bind(window.end)
    .bind(ROW_LIMIT)
    .bind(service_label)
    .fetch_all(&mut *db)
    .await?;
    let denials =
        crate::audit::denials_between(&mut *db, window.start, window.end, ROW_LIMIT).await?;
    Ok(DigestData {
        deploys,
        incidents,
        alerts,
        denials,
    })
}

/// The newest fire time of `digest` any replica claimed.
pub async fn last_claimed(
    db: impl PgExecutor<'_>,
    digest: &str,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar("SELECT max(fire_at) FROM digest_runs WHERE digest = $1")
        .bind(digest)
        .fetch_one(db)
        .await
}

/// Claims fire time `fire_at` of `digest`; false when another replica (or an earlier round)
/// already has. Call it inside the transaction that writes the post: a rollback frees it.
pub async fn claim(
    db: &mut PgConnection,
    digest: &str,
    fire_at: DateTime<Utc>,
    window_start: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let won: Option<DateTime<Utc>> = sqlx::query_scalar(
        "INSERT INTO digest_runs (digest, fire_at, window_start) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING RETURNING fire_at",
    )
    .bind(digest)
    .bind(fire_at)
    .bind(window_start)
    .fetch_optional(db)
    .await?;
    Ok(won.is_some())
}

/// Records what became of a claimed fire time.
pub async fn settle(
    db: &mut PgConnection,
    digest: &str,
    fire_at: DateTime<Utc>,
    status: &str,
    outbox_id: Option<i64>,
    audit_event_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE digest_runs SET status = $3, outbox_id = $4, audit_event_id = $5
         WHERE digest = $1 AND fire_at = $2",
    )
    .bind(digest)
    .bind(fire_at)
    .bind(status)
    .bind(outbox_id)
    .bind(audit_event_id)
    .execute(db)
    .await?;
    Ok(())
}

/// One claimed fire time, for tests and operators.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RunRow {
    pub fire_at: DateTime<Utc>,
    pub status: String,
    pub outbox_id: Option<i64>,
}

pub async fn runs(db: impl PgExecutor<'_>, digest: &str) -> Result<Vec<RunRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT fire_at, status, outbox_id FROM digest_runs WHERE digest = $1 ORDER BY fire_at",
    )
    .bind(digest)
    .fetch_all(db)
    .await
}
