//! Events out: every audit event, once sealed, is published in chain order to a message
//! queue, so downstream systems (a SIEM, a data warehouse) get the trail without polling.
//!
//! How a user turns it on: an `[events.nats]` section (NATS JetStream, [`nats`]) and/or an
//! `[events.pubsub]` section (Google Cloud Pub/Sub, [`pubsub`]) in `opsbot.toml`; `opsbot run`
//! then runs one `events <sink>` background loop per sink, on one replica at a time (its
//! lease). Each message is the event's JSON exactly as `opsbot audit tail --json` prints it.
//! Progress is on `/metrics` (`opsbot_events_lag_events{sink}`,
//! `opsbot_events_lag_seconds{sink}`) and on a `events: …` line of `/readyz`.
//!
//! Delivery: per sink, the last chain position the broker acknowledged is stored in
//! `events_cursor` ([`cursor`]). A round ([`Publisher::round`]) reads the sealed events after
//! it, publishes them as one batch, waits for every acknowledgement and only then stores the
//! new position, once. A broker outage or a restart therefore never skips an event; at most
//! the last unacknowledged batch is sent again, which JetStream discards by `Nats-Msg-Id` and
//! a Pub/Sub consumer recognises by its `position` attribute.

pub mod cursor;
pub mod nats;
pub mod pubsub;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

use crate::audit::{self, AuditEvent};

/// How many events one batch holds.
pub const BATCH: i64 = 100;
/// Batches per round at most, so that a long backlog still lets the loop renew its lease.
const BATCHES_PER_ROUND: usize = 20;
/// How often the loop looks for newly sealed events.
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);
/// Waits after a failed publish: doubling from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(16);

/// One event ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The event's chain position: the message id (NATS) or `position` attribute (Pub/Sub).
    pub position: i64,
    /// The command group as a subject token: `deploy`, `incident`, `audit`.
    pub group: String,
    pub correlation_id: Option<Uuid>,
    /// `serde_json::to_string(&AuditEvent)`: the line `opsbot audit tail --json` prints.
    pub json: String,
}

impl Outgoing {
    pub fn new(event: &AuditEvent) -> Result<Outgoing, EventsError> {
        let position = event
            .position
            .ok_or_else(|| EventsError::Encode(format!("event {} is not sealed", event.id)))?;
        Ok(Outgoing {
            position,
            group: subject_token(&event.command),
            correlation_id: event.correlation_id,
            json: serde_json::to_string(event).map_err(|e| EventsError::Encode(e.to_string()))?,
        })
    }
}

/// The first word of `command` as one NATS subject token: lowercase ASCII letters, digits,
/// `-` and `_` (anything else becomes `_`; no `.`, `*`, `>` or whitespace); `unknown` when empty.
pub fn subject_token(command: &str) -> String {
    let word = command.split_whitespace().next().unwrap_or_default();
    let token: String = word
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '_' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .collect();
    if token.is_empty() {
        "unknown".to_owned()
    } else {
        token
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("the events sink `{sink}` failed: {message}")]
    Broker { sink: String, message: String },
    #[error("an event could not be encoded: {0}")]
    Encode(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Where events go. `publish` returns only when the broker acknowledged every message of the
/// batch, in order; an error means some may not have arrived (the batch is sent again).
#[async_trait::async_trait]
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// `nats` or `pubsub`: the cursor's key and the metrics' `sink` label.
    fn name(&self) -> &'static str;
    async fn publish(&self, batch: &[Outgoing]) -> Result<(), EventsError>;
}

/// How far a sink is behind the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// Sealed events not yet acknowledged by the broker.
    pub events: i64,
    /// Since the oldest of those was sealed; 0 when caught up.
    pub seconds: i64,
}

/// The lag of `sink` now.
pub async fn lag(pool: &PgPool, sink: &str) -> Result<Lag, sqlx::Error> {
    let published = cursor::load(pool, sink).await?;
    let (head, oldest) = audit::chain_backlog(pool, published).await?;
    let seconds = oldest.map_or(0, |sealed| {
        (chrono::Utc::now() - sealed).num_seconds().max(0)
    });
    Ok(Lag {
        events: (head - published).max(0),
        seconds,
    })
}

