//! Every SQL statement of the incident feature.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use super::model::{Incident, IncidentRole, Status};

const COLUMNS: &str = "id, correlation_id, title, slug, severity, status, services, description, \
    declared_by_id, declared_by_name, guild_id, declared_in_channel, declared_interaction, \
    started_at, resolved_at, resolution, last_update_at, channel_id, summary_outbox_id, \
    summary_pinned, topic_set, archived";

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    correlation_id: uuid::Uuid,
    title: String,
    slug: String,
    severity: String,
    status: String,
    services: Vec<String>,
    description: String,
    declared_by_id: i64,
    declared_by_name: String,
    guild_id: Option<i64>,
    declared_in_channel: Option<i64>,
    declared_interaction: Option<i64>,
    started_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    resolution: Option<String>,
    last_update_at: DateTime<Utc>,
    channel_id: Option<i64>,
    summary_outbox_id: Option<i64>,
    summary_pinned: bool,
    topic_set: Option<String>,
    archived: bool,
}

impl Row {
    fn into_incident(self, roles: Vec<IncidentRole>) -> Result<Incident, sqlx::Error> {
        let status = Status::parse(&self.status).ok_or_else(|| {
            sqlx::Error::Decode(format!("unknown incident status {:?}", self.status).into())
        })?;
        Ok(Incident {
            id: self.id,
            correlation_id: self.correlation_id,
            title: self.title,
            slug: self.slug,
            severity: self.severity,
            status,
            services: self.services,
            description: self.description,
            declared_by_id: self.declared_by_id,
            declared_by_name: self.declared_by_name,
            guild_id: self.guild_id,
            declared_in_channel: self.declared_in_channel,
            declared_interaction: self.declared_interaction,
            started_at: self.started_at,
            resolved_at: self.resolved_at,
            resolution: self.resolution,
            last_update_at: self.last_update_at,
            channel_id: self.channel_id,
            summary_outbox_id: self.summary_outbox_id,
            summary_pinned: self.summary_pinned,
            topic_set: self.topic_set,
            archived: self.archived,
            roles,
        })
    }
}

/// A new incident's row.
pub(super) struct NewIncident<'a> {
    pub correlation_id: uuid::Uuid,
    pub title: &'a str,
    pub slug: &'a str,
    pub severity: &'a str,
    pub services: &'a [String],
    pub description: &'a str,
    pub declared_by_id: i64,
    pub declared_by_name: &'a str,
    pub guild_id: Option<i64>,
    pub declared_in_channel: Option<i64>,
    pub declared_interaction: Option<i64>,
}

pub(super) async fn insert(
    db: &mut PgConnection,
    new: &NewIncident<'_>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO incidents (correlation_id, title, slug, severity, status, services, description,
             declared_by_id, declared_by_name, guild_id, declared_in_channel, declared_interaction)
         VALUES ($1, $2, $3, $4, 'investigating', $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(new.correlation_id)
    .bind(new.title)
    .bind(new.slug)
    .bind(new.severity)
    .bind(new.services)
    .bind(new.description)
    .bind(new.declared_by_id)
    .bind(new.declared_by_name)
    .bind(new.guild_id)
    .bind(new.declared_in_channel)
    .bind(new.declared_interaction)
    .fetch_one(db)
    .await
}

async fn roles_of(db: &mut PgConnection, id: i64) -> Result<Vec<IncidentRole>, sqlx::Error> {
    sqlx::query_as(
        "SELECT role, user_id, user_name, assigned_at FROM incident_roles
         WHERE incident_id = $1 ORDER BY role",
    )
    .bind(id)
    .fetch_all(db)
    .await
}

async fn complete(db: &mut PgConnection, rows: Vec<Row>) -> Result<Vec<Incident>, sqlx::Error> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let roles = roles_of(&mut *db, row.id).await?;
        out.push(row.into_incident(roles)?);
    }
    Ok(out)
}

/// Incident `id`; `lock` takes its row for update (inside a transaction).
pub(super) async fn by_id(
    db: &mut PgConnection,
    id: i64,
    lock: bool,
) -> Result<Option<Incident>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM incidents WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_all(&mut *db)
        .await?;
    Ok(complete(db, rows).await?.into_iter().next())
}

/// The incident whose channel is `channel_id`.
pub(super) async fn by_channel(
    db: &mut PgConnection,
    channel_id: i64,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM incidents WHERE channel_id = $1")
        .bind(channel_id)
        .fetch_optional(db)
        .await
}

