use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use super::canonical::{CanonicalFields, GENESIS_HASH, canonical_bytes, chain_hash};
use super::seal::SEAL_INTERVAL;

/// An event still unsealed after this long means no sealer is running (or one is failing):
/// several sealer intervals, so a batch in progress is not reported.
pub const UNSEALED_GRACE: Duration = Duration::from_secs(10);

/// Chain rows read per round trip while walking.
const VERIFY_PAGE: i64 = 10_000;

/// The last sealed event: record its hash somewhere else (a ticket, a chat message) to make
/// even a rewrite of the whole chain by a database superuser detectable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainHead {
    pub position: i64,
    pub event_id: i64,
    pub hash: String,
}

/// The first event at which the chain does not hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainProblem {
    pub event_id: i64,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    /// Events whose chain entries were checked and hold (up to the first problem).
    pub verified: i64,
    pub head: Option<ChainHead>,
    pub problem: Option<ChainProblem>,
    /// Committed events waiting for the sealer.
    pub unsealed: i64,
    /// Of those, how many have waited longer than [`UNSEALED_GRACE`].
    pub stale_unsealed: i64,
    pub oldest_unsealed_at: Option<DateTime<Utc>>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.problem.is_none()
    }

    /// One line for people: `ok: N events` or `event 42: ...`.
    pub fn summary(&self) -> String {
        match &self.problem {
            Some(p) => format!("event {}: {}", p.event_id, p.message),
            None => format!("ok: {} events", self.verified),
        }
    }

    /// A warning about unsealed events, when there is something worth saying.
    pub fn unsealed_warning(&self) -> Option<String> {
        if self.stale_unsealed > 0 {
            Some(format!(
                "warning: {} events have waited more than {}s to be sealed (oldest from {}); is `opsbot run` running? Its sealer chains events every {}ms",
                self.stale_unsealed,
                UNSEALED_GRACE.as_secs(),
                self.oldest_unsealed_at
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default(),
                SEAL_INTERVAL.as_millis(),
            ))
        } else if self.unsealed > 0 {
            Some(format!(
                "note: {} recent events are not sealed yet (the sealer runs every {}ms)",
                self.unsealed,
                SEAL_INTERVAL.as_millis()
            ))
        } else {
            None
        }
    }
}

