//! The durable queue of messages opsbot posts outside an interaction reply (announcements,
//! digests, alerts, progress). [`enqueue`] runs inside the transaction of the audit event that
//! caused the message, so a crash loses nothing; the dispatcher (`bot/src/dispatch/`) claims
//! due rows with `FOR UPDATE SKIP LOCKED`, delivers them and records the result here.
//!
//! An edit targets either a message id known when it is queued ([`enqueue_edit`]) or the
//! message an earlier outbox row posts ([`enqueue_edit_of`]): such an edit waits until that
//! post is delivered and then lands on it, in order and across restarts, so a feature can post
//! and edit a message in the same transaction as the events that change it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};

use crate::chat::Message;

/// A message waiting to be delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    pub id: i64,
    pub channel_id: i64,
    pub message: Message,
    /// Sent as Discord's `nonce` with `enforce_nonce`; at most 25 characters.
    pub nonce: String,
    /// Failed attempts before this one (429s not included).
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    /// Set for an edit of that message instead of a new post (resolved from
    /// `edit_of_post` once that post is delivered).
    pub edit_message_id: Option<i64>,
    /// For an edit of the message another outbox row posted: that row.
    pub edit_of_post: Option<i64>,
    /// An edit for which a newer edit of the same message is queued: skip it, or it could
    /// overwrite the newer text when retries reorder them.
    pub superseded: bool,
    /// For an edit that attaches a file: the file (the message's text stays as it is).
    pub attachment: Option<Attachment>,
}

/// A file an edit attaches.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// Letters, digits, `.`, `_` and `-`, at most 100 characters.
    pub filename: String,
    /// At most [`ATTACHMENT_MAX_BYTES`].
    pub bytes: Vec<u8>,
}

/// Discord's limit for one file from a bot: 10 MiB.
pub const ATTACHMENT_MAX_BYTES: usize = 10 * 1024 * 1024;

/// Queues an edit that attaches `attachment` to the message that outbox row `post` creates
/// (or created), leaving its text alone. Like [`enqueue_edit_of`] it waits for that post.
pub async fn enqueue_attachment_of(
    tx: &mut sqlx::PgConnection,
    channel_id: i64,
    post: i64,
    attachment: &Attachment,
    audit_event_id: Option<i64>,
) -> Result<i64, sqlx::Error> {
    let id = enqueue_edit_of(
        &mut *tx,
        channel_id,
        post,
        &Message::default(),
        audit_event_id,
    )
    .await?;
    sqlx::query("INSERT INTO outbox_attachments (outbox_id, filename, bytes) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(&attachment.filename)
        .bind(&attachment.bytes)
        .execute(&mut *tx)
        .await?;
    Ok(id)
}

/// Queues `message` for `channel_id`. Pass the transaction that records the audit event.
pub async fn enqueue(
    db: impl PgExecutor<'_>,
    channel_id: i64,
    message: &Message,
    audit_event_id: Option<i64>,
) -> Result<i64, sqlx::Error> {
    let nonce = uuid::Uuid::new_v4().simple().to_string()[..24].to_owned();
    let payload = serde_json::to_value(message).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query_scalar!(
        "INSERT INTO outbox (channel_id, payload, nonce, audit_event_id) VALUES ($1, $2, $3, $4) RETURNING id",
        channel_id,
        payload,
        nonce,
        audit_event_id
    )
    .fetch_one(db)
    .await
}

/// [`enqueue`] for many messages in one statement (one round trip): each `(channel, message,
/// audit event)`, their ids in the order given.
pub async fn enqueue_many(
    db: impl PgExecutor<'_>,
    items: &[(i64, &Message, Option<i64>)],
) -> Result<Vec<i64>, sqlx::Error> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let mut payloads = Vec::with_capacity(items.len());
    for (_, message, _) in items {
        payloads.push(serde_json::to_value(message).map_err(|e| sqlx::Error::Encode(Box::new(e)))?);
    }
    let nonces: Vec<String> = items
        .iter()
        .map(|_| uuid::Uuid::new_v4().simple().to_string()[..24].to_owned())
        .collect();
    // Ids are drawn in the order of the rows (by ordinality): sorted, they are in the order given.
    let mut ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO outbox (channel_id, payload, nonce, audit_event_id)
         SELECT c, p, n, e FROM unnest($1::bigint[], $2::jsonb[], $3::text[], $4::bigint[])
              WITH ORDINALITY AS t(c, p, n, e, i)
         ORDER BY i
         RETURNING id",
    )
    .bind(items.iter().map(|(c, _, _)| *c).collect::<Vec<_>>())
    .bind(payloads)
    .bind(nonces)
    .bind(items.iter().map(|(_, _, e)| *e).collect::<Vec<_>>())
    .fetch_all(db)
    .await?;
    ids.sort_unstable();
    Ok(ids)
}

