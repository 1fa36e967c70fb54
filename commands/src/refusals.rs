//! Refusals of callers who never proved who they are (an unsigned deploy report, a wrong
//! dashboard token, a webhook without its bearer token). Writing each to the audit trail
//! would let anyone flood it, so they are counted instead: every refusal increments
//! `opsbot_unauthenticated_refusals_total{door}` and is logged (the first of each source
//! address and minute at `warn`, the rest at `debug`), and the trail gets at most one event
//! per door, source address and minute, carrying the count ([`RefusalSampler::flush`], run
//! by a background loop and at shutdown).
//!
//! Memory is bounded: beyond [`MAX_SOURCES`] distinct addresses in one minute, further
//! addresses are folded into one entry for "other addresses".

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, DurationRound as _, TimeDelta, Utc};
use serde_json::json;

use crate::actor::{Actor, Source};
use crate::audit::Outcome;
use crate::desk::{Invocation, record_in};
use crate::error::CommandError;

/// Distinct (door, address) pairs kept per minute before new ones are folded together.
pub const MAX_SOURCES: usize = 10_000;
/// Characters of a refusal reason kept in the audit event.
const REASON_CHARS: usize = 300;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    door: &'static str,
    minute: DateTime<Utc>,
    /// `None` stands for every address past [`MAX_SOURCES`].
    address: Option<IpAddr>,
}

#[derive(Debug, Clone)]
struct Tally {
    count: u64,
    first_reason: String,
    first_at: DateTime<Utc>,
    last_at: DateTime<Utc>,
    source: Source,
}

/// Counts unauthenticated refusals per door, source address and minute; shared by every
/// front door of one process (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct RefusalSampler {
    tallies: Arc<Mutex<HashMap<Key, Tally>>>,
}

fn minute_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::minutes(1)).unwrap_or(at)
}

impl RefusalSampler {
    /// Notes one refusal at `door` (e.g. `deploy report`, `dashboard login`) from
    /// `address`, for `reason`. Never touches the database.
    pub fn note(&self, door: &'static str, source: Source, address: IpAddr, reason: &str) {
        self.note_at(door, source, address, reason, Utc::now());
    }

    fn note_at(
        &self,
        door: &'static str,
        source: Source,
        address: IpAddr,
        reason: &str,
        now: DateTime<Utc>,
    ) {
        metrics::counter!("opsbot_unauthenticated_refusals_total", "door" => door).increment(1);
        let minute = minute_of(now);
        let mut tallies = match self.tallies.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut key = Key {
            door,
            minute,
            address: Some(address),
        };
        if !tallies.contains_key(&key) && tallies.len() >= MAX_SOURCES {
            key.address = None;
        }
        match tallies.get_mut(&key) {
            Some(tally) => {
                tally.count += 1;
                tally.last_at = now;
                tracing::debug!(door, %address, reason, "unauthenticated request refused");
            }
            None => {
                tracing::warn!(
                    door,
                    %address,
                    reason,
                    "unauthenticated request refused (further refusals from this address this minute are counted, not logged)"
                );
                tallies.insert(
                    key,
                    Tally {
                        count: 1,
                        first_reason: reason.chars().take(REASON_CHARS).collect(),
                        first_at: now,
                        last_at: now,
                        source,
                    },
                );
            }
        }
    }

    /// Writes one audit event per door, address and minute that has ended (every minute
    /// with `all`, at shutdown), and forgets them. Returns how many events were written.
    /// A tally whose write fails is kept for the next flush.
    pub async fn flush(&self, pool: &sqlx::PgPool, all: bool) -> Result<usize, CommandError> {
        self.flush_at(pool, all, Utc::now()).await
    }

