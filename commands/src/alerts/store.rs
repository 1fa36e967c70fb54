//! The alert tables (`alert_groups`, `alert_instances`): every alert SQL lives here.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use super::payload::{Alert, Labels, Payload, Status};

/// One alert group as shown in one channel (one occurrence: a re-fire after resolution is a
/// new row).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AlertGroup {
    pub id: i64,
    pub group_key: String,
    pub channel_id: i64,
    pub status: String,
    pub receiver: String,
    pub group_labels: sqlx::types::Json<Labels>,
    pub common_labels: sqlx::types::Json<Labels>,
    pub common_annotations: sqlx::types::Json<Labels>,
    pub external_url: String,
    pub route_index: i32,
    /// The outbox row that posts the group's message (`outbox.message_id` once delivered).
    pub post_outbox_id: Option<i64>,
    pub acked_by_id: Option<i64>,
    pub acked_by_name: Option<String>,
    pub acked_at: Option<DateTime<Utc>>,
    /// The Alertmanager silence made from the message, while it lasts.
    pub silence_id: Option<String>,
    pub silenced_by_id: Option<i64>,
    pub silenced_by_name: Option<String>,
    /// `None` with a silence: until the group resolves.
    pub silenced_until: Option<DateTime<Utc>>,
    pub first_seen_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// The thread on the message (long groups), once started.
    pub thread_id: Option<i64>,
    /// The deploy the group correlates with (`alert_groups.correlated_deploy_id`).
    pub correlated: Option<sqlx::types::Json<CorrelatedDeploy>>,
    /// The incident declared from the group's message (`alert_groups.incident_id`).
    pub incident: Option<sqlx::types::Json<LinkedIncident>>,
}

/// What an alert message says about the incident declared from it.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct LinkedIncident {
    pub id: i64,
    pub title: String,
    pub slug: String,
    pub channel_id: Option<i64>,
    pub guild_id: Option<i64>,
}

/// What an alert message says about the deploy it correlates with.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct CorrelatedDeploy {
    pub id: i64,
    pub service: String,
    pub environment: String,
    pub version: String,
    pub by: String,
    pub by_id: i64,
    pub started_at: Option<DateTime<Utc>>,
    pub link: Option<String>,
}

impl AlertGroup {
    pub fn is_firing(&self) -> bool {
        self.status == Status::Firing.as_str()
    }
}

/// One occurrence of one alert (fingerprint + startsAt).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AlertInstance {
    pub fingerprint: String,
    pub starts_at: DateTime<Utc>,
    pub status: String,
    pub ends_at: Option<DateTime<Utc>>,
    pub labels: sqlx::types::Json<Labels>,
    pub annotations: sqlx::types::Json<Labels>,
    pub generator_url: String,
}

impl AlertInstance {
    pub fn is_firing(&self) -> bool {
        self.status == Status::Firing.as_str()
    }
}

pub(super) const GROUP_COLUMNS: &str = "id, group_key, channel_id, status, receiver, group_labels, common_labels, \
     common_annotations, external_url, route_index, post_outbox_id, acked_by_id, acked_by_name, \
     acked_at, silence_id, silenced_by_id, silenced_by_name, silenced_until, first_seen_at, resolved_at, thread_id, \
     (SELECT json_build_object('id', d.id, 'service', d.service, 'environment', d.environment, \
        'version', d.version, 'by', d.requested_by_name, 'by_id', d.requested_by_id, \
        'started_at', d.started_at, 'link', d.link) \
      FROM deploys d WHERE d.id = correlated_deploy_id) AS correlated, \
     (SELECT json_build_object('id', i.id, 'title', i.title, 'slug', i.slug, \
        'channel_id', i.channel_id, 'guild_id', i.guild_id) \
      FROM incidents i WHERE i.id = incident_id) AS incident";