/// Walks the whole chain in position order, read-only (it never seals), and names the first
/// event that does not match: an edited row, a deleted row, a re-ordered pair, a gap.
pub async fn verify(pool: &PgPool) -> Result<VerifyReport, sqlx::Error> {
    let mut report = VerifyReport {
        verified: 0,
        head: None,
        problem: None,
        unsealed: 0,
        stale_unsealed: 0,
        oldest_unsealed_at: None,
    };
    let mut expected_position = 1_i64;
    let mut prev_hash = GENESIS_HASH.to_vec();
    let mut prev_event: Option<i64> = None;
    'walk: loop {
        let rows = sqlx::query!(
            r#"
            SELECT c.position, c.event_id, c.prev_hash, c.hash,
                   e.id AS "id?", e.at AS "at?", e.actor_id AS "actor_id?",
                   e.actor_name AS "actor_name?", e.source AS "source?", e.guild_id, e.channel_id,
                   e.interaction_id, e.command AS "command?", e.args AS "args?",
                   e.outcome AS "outcome?", e.detail AS "detail?", e.correlation_id
            FROM audit_chain c LEFT JOIN audit_events e ON e.id = c.event_id
            WHERE c.position >= $1
            ORDER BY c.position
            LIMIT $2
            "#,
            expected_position,
            VERIFY_PAGE
        )
        .fetch_all(pool)
        .await?;
        let page_len = rows.len() as i64;
        for row in rows {
            let problem = |message: String| ChainProblem {
                event_id: row.event_id,
                message,
            };
            if row.position != expected_position {
                report.problem = Some(problem(format!(
                    "sealed at chain position {} but position {} is missing: the event(s) sealed there were deleted",
                    row.position, expected_position
                )));
                break 'walk;
            }
            if row.prev_hash != prev_hash {
                report.problem = Some(problem(match prev_event {
                    Some(prev) => format!(
                        "its recorded predecessor hash does not match event {prev}, the event before it in the chain: the chain was rewritten or re-ordered here"
                    ),
                    None => {
                        "it is first in the chain but its predecessor hash is not the genesis hash"
                            .to_owned()
                    }
                }));
                break 'walk;
            }
            let (
                Some(id),
                Some(at),
                Some(actor_id),
                Some(actor_name),
                Some(source),
                Some(command),
                Some(args),
                Some(outcome),
                Some(detail),
            ) = (
                row.id,
                row.at,
                row.actor_id,
                row.actor_name.as_deref(),
                row.source.as_deref(),
                row.command.as_deref(),
                row.args.as_ref(),
                row.outcome.as_deref(),
                row.detail.as_deref(),
            )
            else {
                report.problem = Some(problem(format!(
                    "sealed at chain position {} but the event row is missing: it was deleted",
                    row.position
                )));
                break 'walk;
            };
            let canonical = canonical_bytes(&CanonicalFields {
                id,
                at,
                actor_id,
                actor_name,
                source,
                guild_id: row.guild_id,
                channel_id: row.channel_id,
                interaction_id: row.interaction_id,
                command,
                args,
                outcome,
                detail,
                correlation_id: row.correlation_id,
            });
            if chain_hash(&prev_hash, &canonical).as_slice() != row.hash.as_slice() {
                report.problem = Some(problem(format!(
                    "its contents do not match the hash sealed at chain position {}: the row was altered after it was recorded",
                    row.position
                )));
                break 'walk;
            }
            report.verified += 1;
            report.head = Some(ChainHead {
                position: row.position,
                event_id: row.event_id,
                hash: hex::encode(&row.hash),
            });
            prev_hash = row.hash;
            prev_event = Some(row.event_id);
            expected_position += 1;
        }
        if page_len < VERIFY_PAGE {
            break;
        }
    }
    if report.problem.is_some() {
        return Ok(report);
    }

    // Queued events whose row is gone were deleted before they could be sealed.
    if let Some(event_id) = sqlx::query_scalar!(
        "SELECT u.event_id FROM audit_unsealed u
         WHERE NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.id = u.event_id)
         ORDER BY u.event_id LIMIT 1"
    )
    .fetch_optional(pool)
    .await?
    {
        report.problem = Some(ChainProblem {
            event_id,
            message: "was waiting to be sealed but the event row is missing: it was deleted"
                .to_owned(),
        });
        return Ok(report);
    }
    // Events that are neither chained nor queued were inserted around `append`, or their
    // queue entry was removed by hand.
    if let Some(event_id) = sqlx::query_scalar!(
        "SELECT e.id FROM audit_events e
         WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = e.id)
           AND NOT EXISTS (SELECT 1 FROM audit_unsealed u WHERE u.event_id = e.id)
         ORDER BY e.id LIMIT 1"
    )
    .fetch_optional(pool)
    .await?
    {
        report.problem = Some(ChainProblem {
            event_id,
            message: "is neither sealed nor waiting to be sealed: it was inserted around opsbot or its seal entry was removed".to_owned(),
        });
        return Ok(report);
    }

    let grace = chrono::Duration::from_std(UNSEALED_GRACE).unwrap_or_default();
    let waiting = sqlx::query!(
        r#"
        SELECT count(*) AS "unsealed!", count(*) FILTER (WHERE e.at < now() - $1::interval) AS "stale!",
               min(e.at) AS oldest
        FROM audit_unsealed u JOIN audit_events e ON e.id = u.event_id
        "#,
        sqlx::postgres::types::PgInterval::try_from(grace).unwrap_or_default()
    )
    .fetch_one(pool)
    .await?;
    report.unsealed = waiting.unsealed;
    report.stale_unsealed = waiting.stale;
    report.oldest_unsealed_at = waiting.oldest;
    Ok(report)
}