/// Open incidents first (oldest first), then the most recently resolved, at most `limit`.
pub(super) async fn list(
    db: &mut PgConnection,
    open_only: bool,
    limit: i64,
) -> Result<Vec<Incident>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM incidents {} ORDER BY (status = 'resolved'), \
         CASE WHEN status = 'resolved' THEN -extract(epoch FROM started_at) ELSE extract(epoch FROM started_at) END, id \
         LIMIT $1",
        if open_only {
            "WHERE status <> 'resolved'"
        } else {
            ""
        }
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(limit)
        .fetch_all(&mut *db)
        .await?;
    complete(db, rows).await
}

/// The oldest open incident at one of `severities` that lists `service`.
pub(super) async fn open_freezing(
    pool: &sqlx::PgPool,
    service: &str,
    severities: &[String],
) -> Result<Option<Incident>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let sql = format!(
        "SELECT {COLUMNS} FROM incidents WHERE status <> 'resolved' AND $1 = ANY(services) \
         AND severity = ANY($2) ORDER BY started_at, id LIMIT 1"
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(service)
        .bind(severities)
        .fetch_all(&mut *conn)
        .await?;
    Ok(complete(&mut conn, rows).await?.into_iter().next())
}

/// Appends a timeline event.
pub(super) async fn add_event(
    db: impl PgExecutor<'_>,
    incident_id: i64,
    kind: &str,
    actor: (i64, &str),
    text: &str,
    audit_event_id: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO incident_events (incident_id, kind, actor_id, actor_name, text, audit_event_id)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(incident_id)
    .bind(kind)
    .bind(actor.0)
    .bind(actor.1)
    .bind(text)
    .bind(audit_event_id)
    .execute(db)
    .await?;
    Ok(())
}

pub(super) async fn set_role(
    db: impl PgExecutor<'_>,
    incident_id: i64,
    role: &str,
    user: (i64, &str),
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO incident_roles (incident_id, role, user_id, user_name) VALUES ($1, $2, $3, $4)
         ON CONFLICT (incident_id, role) DO UPDATE
         SET user_id = EXCLUDED.user_id, user_name = EXCLUDED.user_name, assigned_at = now()",
    )
    .bind(incident_id)
    .bind(role)
    .bind(user.0)
    .bind(user.1)
    .execute(db)
    .await?;
    Ok(())
}

/// The fields a change sets; `None` leaves them.
#[derive(Debug, Default)]
pub(super) struct Update<'a> {
    pub status: Option<Status>,
    pub severity: Option<&'a str>,
    /// A status update was posted (reminders count from now).
    pub touched: bool,
    /// `Some(Some(text))`: resolved with that summary; `Some(None)`: reopened.
    pub resolution: Option<Option<&'a str>>,
}

pub(super) async fn update(
    db: impl PgExecutor<'_>,
    id: i64,
    update: &Update<'_>,
) -> Result<(), sqlx::Error> {
    let (resolve, reopen) = match update.resolution {
        Some(Some(_)) => (true, false),
        Some(None) => (false, true),
        None => (false, false),
    };
    sqlx::query(
        "UPDATE incidents SET
             status = COALESCE($2, status),
             severity = COALESCE($3, severity),
             last_update_at = CASE WHEN $4 THEN now() ELSE last_update_at END,
             resolved_at = CASE WHEN $5 THEN now() WHEN $6 THEN NULL ELSE resolved_at END,
             resolution = CASE WHEN $5 THEN $7 WHEN $6 THEN NULL ELSE resolution END,
             archived = CASE WHEN $6 THEN false ELSE archived END,
             updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(update.status.map(Status::as_str))
    .bind(update.severity)
    .bind(update.touched)
    .bind(resolve)
    .bind(reopen)
    .bind(update.resolution.flatten())
    .execute(db)
    .await?;
    Ok(())
}

/// Incidents whose channel is not known yet, oldest first.
pub(super) async fn without_channel(pool: &sqlx::PgPool) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM incidents WHERE channel_id IS NULL ORDER BY id LIMIT 20")
        .fetch_all(pool)
        .await
}