/// The firing group of `group_key` in `channel_id`, locked for this transaction; created
/// (from `payload`) when there is none.
pub async fn lock_or_create_firing(
    tx: &mut PgConnection,
    payload: &Payload,
    channel_id: i64,
    route_index: i32,
) -> Result<(AlertGroup, bool), sqlx::Error> {
    let select = format!(
        "SELECT {GROUP_COLUMNS} FROM alert_groups WHERE group_key = $1 AND channel_id = $2 AND status = 'firing' FOR UPDATE"
    );
    if let Some(group) = sqlx::query_as::<_, AlertGroup>(sqlx::AssertSqlSafe(select.clone()))
        .bind(&payload.group_key)
        .bind(channel_id)
        .fetch_optional(&mut *tx)
        .await?
    {
        return Ok((group, false));
    }
    let insert = format!(
        "INSERT INTO alert_groups (group_key, channel_id, status, receiver, group_labels, common_labels, \
         common_annotations, external_url, route_index) VALUES ($1, $2, 'firing', $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (group_key, channel_id) WHERE status = 'firing' DO NOTHING RETURNING {GROUP_COLUMNS}"
    );
    let created = sqlx::query_as::<_, AlertGroup>(sqlx::AssertSqlSafe(insert))
        .bind(&payload.group_key)
        .bind(channel_id)
        .bind(&payload.receiver)
        .bind(sqlx::types::Json(&payload.group_labels))
        .bind(sqlx::types::Json(&payload.common_labels))
        .bind(sqlx::types::Json(&payload.common_annotations))
        .bind(&payload.external_url)
        .bind(route_index)
        .fetch_optional(&mut *tx)
        .await?;
    match created {
        Some(group) => Ok((group, true)),
        // Another delivery created it in the meantime: wait for it and take that one.
        None => {
            let group = sqlx::query_as::<_, AlertGroup>(sqlx::AssertSqlSafe(select))
                .bind(&payload.group_key)
                .bind(channel_id)
                .fetch_one(&mut *tx)
                .await?;
            Ok((group, false))
        }
    }
}

/// What one alert of a delivery changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A new occurrence (firing, or already resolved when first seen).
    New(Status),
    /// A firing occurrence resolved.
    Resolved,
    /// A firing occurrence's end time moved.
    Updated,
}

/// Stores `alert` in `group`; `None` when it changes nothing (a redelivery). A resolved
/// occurrence stays resolved: a late, reordered "firing" of it changes nothing.
pub async fn upsert_alert(
    tx: &mut PgConnection,
    group_id: i64,
    alert: &Alert,
) -> Result<Option<Change>, sqlx::Error> {
    let row: Option<(bool, String)> = sqlx::query_as(
        "INSERT INTO alert_instances AS a (group_id, fingerprint, starts_at, status, ends_at, labels, annotations, generator_url)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (group_id, fingerprint, starts_at) DO UPDATE
            SET status = EXCLUDED.status, ends_at = EXCLUDED.ends_at, labels = EXCLUDED.labels,
                annotations = EXCLUDED.annotations, generator_url = EXCLUDED.generator_url, updated_at = now()
            WHERE a.status = 'firing'
              AND (a.status, a.ends_at) IS DISTINCT FROM (EXCLUDED.status, EXCLUDED.ends_at)
         RETURNING (xmax = 0) AS inserted, a.status",
    )
    .bind(group_id)
    .bind(&alert.fingerprint)
    .bind(alert.starts_at)
    .bind(alert.status.as_str())
    .bind(alert.ends_at)
    .bind(sqlx::types::Json(&alert.labels))
    .bind(sqlx::types::Json(&alert.annotations))
    .bind(&alert.generator_url)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(
        row.map(|(inserted, status)| match (inserted, status.as_str()) {
            (true, _) => Change::New(alert.status),
            (false, "resolved") => Change::Resolved,
            (false, _) => Change::Updated,
        }),
    )
}

