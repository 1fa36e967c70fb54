use std::time::Duration;

use sqlx::PgPool;

use super::canonical::{CanonicalFields, GENESIS_HASH, canonical_bytes, chain_hash};

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
    /// This many events were chained (0: nothing was waiting).
    Sealed(usize),
    /// Another sealer holds the lock; it will do the work.
    Busy,
}

/// Chains up to [`SEAL_BATCH`] committed, unsealed events, in id order, in one transaction.
///
/// Only committed events are visible here, so an event whose transaction commits after a
/// later id was sealed simply lands in the next batch: the chain position, not the id, is
/// the total order.
pub async fn seal_batch(pool: &PgPool) -> Result<SealResult, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let locked = sqlx::query_scalar!("SELECT pg_try_advisory_xact_lock($1)", SEAL_LOCK_KEY)
        .fetch_one(&mut *tx)
        .await?
        .unwrap_or(false);
    if !locked {
        return Ok(SealResult::Busy);
    }
    let head =
        sqlx::query!("SELECT position, hash FROM audit_chain ORDER BY position DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
    let (mut position, mut prev_hash) = match head {
        Some(row) => (row.position, row.hash),
        None => (0, GENESIS_HASH.to_vec()),
    };
    let events = sqlx::query!(
        r#"
        SELECT e.id, e.at, e.actor_id, e.actor_name, e.source, e.guild_id, e.channel_id,
               e.interaction_id, e.command, e.args, e.outcome, e.detail, e.correlation_id
        FROM audit_unsealed u JOIN audit_events e ON e.id = u.event_id
        ORDER BY e.id
        LIMIT $1
        "#,
        SEAL_BATCH
    )
    .fetch_all(&mut *tx)
    .await?;
    if events.is_empty() {
        return Ok(SealResult::Sealed(0));
    }

    let mut positions = Vec::with_capacity(events.len());
    let mut event_ids = Vec::with_capacity(events.len());
    let mut prev_hashes = Vec::with_capacity(events.len());
    let mut hashes = Vec::with_capacity(events.len());
    for e in &events {
        let canonical = canonical_bytes(&CanonicalFields {
            id: e.id,
            at: e.at,
            actor_id: e.actor_id,
            actor_name: &e.actor_name,
            source: &e.source,
            guild_id: e.guild_id,
            channel_id: e.channel_id,
            interaction_id: e.interaction_id,
            command: &e.command,
            args: &e.args,
            outcome: &e.outcome,
            detail: &e.detail,
            correlation_id: e.correlation_id,
        });
        let hash = chain_hash(&prev_hash, &canonical).to_vec();
        position += 1;
        positions.push(position);
        event_ids.push(e.id);
        prev_hashes.push(std::mem::replace(&mut prev_hash, hash.clone()));
        hashes.push(hash);
    }
    sqlx::query!(
        r#"
        INSERT INTO audit_chain (position, event_id, prev_hash, hash)
        SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[])
        "#,
        &positions,
        &event_ids,
        &prev_hashes,
        &hashes,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "DELETE FROM audit_unsealed WHERE event_id = ANY($1)",
        &event_ids
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    metrics::counter!("opsbot_audit_sealed_total").increment(events.len() as u64);
    Ok(SealResult::Sealed(events.len()))
}

/// Seals until nothing committed is left waiting (used at shutdown and by tests).
/// Returns how many events this call sealed; stops early if another sealer is at work.
pub async fn seal_pending(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let mut total = 0;
    loop {
        match seal_batch(pool).await? {
            SealResult::Sealed(0) | SealResult::Busy => return Ok(total),
            SealResult::Sealed(n) => total += n,
        }
    }
}