/// Queues an edit of message `message_id` in `channel_id` to read `message`.
pub async fn enqueue_edit(
    db: impl PgExecutor<'_>,
    channel_id: i64,
    message_id: i64,
    message: &Message,
    audit_event_id: Option<i64>,
) -> Result<i64, sqlx::Error> {
    let nonce = uuid::Uuid::new_v4().simple().to_string()[..24].to_owned();
    let payload = serde_json::to_value(message).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query_scalar!(
        "INSERT INTO outbox (channel_id, payload, nonce, audit_event_id, edit_message_id) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        channel_id,
        payload,
        nonce,
        audit_event_id,
        message_id
    )
    .fetch_one(db)
    .await
}

/// Queues an edit of the message that outbox row `post` creates (or created), to read
/// `message`. It is delivered after that post; if the post is never delivered, neither is
/// the edit (it is dead-lettered with the reason).
pub async fn enqueue_edit_of(
    db: impl PgExecutor<'_>,
    channel_id: i64,
    post: i64,
    message: &Message,
    audit_event_id: Option<i64>,
) -> Result<i64, sqlx::Error> {
    let nonce = uuid::Uuid::new_v4().simple().to_string()[..24].to_owned();
    let payload = serde_json::to_value(message).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query_scalar(
        "INSERT INTO outbox (channel_id, payload, nonce, audit_event_id, edit_outbox_id) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(channel_id)
    .bind(payload)
    .bind(nonce)
    .bind(audit_event_id)
    .bind(post)
    .fetch_one(db)
    .await
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: i64,
    channel_id: i64,
    payload: serde_json::Value,
    nonce: String,
    attempts: i32,
    created_at: DateTime<Utc>,
    edit_message_id: Option<i64>,
    edit_outbox_id: Option<i64>,
    superseded: bool,
    attachment_name: Option<String>,
    attachment_bytes: Option<Vec<u8>>,
}

/// Key of the transaction-level advisory lock that makes claims one at a time across
/// replicas (`pg_advisory_xact_lock`); a claim takes a few milliseconds.
const CLAIM_LOCK: i64 = 0x6f75_7462_6f78; // "outbox"
/// Rows of one channel claimed at a time at most: Discord lets a bot post about five
/// messages per channel per five seconds, so more would only wait in the batch, and the other
/// replicas take the other channels meanwhile.
const CHANNEL_SHARE: i64 = 5;

/// Claims up to `limit` due messages for `lease`, as dispatcher `claimer`: other dispatchers
/// skip them until the lease ends, so a dispatcher that dies mid-delivery only delays its
/// messages. Every replica runs a dispatcher, so a channel is drained by one dispatcher at a
/// time: rows of a channel that has rows leased to anyone are not claimed (its messages keep
/// their order), claims take turns (an advisory lock), so two claims never split one
/// channel, and a claim takes at most [`CHANNEL_SHARE`] rows of a channel. An edit of another row's post is due only once that post is no longer pending.
pub async fn claim_due(
    pool: &PgPool,
    limit: i64,
    lease: Duration,
    claimer: uuid::Uuid,
) -> Result<Vec<OutboxItem>, sqlx::Error> {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CLAIM_LOCK)
        .execute(&mut *tx)
        .await?;
    let rows: Vec<ClaimedRow> = sqlx::query_as(
        r#"
        UPDATE outbox SET leased_until = now() + make_interval(secs => $2::bigint / 1000.0),
                          claimed_by = $3
        WHERE id IN (
            SELECT c.id FROM outbox c
            WHERE c.id IN (
                SELECT ranked.id FROM (
                    SELECT o.id,
                           row_number() OVER (PARTITION BY o.channel_id ORDER BY o.id) AS nth
                    FROM outbox o
                    WHERE o.status = 'pending' AND o.next_attempt_at <= now()
                      AND (o.leased_until IS NULL OR o.leased_until < now())
                      AND NOT EXISTS (
                            SELECT 1 FROM outbox busy
                            WHERE busy.channel_id = o.channel_id AND busy.status = 'pending'
                              AND busy.leased_until >= now())
                      AND (o.edit_outbox_id IS NULL OR NOT EXISTS (
                            SELECT 1 FROM outbox post
                            WHERE post.id = o.edit_outbox_id AND post.status = 'pending'))
                ) ranked
                WHERE ranked.nth <= $4)
            ORDER BY c.next_attempt_at, c.id
            LIMIT $1
            FOR UPDATE SKIP LOCKED
        )
        RETURNING id, channel_id, payload, nonce, attempts, created_at,
                  COALESCE(edit_message_id,
                           (SELECT post.message_id FROM outbox post
                            WHERE post.id = outbox.edit_outbox_id)) AS edit_message_id,
                  edit_outbox_id,
                  NOT EXISTS (SELECT 1 FROM outbox_attachments a WHERE a.outbox_id = outbox.id)
                  AND EXISTS (SELECT 1 FROM outbox newer
                          WHERE newer.id > outbox.id
                            AND (newer.edit_message_id = outbox.edit_message_id
                                 OR newer.edit_outbox_id = outbox.edit_outbox_id)
                            AND NOT EXISTS (SELECT 1 FROM outbox_attachments a
                                            WHERE a.outbox_id = newer.id)) AS superseded,
                  (SELECT a.filename FROM outbox_attachments a WHERE a.outbox_id = outbox.id)
                      AS attachment_name,
                  (SELECT a.bytes FROM outbox_attachments a WHERE a.outbox_id = outbox.id)
                      AS attachment_bytes
        "#,
    )
    .bind(limit)
    .bind(lease_ms)
    .bind(claimer)
    .bind(CHANNEL_SHARE)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        match serde_json::from_value::<Message>(row.payload) {
            Ok(message) => items.push(OutboxItem {
                id: row.id,
                channel_id: row.channel_id,
                message,
                nonce: row.nonce,
                attempts: row.attempts,
                created_at: row.created_at,
                edit_message_id: row.edit_message_id,
                edit_of_post: row.edit_outbox_id,
                superseded: row.superseded,
                attachment: row
                    .attachment_name
                    .zip(row.attachment_bytes)
                    .map(|(filename, bytes)| Attachment { filename, bytes }),
            }),
            Err(e) => {
                mark_dead(
                    pool,
                    row.id,
                    &format!("stored payload is not a message: {e}"),
                )
                .await?;
            }
        }
    }
    items.sort_by_key(|i| i.id);
    Ok(items)
}

