//! The walk along the chain in position order, shared by `verify` (from the genesis) and the
//! checkpoint (from the previous checkpoint): recomputes every hash and judges every event.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::canonical::{GENESIS_HASH, StoredEvent, chain_hash};
use super::checks::{EventTimes, IssuedIds, implausible, out_of_order};
use super::verify::{ChainHead, ChainProblem, MAX_FINDINGS};

/// Chain rows read per round trip while walking.
const WALK_PAGE: i64 = 10_000;

/// Where a walk starts: after `position`, whose hash is trusted to be `hash`.
#[derive(Debug, Clone)]
pub(super) struct Start {
    pub position: i64,
    pub hash: Vec<u8>,
}

impl Start {
    pub fn genesis() -> Start {
        Start {
            position: 0,
            hash: GENESIS_HASH.to_vec(),
        }
    }
}

/// What a walk found.
#[derive(Debug, Default)]
pub(super) struct Walked {
    /// Chain entries whose hash was recomputed and holds, up to the break if any.
    pub verified: i64,
    /// The last chain entry that holds.
    pub head: Option<ChainHead>,
    /// Events that hold in the chain but that opsbot cannot have appended, up to
    /// [`MAX_FINDINGS`]; `more_findings` counts the rest.
    pub findings: Vec<ChainProblem>,
    pub more_findings: usize,
    /// Where the chain breaks: the walk stops there.
    pub broken: Option<ChainProblem>,
}

/// One chain row with its event (absent when the event row was deleted).
#[derive(Debug, sqlx::FromRow)]
struct ChainRow {
    position: i64,
    event_id: i64,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
    queued_at: Option<DateTime<Utc>>,
    id: Option<i64>,
    at: Option<DateTime<Utc>>,
    actor_id: Option<i64>,
    actor_name: Option<String>,
    source: Option<String>,
    guild_id: Option<i64>,
    channel_id: Option<i64>,
    interaction_id: Option<i64>,
    command: Option<String>,
    args: Option<serde_json::Value>,
    outcome: Option<String>,
    detail: Option<String>,
    correlation_id: Option<Uuid>,
}

impl ChainRow {
    /// The event, unless its row is gone.
    fn event(&self) -> Option<StoredEvent> {
        Some(StoredEvent {
            id: self.id?,
            at: self.at?,
            actor_id: self.actor_id?,
            actor_name: self.actor_name.clone()?,
            source: self.source.clone()?,
            guild_id: self.guild_id,
            channel_id: self.channel_id,
            interaction_id: self.interaction_id,
            command: self.command.clone()?,
            args: self.args.clone()?,
            outcome: self.outcome.clone()?,
            detail: self.detail.clone()?,
            correlation_id: self.correlation_id,
        })
    }
}

/// Walks from `start` to the head, read-only, stopping at the first break.
pub(super) async fn walk(
    pool: &PgPool,
    start: Start,
    issued: IssuedIds,
) -> Result<Walked, sqlx::Error> {
    let mut walked = Walked::default();
    let mut expected_position = start.position + 1;
    let mut prev_hash = start.hash;
    let mut prev_event: Option<i64> = None;
    // The previous event's time, unless that event was itself implausible (a forged future
    // date must not make its genuine successor look backdated).
    let mut prev_time: Option<(i64, DateTime<Utc>)> = None;
    loop {
        let rows: Vec<ChainRow> = sqlx::query_as(
            "SELECT c.position, c.event_id, c.prev_hash, c.hash, c.queued_at,
                    e.id, e.at, e.actor_id, e.actor_name, e.source, e.guild_id, e.channel_id,
                    e.interaction_id, e.command, e.args, e.outcome, e.detail, e.correlation_id
             FROM audit_chain c LEFT JOIN audit_events e ON e.id = c.event_id
             WHERE c.position >= $1
             ORDER BY c.position
             LIMIT $2",
        )
        .bind(expected_position)
        .bind(WALK_PAGE)
        .fetch_all(pool)
        .await?;
        let page_len = rows.len() as i64;
        for row in rows {
            let problem = |message: String| ChainProblem {
                event_id: row.event_id,
                message,
            };
            if row.position != expected_position {
                walked.broken = Some(problem(format!(
                    "sealed at chain position {} but position {} is missing: the event(s) sealed there were deleted",
                    row.position, expected_position
                )));
                return Ok(walked);
            }
            if row.prev_hash != prev_hash {
                walked.broken = Some(problem(match prev_event {
                    Some(prev) => format!(
                        "its recorded predecessor hash does not match event {prev}, the event before it in the chain: the chain was rewritten or re-ordered here"
                    ),
                    None if start.position == 0 => {
                        "it is first in the chain but its predecessor hash is not the genesis hash"
                            .to_owned()
                    }
                    None => format!(
                        "its recorded predecessor hash does not match the trusted hash of position {}: the chain was rewritten here",
                        start.position
                    ),
                }));
                return Ok(walked);
            }
            let Some(event) = row.event() else {
                walked.broken = Some(problem(format!(
                    "sealed at chain position {} but the event row is missing: it was deleted",
                    row.position
                )));
                return Ok(walked);
            };
            if chain_hash(&prev_hash, &event.canonical()).as_slice() != row.hash.as_slice() {
                walked.broken = Some(problem(format!(
                    "its contents do not match the hash sealed at chain position {}: the row was altered after it was recorded",
                    row.position
                )));
                return Ok(walked);
            }
            let times = EventTimes {
                id: event.id,
                at: event.at,
                queued_at: row.queued_at,
            };
            let doubt = implausible(times, issued).or_else(|| {
                prev_time.and_then(|(prev_id, prev_at)| out_of_order(prev_id, prev_at, event.at))
            });
            prev_time = match doubt {
                Some(message) => {
                    if walked.findings.len() < MAX_FINDINGS {
                        walked.findings.push(problem(message));
                    } else {
                        walked.more_findings += 1;
                    }
                    None
                }
                None => Some((event.id, event.at)),
            };
            walked.verified += 1;
            walked.head = Some(ChainHead {
                position: row.position,
                event_id: row.event_id,
                hash: hex::encode(&row.hash),
            });
            prev_hash = row.hash;
            prev_event = Some(row.event_id);
            expected_position += 1;
        }
        if page_len < WALK_PAGE {
            return Ok(walked);
        }
    }
}