/// [`upsert_alert`] for every alert of a delivery in one statement (one round trip): the
/// change of each, in the order given. Alerts repeating one occurrence (fingerprint and
/// start) within the delivery are stored one at a time instead, exactly as before.
pub async fn upsert_alerts(
    tx: &mut PgConnection,
    group_id: i64,
    alerts: &[Alert],
) -> Result<Vec<Option<Change>>, sqlx::Error> {
    let mut seen = std::collections::HashSet::new();
    if alerts.len() < 2
        || !alerts
            .iter()
            .all(|a| seen.insert((&a.fingerprint, a.starts_at.timestamp_micros())))
    {
        let mut changes = Vec::with_capacity(alerts.len());
        for alert in alerts {
            changes.push(upsert_alert(&mut *tx, group_id, alert).await?);
        }
        return Ok(changes);
    }
    let rows: Vec<(String, DateTime<Utc>, bool, String)> = sqlx::query_as(
        "INSERT INTO alert_instances AS a (group_id, fingerprint, starts_at, status, ends_at, labels, annotations, generator_url)
         SELECT $1, f, s, st, e, l, an, g
         FROM unnest($2::text[], $3::timestamptz[], $4::text[], $5::timestamptz[], $6::jsonb[], $7::jsonb[], $8::text[])
              AS t(f, s, st, e, l, an, g)
         ON CONFLICT (group_id, fingerprint, starts_at) DO UPDATE
            SET status = EXCLUDED.status, ends_at = EXCLUDED.ends_at, labels = EXCLUDED.labels,
                annotations = EXCLUDED.annotations, generator_url = EXCLUDED.generator_url, updated_at = now()
            WHERE a.status = 'firing'
              AND (a.status, a.ends_at) IS DISTINCT FROM (EXCLUDED.status, EXCLUDED.ends_at)
         RETURNING a.fingerprint, a.starts_at, (xmax = 0) AS inserted, a.status",
    )
    .bind(group_id)
    .bind(alerts.iter().map(|a| a.fingerprint.clone()).collect::<Vec<_>>())
    .bind(alerts.iter().map(|a| a.starts_at).collect::<Vec<_>>())
    .bind(alerts.iter().map(|a| a.status.as_str()).collect::<Vec<_>>())
    .bind(alerts.iter().map(|a| a.ends_at).collect::<Vec<_>>())
    .bind(
        alerts
            .iter()
            .map(|a| sqlx::types::Json(&a.labels))
            .collect::<Vec<_>>(),
    )
    .bind(
        alerts
            .iter()
            .map(|a| sqlx::types::Json(&a.annotations))
            .collect::<Vec<_>>(),
    )
    .bind(alerts.iter().map(|a| a.generator_url.clone()).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    Ok(alerts
        .iter()
        .map(|alert| {
            rows.iter()
                .find(|(f, s, _, _)| {
                    // Postgres keeps microseconds; Alertmanager sends nanoseconds.
                    *f == alert.fingerprint
                        && (alert.starts_at - *s)
                            .num_nanoseconds()
                            .is_some_and(|n| n.abs() < 1000)
                })
                .map(
                    |(_, _, inserted, status)| match (*inserted, status.as_str()) {
                        (true, _) => Change::New(alert.status),
                        (false, "resolved") => Change::Resolved,
                        (false, _) => Change::Updated,
                    },
                )
        })
        .collect())
}

/// The alerts of a group, firing first, then by start.
pub async fn instances(
    db: impl sqlx::PgExecutor<'_>,
    group_id: i64,
) -> Result<Vec<AlertInstance>, sqlx::Error> {
    sqlx::query_as(
        "SELECT fingerprint, starts_at, status, ends_at, labels, annotations, generator_url
         FROM alert_instances WHERE group_id = $1
         ORDER BY status = 'firing' DESC, starts_at, fingerprint COLLATE \"C\"",
    )
    .bind(group_id)
    .fetch_all(db)
    .await
}

/// What [`instances`] returns for a group that holds exactly `alerts`, each stored new, without
/// reading them back: times at Postgres's microsecond precision, in the same order.
pub fn instances_as_stored(alerts: &[Alert]) -> Vec<AlertInstance> {
    let micros = |t: DateTime<Utc>| {
        DateTime::<Utc>::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
    };
    let mut stored: Vec<AlertInstance> = alerts
        .iter()
        .map(|a| AlertInstance {
            fingerprint: a.fingerprint.clone(),
            starts_at: micros(a.starts_at),
            status: a.status.as_str().to_owned(),
            ends_at: a.ends_at.map(micros),
            labels: sqlx::types::Json(a.labels.clone()),
            annotations: sqlx::types::Json(a.annotations.clone()),
            generator_url: a.generator_url.clone(),
        })
        .collect();
    stored.sort_by(|a, b| {
        b.is_firing()
            .cmp(&a.is_firing())
            .then(a.starts_at.cmp(&b.starts_at))
            .then_with(|| a.fingerprint.cmp(&b.fingerprint))
    });
    stored
}

/// Refreshes the group's common labels and annotations from the newest delivery and, when
/// none of its alerts fire any more, marks it resolved. Returns the group as stored.
pub async fn refresh_group(
    tx: &mut PgConnection,
    group_id: i64,
    payload: &Payload,
) -> Result<AlertGroup, sqlx::Error> {
    let update = format!(
        "UPDATE alert_groups g SET common_labels = $2, common_annotations = $3, updated_at = now(),
            status = CASE WHEN EXISTS (SELECT 1 FROM alert_instances i WHERE i.group_id = g.id AND i.status = 'firing')
                          THEN 'firing' ELSE 'resolved' END,
            resolved_at = CASE WHEN EXISTS (SELECT 1 FROM alert_instances i WHERE i.group_id = g.id AND i.status = 'firing')
                          THEN NULL ELSE now() END
         WHERE id = $1 RETURNING {GROUP_COLUMNS}"
    );
    sqlx::query_as::<_, AlertGroup>(sqlx::AssertSqlSafe(update))
        .bind(group_id)
        .bind(sqlx::types::Json(&payload.common_labels))
        .bind(sqlx::types::Json(&payload.common_annotations))
        .fetch_one(&mut *tx)
        .await
}

pub async fn set_post(
    tx: &mut PgConnection,
    group_id: i64,
    outbox_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE alert_groups SET post_outbox_id = $2 WHERE id = $1")
        .bind(group_id)
        .bind(outbox_id)
        .execute(&mut *tx)
        .await
        .map(|_| ())
}

/// A group by id.
pub async fn group(
    db: impl sqlx::PgExecutor<'_>,
    group_id: i64,
) -> Result<Option<AlertGroup>, sqlx::Error> {
    let select = format!("SELECT {GROUP_COLUMNS} FROM alert_groups WHERE id = $1");
    sqlx::query_as::<_, AlertGroup>(sqlx::AssertSqlSafe(select))
        .bind(group_id)
        .fetch_optional(db)
        .await
}

/// A group by id, locked for this transaction.
pub async fn lock_group(
    tx: &mut PgConnection,
    group_id: i64,
) -> Result<Option<AlertGroup>, sqlx::Error> {
    let select = format!("SELECT {GROUP_COLUMNS} FROM alert_groups WHERE id = $1 FOR UPDATE");
    sqlx::query_as::<_, AlertGroup>(sqlx::AssertSqlSafe(select))
        .bind(group_id)
        .fetch_optional(&mut *tx)
        .await
}

/// Records who acked the group (only if nobody has); the group as stored afterwards.
pub async fn set_ack(
    tx: &mut PgConnection,
    group_id: i64,
    actor_id: i64,
    actor_name: &str,
) -> Result<AlertGroup, sqlx::Error> {
    let update = format!(
        "UPDATE alert_groups SET acked_by_id = $2, acked_by_name = $3, acked_at = now(), updated_at = now()
         WHERE id = $1 AND acked_by_id IS NULL RETURNING {GROUP_COLUMNS}"
    );
    sqlx::query_as::<_, AlertGroup>(sqlx::AssertSqlSafe(update))
        .bind(group_id)
        .bind(actor_id)
        .bind(actor_name)
        .fetch_one(&mut *tx)
        .await
}

/// Firing groups, newest first (for `/alerts active`).
pub async fn firing_groups(pool: &PgPool, limit: i64) -> Result<Vec<AlertGroup>, sqlx::Error> {
    let select = format!(
        "SELECT {GROUP_COLUMNS} FROM alert_groups WHERE status = 'firing' ORDER BY first_seen_at DESC, id DESC LIMIT $1"
    );
    sqlx::query_as::<_, AlertGroup>(sqlx::AssertSqlSafe(select))
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// A silence opsbot created, as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredSilence {
    pub id: i64,
    pub silence_id: String,
    pub group_id: Option<i64>,
    pub created_by_name: String,
    pub ends_at: DateTime<Utc>,
    pub until_resolved: bool,
    pub expire_attempts: i32,
}

const SILENCE_COLUMNS: &str =
    "id, silence_id, group_id, created_by_name, ends_at, until_resolved, expire_attempts";

/// What a new silence records.
#[derive(Debug, Clone)]
pub struct SilenceRecord<'a> {
    pub silence_id: &'a str,
    pub group_id: Option<i64>,
    pub matchers: serde_json::Value,
    pub created_by_id: i64,
    pub created_by_name: &'a str,
    pub comment: &'a str,
    pub ends_at: DateTime<Utc>,
    pub until_resolved: bool,
}

