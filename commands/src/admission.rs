//! Load shedding for the chat doors (Discord, `opsbot shell`): how many commands and button
//! presses one replica works on at once. Past that, a new one waits at most
//! [`Admission::wait`] for a place and is otherwise answered at once, "busy, try again",
//! instead of joining a queue that would answer after Discord's 3-second limit (or never) and
//! grow without bound. Nothing of a refused command ran, so nothing is half-done.
//!
//! Refusals are counted (`opsbot_commands_shed_total{command}`), logged once a minute per
//! command, and recorded in the audit trail as one event per command and minute carrying the
//! count (written by the refusal flush loop, like unauthenticated refusals): an overload must
//! not become a flood of audit writes on a database that is already the bottleneck.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, DurationRound as _, TimeDelta, Utc};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::actor::{Actor, Source};
use crate::audit::Outcome;
use crate::desk::{Desk, Invocation, record_in};
use crate::error::CommandError;

/// Commands in flight per database connection by default: a command holds a connection for a
/// millisecond or two of its life, so a few per connection keep the pool busy without a queue.
pub const IN_FLIGHT_PER_CONNECTION: usize = 8;
/// How long a command waits for a place by default before it is refused.
pub const DEFAULT_WAIT: Duration = Duration::from_millis(500);

/// The places, and the refusals not yet written to the audit trail.
#[derive(Debug)]
pub struct Admission {
    places: Arc<Semaphore>,
    capacity: usize,
    wait: Duration,
    shed: Mutex<HashMap<(DateTime<Utc>, String), Tally>>,
}

#[derive(Debug, Clone)]
struct Tally {
    count: u64,
    source: Source,
}

/// A command's place; dropping it frees the place.
#[derive(Debug)]
pub struct Entry {
    _permit: OwnedSemaphorePermit,
}

impl Admission {
    /// At most `capacity` (at least 1) at once; a newcomer waits at most `wait`.
    pub fn new(capacity: usize, wait: Duration) -> Admission {
        let capacity = capacity.max(1);
        Admission {
            places: Arc::new(Semaphore::new(capacity)),
            capacity,
            wait,
            shed: Mutex::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn wait(&self) -> Duration {
        self.wait
    }

    fn tallies(&self) -> std::sync::MutexGuard<'_, HashMap<(DateTime<Utc>, String), Tally>> {
        self.shed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn note(&self, command: &str, source: Source) {
        metrics::counter!("opsbot_commands_shed_total", "command" => command.to_owned())
            .increment(1);
        let now = Utc::now();
        let minute = now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now);
        let mut tallies = self.tallies();
        let tally = tallies
            .entry((minute, command.to_owned()))
            .or_insert_with(|| {
                tracing::warn!(
                    command,
                    capacity = self.capacity,
                    "busy: a command was refused (further refusals this minute are counted)"
                );
                Tally { count: 0, source }
            });
        tally.count += 1;
    }
}

impl Default for Admission {
    fn default() -> Admission {
        Admission::new(IN_FLIGHT_PER_CONNECTION * 10, DEFAULT_WAIT)
    }
}

impl Desk {
    /// A place for `command` (arriving through `source`), or [`CommandError::Unavailable`]
    /// ("busy, try again") when every place stayed taken for [`Admission::wait`].
    pub async fn enter(&self, command: &str, source: Source) -> Result<Entry, CommandError> {
        let admission = &self.admission;
        let permit = match admission.places.clone().try_acquire_owned() {
            Ok(permit) => Ok(permit),
            Err(_) => {
                tokio::time::timeout(admission.wait, admission.places.clone().acquire_owned())
                    .await
                    .map_err(|_| ())
                    .and_then(|acquired| acquired.map_err(|_| ()))
            }
        };
        match permit {
            Ok(permit) => Ok(Entry { _permit: permit }),
            Err(()) => {
                admission.note(command, source);
                Err(CommandError::Unavailable(
                    "opsbot is busy right now and did not start this; nothing was changed. Try again in a few seconds."
                        .to_owned(),
                ))
            }
        }
    }

    /// Writes one audit event per command and past minute with the number of refusals
    /// (`all`: the current minute too, at shutdown). Returns how many events were written.
    pub async fn flush_shed(&self, all: bool) -> Result<usize, CommandError> {
        let now = Utc::now();
        let current = now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now);
        let due: Vec<((DateTime<Utc>, String), Tally)> = {
            let mut tallies = self.admission.tallies();
            let keys: Vec<(DateTime<Utc>, String)> = tallies
                .keys()
                .filter(|(minute, _)| all || *minute < current)
                .cloned()
                .collect();
            keys.into_iter()
                .filter_map(|k| tallies.remove(&k).map(|t| (k, t)))
                .collect()
        };
        let mut written = 0;
        for ((minute, command), tally) in due {
            let inv = Invocation::new(
                Actor::system(tally.source),
                command.clone(),
                json!({
                    "shed": tally.count,
                    "minute": minute.to_rfc3339(),
                    "capacity": self.admission.capacity,
                }),
            );
            let detail = format!(
                "{} {command} refused: opsbot was busy ({} in flight) in the minute from {}",
                tally.count,
                self.admission.capacity,
                minute.format("%Y-%m-%d %H:%M UTC")
            );
            if let Err(e) = record_in(&self.pool, &inv, Outcome::Error, &detail).await {
                let mut tallies = self.admission.tallies();
                tallies
                    .entry((minute, command))
                    .and_modify(|t| t.count += tally.count)
                    .or_insert(tally);
                return Err(e);
            }
            written += 1;
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::RoleMap;

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn past_capacity_commands_are_refused_fast_and_audited_once_per_minute(
        pool: sqlx::PgPool,
    ) {
        let desk = Desk::new(pool.clone(), RoleMap::default())
            .with_admission(Admission::new(2, Duration::from_millis(20)));
        let first = desk
            .enter("deploy run", Source::Discord)
            .await
            .expect("a place");
        let _second = desk
            .enter("deploy run", Source::Discord)
            .await
            .expect("a place");
        for _ in 0..3 {
            let busy = desk.enter("deploy run", Source::Discord).await;
            assert!(
                matches!(&busy, Err(CommandError::Unavailable(why)) if why.contains("busy")),
                "{busy:?}"
            );
        }
        drop(first);
        desk.enter("whoami", Source::Discord)
            .await
            .expect("a freed place is taken");
        assert_eq!(desk.flush_shed(true).await.expect("flush"), 1);
        let (args, detail): (serde_json::Value, String) = sqlx::query_as(
            "SELECT args, detail FROM audit_events WHERE command = 'deploy run' AND outcome = 'error'",
        )
        .fetch_one(&pool)
        .await
        .expect("one event");
        assert_eq!(args["shed"], 3);
        assert!(
            detail.starts_with("3 deploy run refused: opsbot was busy"),
            "{detail}"
        );
        assert_eq!(
            desk.flush_shed(true).await.expect("flush"),
            0,
            "written once"
        );
    }
}