/// Gives back the rows `claimer` still holds (a dispatcher stopping mid-batch), so other
/// replicas need not wait for their leases to end.
pub async fn release_claims(pool: &PgPool, claimer: uuid::Uuid) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "UPDATE outbox SET leased_until = NULL
         WHERE claimed_by = $1 AND status = 'pending' AND leased_until >= now()",
    )
    .bind(claimer)
    .execute(pool)
    .await
    .map(|done| done.rows_affected())
}

pub async fn mark_sent(pool: &PgPool, id: i64, message_id: Option<i64>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE outbox SET status = 'sent', sent_at = now(), attempts = attempts + 1,
                leased_until = NULL, message_id = $2, last_error = NULL
         WHERE id = $1",
        id,
        message_id
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Why a delivery is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A 429: not the message's fault, so it never counts toward dead-lettering.
    RateLimited,
    /// A failed attempt (5xx, timeout, ...), counted in `attempts`.
    Failed,
}

/// Records why the delivery did not happen and when to try again.
pub async fn mark_retry(
    pool: &PgPool,
    id: i64,
    why: Retry,
    error: &str,
    retry_in: Duration,
) -> Result<(), sqlx::Error> {
    let retry_ms = i64::try_from(retry_in.as_millis()).unwrap_or(i64::MAX);
    sqlx::query!(
        "UPDATE outbox SET attempts = attempts + CASE WHEN $4 THEN 0 ELSE 1 END,
                rate_limited = rate_limited + CASE WHEN $4 THEN 1 ELSE 0 END,
                last_error = $2, leased_until = NULL,
                next_attempt_at = now() + make_interval(secs => $3::bigint / 1000.0)
         WHERE id = $1",
        id,
        error,
        retry_ms,
        why == Retry::RateLimited
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Hands a claimed message back without an attempt: due again in `retry_in`, counting
/// neither a failure nor a 429. For a message whose channel's rate-limit bucket is empty:
/// the dispatcher goes on with other channels instead of waiting for that one.
pub async fn defer(pool: &PgPool, id: i64, retry_in: Duration) -> Result<(), sqlx::Error> {
    let retry_ms = i64::try_from(retry_in.as_millis()).unwrap_or(i64::MAX);
    sqlx::query(
        "UPDATE outbox SET leased_until = NULL,
                next_attempt_at = now() + make_interval(secs => $2::bigint / 1000.0)
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(retry_ms)
    .execute(pool)
    .await?;
    Ok(())
}

/// Gives up on a message: it stays in the table with its error, for people to see.
pub async fn mark_dead(pool: &PgPool, id: i64, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE outbox SET status = 'dead', attempts = attempts + 1, last_error = $2, leased_until = NULL
         WHERE id = $1",
        id,
        error
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Delivery state of one outbox row, for tests and operators.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxStatus {
    pub id: i64,
    pub status: String,
    pub attempts: i32,
    pub rate_limited: i32,
    pub last_error: Option<String>,
    pub message_id: Option<i64>,
}

pub async fn status(pool: &PgPool, id: i64) -> Result<Option<OutboxStatus>, sqlx::Error> {
    sqlx::query_as!(
        OutboxStatus,
        "SELECT id, status, attempts, rate_limited, last_error, message_id FROM outbox WHERE id = $1",
        id
    )
    .fetch_optional(pool)
    .await
}