/// `events: nats 0 behind, pubsub 3 behind (2 s)`: the `/readyz` line for `sinks`.
pub async fn readiness_line(pool: &PgPool, sinks: &[&str]) -> String {
    let mut parts = Vec::new();
    for sink in sinks {
        parts.push(match lag(pool, sink).await {
            Ok(Lag { events: 0, .. }) => format!("{sink} 0 behind"),
            Ok(lag) => format!("{sink} {} behind ({} s)", lag.events, lag.seconds),
            Err(_) => format!("{sink} unknown (the database is not answering)"),
        });
    }
    format!("events: {}", parts.join(", "))
}

/// What `/readyz` needs to report the lag of every configured sink.
#[derive(Debug, Clone)]
pub struct EventsReadiness {
    pool: PgPool,
    sinks: Vec<&'static str>,
}

impl EventsReadiness {
    pub fn new(pool: PgPool, sinks: Vec<&'static str>) -> EventsReadiness {
        EventsReadiness { pool, sinks }
    }

    /// The `events: …` line ([`readiness_line`]).
    pub async fn line(&self) -> String {
        readiness_line(&self.pool, &self.sinks).await
    }
}

/// After a failure: when the next attempt may be made, and how long the wait after that.
#[derive(Debug, Default)]
struct Backoff {
    next_attempt: Option<Instant>,
    wait: Duration,
}

/// The publishing loop of one sink: call [`Publisher::round`] every [`PUBLISH_INTERVAL`].
#[derive(Debug)]
pub struct Publisher {
    pool: PgPool,
    sink: Box<dyn Sink>,
    backoff: Mutex<Backoff>,
}

impl Publisher {
    pub fn new(pool: PgPool, sink: Box<dyn Sink>) -> Publisher {
        Publisher {
            pool,
            sink,
            backoff: Mutex::new(Backoff::default()),
        }
    }

    pub fn sink_name(&self) -> &'static str {
        self.sink.name()
    }

    /// The loop's (and its lease's) name: `events nats`, `events pubsub`.
    pub fn loop_name(&self) -> &'static str {
        match self.sink.name() {
            "nats" => "events nats",
            "pubsub" => "events pubsub",
            _ => "events",
        }
    }

    /// Publishes what was sealed since the cursor, a batch at a time, storing the cursor
    /// after each acknowledged batch; returns how many events were published. While backing
    /// off after a failure (1 s doubling to 16 s) a round publishes nothing.
    pub async fn round(&self) -> Result<usize, EventsError> {
        let waiting = self
            .backoff
            .lock()
            .map(|b| b.next_attempt.is_some_and(|at| Instant::now() < at))
            .unwrap_or(false);
        let outcome = if waiting {
            Ok(0)
        } else {
            let outcome = self.publish_pending().await;
            self.after_attempt(outcome.is_ok());
            outcome
        };
        self.report_lag().await;
        outcome
    }

    async fn publish_pending(&self) -> Result<usize, EventsError> {
        let name = self.sink.name();
        let mut published = 0;
        for _ in 0..BATCHES_PER_ROUND {
            let after = cursor::load(&self.pool, name).await?;
            let events = audit::sealed_after(&self.pool, after, BATCH).await?;
            let Some(last) = events.last().and_then(|e| e.position) else {
                break;
            };
            let batch = events
                .iter()
                .map(Outgoing::new)
                .collect::<Result<Vec<_>, _>>()?;
            self.sink.publish(&batch).await?;
            cursor::store(&self.pool, name, last).await?;
            metrics::counter!("opsbot_events_published_total", "sink" => name)
                .increment(batch.len() as u64);
            published += batch.len();
            if (events.len() as i64) < BATCH {
                break;
            }
        }
        Ok(published)
    }

    fn after_attempt(&self, ok: bool) {
        let Ok(mut backoff) = self.backoff.lock() else {
            return;
        };
        if ok {
            *backoff = Backoff::default();
        } else {
            backoff.wait = if backoff.wait.is_zero() {
                BACKOFF_FIRST
            } else {
                (backoff.wait * 2).min(BACKOFF_MAX)
            };
            backoff.next_attempt = Some(Instant::now() + backoff.wait);
        }
    }

    async fn report_lag(&self) {
        let name = self.sink.name();
        if let Ok(lag) = lag(&self.pool, name).await {
            metrics::gauge!("opsbot_events_lag_events", "sink" => name).set(lag.events as f64);
            metrics::gauge!("opsbot_events_lag_seconds", "sink" => name).set(lag.seconds as f64);
        }
    }
}

#[cfg(test)]
mod tests;
