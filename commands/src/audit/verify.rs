//! `verify`: the read-only check of the whole trail, chain and queue.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use sqlx::postgres::types::PgInterval;

use super::checks::{BACKDATE_LIMIT, EventTimes, FUTURE_SLACK, IssuedIds, implausible, to_chrono};
use super::seal::{SEAL_INTERVAL, issued_ids};
use super::walk::{Start, walk};

/// An event still unsealed after this long means no sealer is running (or one is failing):
/// several sealer intervals, so a batch in progress is not reported.
pub const UNSEALED_GRACE: Duration = Duration::from_secs(10);

/// Findings listed by one verification: enough to see the pattern, bounded for a forged
/// flood of events.
pub const MAX_FINDINGS: usize = 100;

/// The last sealed event: record its hash somewhere else (a ticket, a chat message) to make
/// even a rewrite of the whole chain by a database superuser detectable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainHead {
    pub position: i64,
    pub event_id: i64,
    pub hash: String,
}

/// An event at which the chain does not hold, or that opsbot cannot have appended.
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

/// What [`verify_all`] found: the report, and every finding (the report's `problem` is the
/// first of them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    pub report: VerifyReport,
    /// Each event that breaks the chain or that opsbot cannot have appended, in chain order,
    /// then the unchained ones; at most [`MAX_FINDINGS`].
    pub findings: Vec<ChainProblem>,
    /// Findings beyond [`MAX_FINDINGS`], counted but not listed.
    pub more_findings: usize,
}

impl Verification {
    pub fn is_ok(&self) -> bool {
        self.report.is_ok()
    }
}

/// Walks the whole chain in position order, read-only (it never seals), and names the first
/// event that does not hold: an edited row, a deleted row, a re-ordered pair, a gap, or an
/// event opsbot cannot have appended (see [`verify_all`]).
pub async fn verify(pool: &PgPool) -> Result<VerifyReport, sqlx::Error> {
    Ok(verify_all(pool).await?.report)
}

/// [`verify`], with every finding rather than the first.
///
/// The walk stops at the first break of the chain (nothing after it can be trusted); before
/// it, each chained event is also checked for an id the identity sequence never issued, a
/// time far from when it was queued (backdated, future-dated), and a time far before the
/// event at the position before it. Then events outside the chain: ones the sealer refused,
/// queued ones it will refuse, queued ones whose row is gone, and ones neither chained nor
/// queued.
pub async fn verify_all(pool: &PgPool) -> Result<Verification, sqlx::Error> {
    let issued = issued_ids(pool).await?;
    let walked = walk(pool, Start::genesis(), issued).await?;
    let mut findings = Findings {
        listed: Vec::new(),
        more: walked.more_findings,
    };
    findings.extend(walked.findings);
    let mut report = VerifyReport {
        verified: walked.verified,
        head: walked.head,
        problem: None,
        unsealed: 0,
        stale_unsealed: 0,
        oldest_unsealed_at: None,
    };
    if walked.broken.is_some() {
        findings.extend(walked.broken);
        report.problem = findings.listed.first().cloned();
        return Ok(findings.into_verification(report));
    }
    unchained_findings(pool, issued, &mut findings).await?;
    report.problem = findings.listed.first().cloned();

    let grace = chrono::Duration::from_std(UNSEALED_GRACE).unwrap_or_default();
    let waiting = sqlx::query!(
        r#"
        SELECT count(*) AS "unsealed!", count(*) FILTER (WHERE e.at < now() - $1::interval) AS "stale!",
               min(e.at) AS oldest
        FROM audit_unsealed u JOIN audit_events e ON e.id = u.event_id
        "#,
        PgInterval::try_from(grace).unwrap_or_default()
    )
    .fetch_one(pool)
    .await?;
    report.unsealed = waiting.unsealed;
    report.stale_unsealed = waiting.stale;
    report.oldest_unsealed_at = waiting.oldest;
    Ok(findings.into_verification(report))
}

/// Findings, listed up to [`MAX_FINDINGS`].
#[derive(Debug, Default)]
struct Findings {
    listed: Vec<ChainProblem>,
    more: usize,
}

impl Findings {
    fn push(&mut self, finding: ChainProblem) {
        if self.listed.len() < MAX_FINDINGS {
            self.listed.push(finding);
        } else {
            self.more += 1;
        }
    }

    fn extend(&mut self, findings: impl IntoIterator<Item = ChainProblem>) {
        for finding in findings {
            self.push(finding);
        }
    }

    fn into_verification(self, report: VerifyReport) -> Verification {
        Verification {
            report,
            findings: self.listed,
            more_findings: self.more,
        }
    }
}

/// Events outside the chain that should not be there: refused by the sealer, queued but
/// implausible, queued but deleted, or neither chained, queued nor refused.
async fn unchained_findings(
    pool: &PgPool,
    issued: IssuedIds,
    findings: &mut Findings,
) -> Result<(), sqlx::Error> {
    let limit = MAX_FINDINGS as i64;
    let refused: Vec<(i64, String)> =
        sqlx::query_as("SELECT event_id, reason FROM audit_refused ORDER BY event_id LIMIT $1")
            .bind(limit)
            .fetch_all(pool)
            .await?;
    findings.extend(refused.into_iter().map(|(event_id, reason)| ChainProblem {
        event_id,
        message: format!("the sealer refused to chain it: {reason}"),
    }));

    // Queued events the sealer will refuse, reported now in case no sealer runs.
    let backdate = PgInterval::try_from(to_chrono(BACKDATE_LIMIT)).unwrap_or_default();
    let future = PgInterval::try_from(to_chrono(FUTURE_SLACK)).unwrap_or_default();
    let doubtful: Vec<(i64, DateTime<Utc>, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT e.id, e.at, u.queued_at
         FROM audit_unsealed u JOIN audit_events e ON e.id = u.event_id
         WHERE e.id <= 0 OR e.id > coalesce($1::bigint, 0)
            OR u.queued_at - e.at > $2::interval OR e.at > u.queued_at + $3::interval
         ORDER BY e.id LIMIT $4",
    )
    .bind(issued.last)
    .bind(backdate)
    .bind(future)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    for (id, at, queued_at) in doubtful {
        let times = EventTimes { id, at, queued_at };
        if let Some(reason) = implausible(times, issued) {
            findings.push(ChainProblem {
                event_id: id,
                message: format!(
                    "is waiting to be sealed, and the sealer will refuse it: {reason}"
                ),
            });
        }
    }

    // Queued events whose row is gone were deleted before they could be sealed.
    let deleted: Vec<i64> = sqlx::query_scalar(
        "SELECT u.event_id FROM audit_unsealed u
         WHERE NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.id = u.event_id)
         ORDER BY u.event_id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    findings.extend(deleted.into_iter().map(|event_id| ChainProblem {
        event_id,
        message: "was waiting to be sealed but the event row is missing: it was deleted".to_owned(),
    }));

    // Events that are neither chained, queued nor refused were inserted around `append`, or
    // their queue entry was removed by hand.
    let stray: Vec<i64> = sqlx::query_scalar(
        "SELECT e.id FROM audit_events e
         WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = e.id)
           AND NOT EXISTS (SELECT 1 FROM audit_unsealed u WHERE u.event_id = e.id)
           AND NOT EXISTS (SELECT 1 FROM audit_refused r WHERE r.event_id = e.id)
         ORDER BY e.id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    findings.extend(stray.into_iter().map(|event_id| ChainProblem {
        event_id,
        message: "is neither sealed nor waiting to be sealed: it was inserted around opsbot or its seal entry was removed".to_owned(),
    }));
    Ok(())
}