/// Locks incident `id` (waiting for whoever holds it) and returns its channel as it is
/// then: `None` means the caller, holding the lock, creates (or finds) the channel.
pub(super) async fn lock_channel(
    db: &mut PgConnection,
    id: i64,
) -> Result<Option<Option<i64>>, sqlx::Error> {
    sqlx::query_scalar("SELECT channel_id FROM incidents WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(db)
        .await
}

pub(super) async fn set_channel(
    db: impl PgExecutor<'_>,
    id: i64,
    channel_id: i64,
    summary_outbox_id: i64,
    topic: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE incidents SET channel_id = $2, summary_outbox_id = $3, topic_set = $4, updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(channel_id)
    .bind(summary_outbox_id)
    .bind(topic)
    .execute(db)
    .await?;
    Ok(())
}

/// Summaries that were posted but not pinned yet: incident, channel, message.
pub(super) async fn unpinned(pool: &sqlx::PgPool) -> Result<Vec<(i64, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT i.id, i.channel_id, o.message_id FROM incidents i
         JOIN outbox o ON o.id = i.summary_outbox_id
         WHERE NOT i.summary_pinned AND o.status = 'sent' AND o.message_id IS NOT NULL
           AND i.channel_id IS NOT NULL
         ORDER BY i.id LIMIT 20",
    )
    .fetch_all(pool)
    .await
}

pub(super) async fn mark_pinned(pool: &sqlx::PgPool, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE incidents SET summary_pinned = true WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn mark_topic(
    pool: &sqlx::PgPool,
    id: i64,
    topic: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE incidents SET topic_set = $2 WHERE id = $1")
        .bind(id)
        .bind(topic)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn mark_archived(pool: &sqlx::PgPool, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE incidents SET archived = true WHERE id = $1 AND status = 'resolved'")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Incidents with a channel that changed recently or are not yet archived after resolve: the
/// reconciler checks their topic and archive state.
pub(super) async fn to_reconcile(pool: &sqlx::PgPool) -> Result<Vec<Incident>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let sql = format!(
        "SELECT {COLUMNS} FROM incidents WHERE channel_id IS NOT NULL AND NOT archived \
         ORDER BY id LIMIT 100"
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await?;
    complete(&mut conn, rows).await
}

/// Open incidents with a channel, for reminders.
pub(super) async fn open_with_channel(pool: &sqlx::PgPool) -> Result<Vec<Incident>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let sql = format!(
        "SELECT {COLUMNS} FROM incidents WHERE channel_id IS NOT NULL AND status <> 'resolved' \
         ORDER BY id LIMIT 500"
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await?;
    complete(&mut conn, rows).await
}

/// Claims reminder `(incident, kind, due_at)`: true for the one caller that gets it.
pub(super) async fn claim_reminder(
    db: impl PgExecutor<'_>,
    incident_id: i64,
    kind: &str,
    due_at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let claimed: Option<i64> = sqlx::query_scalar(
        "INSERT INTO incident_reminders (incident_id, kind, due_at) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING RETURNING incident_id",
    )
    .bind(incident_id)
    .bind(kind)
    .bind(due_at)
    .fetch_optional(db)
    .await?;
    Ok(claimed.is_some())
}

pub(super) async fn set_reminder_outbox(
    db: impl PgExecutor<'_>,
    incident_id: i64,
    kind: &str,
    due_at: DateTime<Utc>,
    outbox_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE incident_reminders SET outbox_id = $4 WHERE incident_id = $1 AND kind = $2 AND due_at = $3",
    )
    .bind(incident_id)
    .bind(kind)
    .bind(due_at)
    .bind(outbox_id)
    .execute(db)
    .await?;
    Ok(())
}

/// A timeline event as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct EventRow {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub actor_name: String,
    pub text: String,
}

pub(super) async fn events(
    db: impl PgExecutor<'_>,
    incident_id: i64,
) -> Result<Vec<EventRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT at, kind, actor_name, text FROM incident_events WHERE incident_id = $1 ORDER BY at, id",
    )
    .bind(incident_id)
    .fetch_all(db)
    .await
}

/// A deploy of one of the incident's services in its window.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct DeployRow {
    pub id: i64,
    pub service: String,
    pub environment: String,
    pub version: String,
    pub state: String,
    pub is_rollback: bool,
    pub requested_by_name: String,
    pub requested_at: DateTime<Utc>,
}

pub(super) async fn deploys_between(
    db: impl PgExecutor<'_>,
    services: &[String],
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<DeployRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, service, environment, version, state, is_rollback, requested_by_name, requested_at
         FROM deploys WHERE service = ANY($1) AND requested_at BETWEEN $2 AND $3
         ORDER BY requested_at, id",
    )
    .bind(services)
    .bind(from)
    .bind(until)
    .fetch_all(db)
    .await
}