/// Records a silence Alertmanager created; with a group, the group shows it.
pub async fn insert_silence(
    tx: &mut PgConnection,
    record: &SilenceRecord<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO alert_silences (silence_id, group_id, matchers, created_by_id, created_by_name, comment, ends_at, until_resolved)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(record.silence_id)
    .bind(record.group_id)
    .bind(&record.matchers)
    .bind(record.created_by_id)
    .bind(record.created_by_name)
    .bind(record.comment)
    .bind(record.ends_at)
    .bind(record.until_resolved)
    .execute(&mut *tx)
    .await?;
    if let Some(group_id) = record.group_id {
        sqlx::query(
            "UPDATE alert_groups SET silence_id = $2, silenced_by_id = $3, silenced_by_name = $4,
                 silenced_until = $5, updated_at = now() WHERE id = $1",
        )
        .bind(group_id)
        .bind(record.silence_id)
        .bind(record.created_by_id)
        .bind(record.created_by_name)
        .bind((!record.until_resolved).then_some(record.ends_at))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Marks silence `silence_id` expired (by `by`); the group it belongs to no longer shows it.
/// Returns the group, if any.
pub async fn mark_expired(
    tx: &mut PgConnection,
    silence_id: &str,
    by: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query(
        "UPDATE alert_silences SET expired_at = now(), expired_by_name = $2, expire_error = NULL
         WHERE silence_id = $1 AND expired_at IS NULL",
    )
    .bind(silence_id)
    .bind(by)
    .execute(&mut *tx)
    .await?;
    let group: Option<i64> = sqlx::query_scalar(
        "UPDATE alert_groups SET silence_id = NULL, silenced_by_id = NULL, silenced_by_name = NULL,
             silenced_until = NULL, updated_at = now()
         WHERE silence_id = $1 RETURNING id",
    )
    .bind(silence_id)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(group)
}

/// The group resolved: its "until resolved" silences are due for expiry (in the transaction
/// that stores the resolve, so that it cannot be lost). Returns how many.
pub async fn due_on_resolve(tx: &mut PgConnection, group_id: i64) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "UPDATE alert_silences SET expire_due_at = now()
         WHERE group_id = $1 AND until_resolved AND expired_at IS NULL AND expire_due_at IS NULL",
    )
    .bind(group_id)
    .execute(&mut *tx)
    .await
    .map(|r| r.rows_affected())
}

