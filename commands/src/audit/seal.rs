//! The sealer: chains committed events in batches, one sealer at a time (advisory lock).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};

use super::canonical::{EVENT_COLUMNS, GENESIS_HASH, StoredEvent, chain_hash};
use super::checks::{EventTimes, IssuedIds, implausible};

/// How often `opsbot run` seals: short enough that `verify` rarely sees unsealed events,
/// long enough that one batch (one commit, one disk flush) covers many appends.
pub const SEAL_INTERVAL: Duration = Duration::from_millis(500);

/// Events sealed per transaction: bounds the sealer's memory and transaction length
/// (~5k rows hash and insert in well under a second here).
pub const SEAL_BATCH: i64 = 5000;

/// Advisory lock key held (transaction-scoped) by the one sealer at work.
/// The bytes spell "opsbseal".
const SEAL_LOCK_KEY: i64 = 0x6f70_7362_7365_616c;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealResult {
    /// This many events were chained, and this many refused (both 0: nothing was waiting).
    Sealed { chained: usize, refused: usize },
    /// Another sealer holds the lock; it will do the work.
    Busy,
}

/// A queued event as the sealer reads it.
#[derive(Debug, sqlx::FromRow)]
struct Queued {
    #[sqlx(flatten)]
    event: StoredEvent,
    queued_at: Option<DateTime<Utc>>,
}

/// Chains up to [`SEAL_BATCH`] committed, unsealed events, in id order, in one transaction.
///
/// Only committed events are visible here, so an event whose transaction commits after a
/// later id was sealed simply lands in the next batch: the chain position, not the id, is
/// the total order.
///
/// An event that opsbot cannot have appended (an id the identity sequence never issued, a
/// time far from when the database queued it; see [`super::checks`]) is not chained: it
/// moves to `audit_refused` with the reason, is logged and counted
/// (`opsbot_audit_refused_total`), and `verify` reports it.
pub async fn seal_batch(pool: &PgPool) -> Result<SealResult, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let locked: Option<bool> = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(SEAL_LOCK_KEY)
        .fetch_one(&mut *tx)
        .await?;
    if !locked.unwrap_or(false) {
        return Ok(SealResult::Busy);
    }
    let head: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT position, hash FROM audit_chain ORDER BY position DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
    let (mut position, mut prev_hash) = head.unwrap_or((0, GENESIS_HASH.to_vec()));
    let queued: Vec<Queued> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {EVENT_COLUMNS}, u.queued_at
         FROM audit_unsealed u JOIN audit_events e ON e.id = u.event_id
         ORDER BY e.id
         LIMIT $1"
    )))
    .bind(SEAL_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if queued.is_empty() {
        return Ok(SealResult::Sealed {
            chained: 0,
            refused: 0,
        });
    }
    // Read after the events: every committed event drew its id before this.
    let issued = issued_ids(&mut *tx).await?;

    let mut positions = Vec::with_capacity(queued.len());
    let mut event_ids = Vec::with_capacity(queued.len());
    let mut prev_hashes = Vec::with_capacity(queued.len());
    let mut hashes = Vec::with_capacity(queued.len());
    let mut refused_ids = Vec::new();
    let mut reasons = Vec::new();
    for Queued { event, queued_at } in &queued {
        let times = EventTimes {
            id: event.id,
            at: event.at,
            queued_at: *queued_at,
        };
        if let Some(reason) = implausible(times, issued) {
            tracing::error!(
                event_id = event.id,
                actor = %event.actor_name,
                command = %event.command,
                reason = %reason,
                "refusing to seal an audit event opsbot cannot have appended; `opsbot audit verify` reports it"
            );
            refused_ids.push(event.id);
            reasons.push(reason);
            continue;
        }
        let hash = chain_hash(&prev_hash, &event.canonical()).to_vec();
        position += 1;
        positions.push(position);
        event_ids.push(event.id);
        prev_hashes.push(std::mem::replace(&mut prev_hash, hash.clone()));
        hashes.push(hash);
    }
    // The chain's trigger copies each queue time from `audit_unsealed`: insert before deleting.
    sqlx::query(
        "INSERT INTO audit_chain (position, event_id, prev_hash, hash)
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[])",
    )
    .bind(&positions)
    .bind(&event_ids)
    .bind(&prev_hashes)
    .bind(&hashes)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO audit_refused (event_id, reason)
         SELECT * FROM UNNEST($1::bigint[], $2::text[])
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(&refused_ids)
    .bind(&reasons)
    .execute(&mut *tx)
    .await?;
    let taken: Vec<i64> = queued.iter().map(|q| q.event.id).collect();
    sqlx::query("DELETE FROM audit_unsealed WHERE event_id = ANY($1)")
        .bind(&taken)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    metrics::counter!("opsbot_audit_sealed_total").increment(event_ids.len() as u64);
    if !refused_ids.is_empty() {
        metrics::counter!("opsbot_audit_refused_total").increment(refused_ids.len() as u64);
    }
    Ok(SealResult::Sealed {
        chained: event_ids.len(),
        refused: refused_ids.len(),
    })
}

/// The ids the identity sequence of `audit_events` has issued so far.
pub(super) async fn issued_ids(db: impl PgExecutor<'_>) -> Result<IssuedIds, sqlx::Error> {
    let last: Option<i64> = sqlx::query_scalar(
        "SELECT pg_sequence_last_value(pg_get_serial_sequence('audit_events', 'id')::regclass)",
    )
    .fetch_one(db)
    .await?;
    Ok(IssuedIds { last })
}

/// Seals until nothing committed is left waiting (used at shutdown and by tests).
/// Returns how many events this call chained; stops early if another sealer is at work.
pub async fn seal_pending(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let mut total = 0;
    loop {
        match seal_batch(pool).await? {
            SealResult::Sealed {
                chained: 0,
                refused: 0,
            }
            | SealResult::Busy => return Ok(total),
            SealResult::Sealed { chained, .. } => total += chained,
        }
    }
}