    async fn flush_at(
        &self,
        pool: &sqlx::PgPool,
        all: bool,
        now: DateTime<Utc>,
    ) -> Result<usize, CommandError> {
        let current = minute_of(now);
        let due: Vec<(Key, Tally)> = {
            let mut tallies = match self.tallies.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            let keys: Vec<Key> = tallies
                .keys()
                .filter(|k| all || k.minute < current)
                .cloned()
                .collect();
            keys.into_iter()
                .filter_map(|k| tallies.remove(&k).map(|t| (k, t)))
                .collect()
        };
        let mut written = 0;
        let mut failed = None;
        for (key, tally) in due {
            if failed.is_some() {
                self.restore(key, tally);
                continue;
            }
            match record_in(
                pool,
                &invocation(&key, &tally),
                Outcome::Denied,
                &detail(&key, &tally),
            )
            .await
            {
                Ok(_) => written += 1,
                Err(e) => {
                    self.restore(key, tally);
                    failed = Some(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(written),
        }
    }

    fn restore(&self, key: Key, tally: Tally) {
        let mut tallies = match self.tallies.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        tallies
            .entry(key)
            .and_modify(|t| {
                t.count += tally.count;
                t.first_at = t.first_at.min(tally.first_at);
            })
            .or_insert(tally);
    }
}

fn address_text(key: &Key) -> String {
    key.address
        .map_or_else(|| "other addresses".to_owned(), |a| a.to_string())
}

fn invocation(key: &Key, tally: &Tally) -> Invocation {
    let actor = Actor {
        id: 0,
        name: format!("unauthenticated {}", address_text(key)),
        roles: Vec::new(),
        source: tally.source,
    };
    Invocation::new(
        actor,
        key.door,
        json!({
            "address": key.address.map(|a| a.to_string()),
            "count": tally.count,
            "minute": key.minute.to_rfc3339(),
            "first_at": tally.first_at.to_rfc3339(),
            "last_at": tally.last_at.to_rfc3339(),
        }),
    )
}

fn detail(key: &Key, tally: &Tally) -> String {
    let times = if tally.count == 1 {
        "1 unauthenticated request".to_owned()
    } else {
        format!("{} unauthenticated requests", tally.count)
    };
    format!(
        "{times} from {} refused in the minute from {} (first: {})",
        address_text(key),
        key.minute.format("%Y-%m-%d %H:%M UTC"),
        tally.first_reason
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn one_event_per_address_and_minute_with_the_count(pool: sqlx::PgPool) {
        let sampler = RefusalSampler::default();
        let t0 = DateTime::parse_from_rfc3339("2026-12-01T10:00:05Z")
            .expect("time")
            .with_timezone(&Utc);
        for i in 0..1_000 {
            sampler.note_at(
                "deploy report",
                Source::Webhook,
                addr(1),
                "bad signature",
                t0 + TimeDelta::milliseconds(i),
            );
        }
        sampler.note_at(
            "deploy report",
            Source::Webhook,
            addr(2),
            "missing header",
            t0,
        );
        // The minute is still running: nothing is written yet.
        assert_eq!(
            sampler
                .flush_at(&pool, false, t0 + TimeDelta::seconds(10))
                .await
                .expect("flush"),
            0
        );
        let written = sampler
            .flush_at(&pool, false, t0 + TimeDelta::seconds(60))
            .await
            .expect("flush");
        assert_eq!(written, 2);
        let rows: Vec<(String, String, String, serde_json::Value)> = sqlx::query_as(
            "SELECT actor_name, outcome, detail, args FROM audit_events ORDER BY actor_name",
        )
        .fetch_all(&pool)
        .await
        .expect("rows");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, "unauthenticated 192.0.2.1");
        assert_eq!(rows[0].1, "denied");
        assert!(
            rows[0]
                .2
                .starts_with("1000 unauthenticated requests from 192.0.2.1"),
            "{}",
            rows[0].2
        );
        assert_eq!(rows[0].3["count"], 1000);
        assert_eq!(rows[1].3["count"], 1);
        // Flushed tallies are gone.
        assert_eq!(
            sampler
                .flush_at(&pool, true, t0 + TimeDelta::seconds(120))
                .await
                .expect("flush"),
            0
        );
    }

    #[test]
    fn memory_is_bounded() {
        let sampler = RefusalSampler::default();
        let now = Utc::now();
        for i in 0..(MAX_SOURCES as u32 + 500) {
            let address = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            sampler.note_at("dashboard login", Source::Web, address, "wrong token", now);
        }
        let tallies = sampler.tallies.lock().expect("lock");
        assert_eq!(tallies.len(), MAX_SOURCES + 1);
        let other = tallies
            .iter()
            .find(|(k, _)| k.address.is_none())
            .map(|(_, t)| t.count);
        assert_eq!(other, Some(500));
    }
}