/// Silences due for expiry now, locked (other replicas skip them), oldest first.
pub async fn lock_due_silences(
    tx: &mut PgConnection,
    limit: i64,
) -> Result<Vec<StoredSilence>, sqlx::Error> {
    let select = format!(
        "SELECT {SILENCE_COLUMNS} FROM alert_silences
         WHERE expired_at IS NULL AND expire_due_at <= now()
         ORDER BY expire_due_at, id LIMIT $1 FOR UPDATE SKIP LOCKED"
    );
    sqlx::query_as::<_, StoredSilence>(sqlx::AssertSqlSafe(select))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
}

/// An expiry attempt failed: try again after `retry_in`.
pub async fn expiry_failed(
    tx: &mut PgConnection,
    id: i64,
    error: &str,
    retry_in: std::time::Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE alert_silences SET expire_attempts = expire_attempts + 1, expire_error = $2,
             expire_due_at = now() + make_interval(secs => $3)
         WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .bind(retry_in.as_secs_f64())
    .execute(&mut *tx)
    .await
    .map(|_| ())
}

/// Firing groups matching `labels` (all of them), newest first, for `/alerts active`.
pub async fn firing_with_labels(
    pool: &PgPool,
    labels: &Labels,
    limit: i64,
) -> Result<Vec<AlertGroup>, sqlx::Error> {
    let select = format!(
        "SELECT {GROUP_COLUMNS} FROM alert_groups g WHERE status = 'firing'
           AND (g.common_labels @> $1 OR EXISTS (
                SELECT 1 FROM alert_instances i WHERE i.group_id = g.id AND i.status = 'firing' AND i.labels @> $1))
         ORDER BY first_seen_at DESC, id DESC LIMIT $2"
    );
    sqlx::query_as::<_, AlertGroup>(sqlx::AssertSqlSafe(select))
        .bind(sqlx::types::Json(labels))
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// Firing groups that carry one of opsbot's silences (their resolve may never be delivered:
/// Alertmanager mutes it), oldest first.
pub async fn silenced_firing_groups(
    pool: &PgPool,
    limit: i64,
) -> Result<Vec<AlertGroup>, sqlx::Error> {
    let select = format!(
        "SELECT {GROUP_COLUMNS} FROM alert_groups WHERE status = 'firing' AND silence_id IS NOT NULL
         ORDER BY updated_at, id LIMIT $1"
    );
    sqlx::query_as::<_, AlertGroup>(sqlx::AssertSqlSafe(select))
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// Records the deploy group `group_id` correlates with.
pub async fn set_correlated(
    tx: &mut PgConnection,
    group_id: i64,
    deploy_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE alert_groups SET correlated_deploy_id = $2 WHERE id = $1")
        .bind(group_id)
        .bind(deploy_id)
        .execute(&mut *tx)
        .await
        .map(|_| ())
}

/// The group's message lists only some of its alerts: it wants a thread with all of them.
pub async fn want_thread(tx: &mut PgConnection, group_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE alert_groups SET needs_thread = true WHERE id = $1 AND thread_id IS NULL")
        .bind(group_id)
        .execute(&mut *tx)
        .await
        .map(|_| ())
}

/// Groups that want a thread and whose message is delivered: (group id, channel, message).
pub async fn groups_wanting_threads(
    pool: &PgPool,
    limit: i64,
) -> Result<Vec<(i64, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT g.id, g.channel_id, o.message_id FROM alert_groups g JOIN outbox o ON o.id = g.post_outbox_id
         WHERE g.needs_thread AND g.thread_id IS NULL AND o.message_id IS NOT NULL
         ORDER BY g.id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Records the group's thread.
pub async fn set_thread(
    tx: &mut PgConnection,
    group_id: i64,
    thread_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE alert_groups SET thread_id = $2, needs_thread = false WHERE id = $1")
        .bind(group_id)
        .bind(thread_id)
        .execute(&mut *tx)
        .await
        .map(|_| ())
}

/// Groups whose timed silence has ended by itself: (group id, silence id).
pub async fn ended_silences(pool: &PgPool, limit: i64) -> Result<Vec<(i64, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, silence_id FROM alert_groups
         WHERE silence_id IS NOT NULL AND silenced_until <= now() ORDER BY silenced_until LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Groups of any status (or `status`) matching `labels` (common labels or any alert's),
/// newest first, for the dashboard.
pub async fn groups_with_labels(
    pool: &PgPool,
    status: Option<&str>,
    labels: &Labels,
    limit: i64,
) -> Result<Vec<AlertGroup>, sqlx::Error> {
    let select = format!(
        "SELECT {GROUP_COLUMNS} FROM alert_groups g WHERE ($1::text IS NULL OR status = $1)
           AND (g.common_labels @> $2 OR EXISTS (
                SELECT 1 FROM alert_instances i WHERE i.group_id = g.id AND i.labels @> $2))
         ORDER BY first_seen_at DESC, id DESC LIMIT $3"
    );
    sqlx::query_as::<_, AlertGroup>(sqlx::AssertSqlSafe(select))
        .bind(status)
        .bind(sqlx::types::Json(labels))
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// The values label `label` takes in stored alerts, sorted (for the dashboard's filters).
pub async fn label_values(pool: &PgPool, label: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT v FROM (SELECT labels->>$1 AS v FROM alert_instances) s
         WHERE v IS NOT NULL ORDER BY v LIMIT 200",
    )
    .bind(label)
    .fetch_all(pool)
    .await
}
