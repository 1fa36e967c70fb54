//! The digest's Desk methods: the scheduler's round ([`Desk::digest_tick`]), `/digest
//! preview`, `opsbot digest run` and `opsbot digest list`.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::sections::{self, DigestData, Heading, Window};
use super::store;
use super::{DigestSpec, WhenEmpty};
use crate::actor::{Actor, Source};
use crate::alerts::Mode;
use crate::audit::Outcome;
use crate::chat::Message;
use crate::desk::{Desk, Invocation, record_in};
use crate::error::CommandError;
use crate::outbox;

/// How often the scheduler looks for due digests: a fire time is posted within about this.
pub const DIGEST_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// How far back the scheduler looks for fire times it missed (then skips or catches up):
/// beyond any sensible `grace`, and a bound on how many fire times one round walks.
const LOOKBACK: chrono::Duration = chrono::Duration::days(7);
/// Most fire times within the grace one round walks (a `*/1 * * * * *` digest with a grace of
/// a day: the newest are found in the next round).
const MAX_DUE: usize = 100_000;
/// Most skipped fire times one round counts (and names in its audit event); the rest are
/// skipped by the next rounds.
const MAX_STALE: usize = 10_000;
/// The command of the scheduler's audit events.
pub const SCHEDULED_COMMAND: &str = "digest post";

/// What one digest did in a scheduler round.
#[derive(Debug, Clone, PartialEq)]
pub enum Fired {
    /// Posted (an outbox row) for this fire time.
    Posted {
        fire_at: DateTime<Utc>,
        outbox_id: i64,
    },
    /// Nothing to report and `when_empty = "skip"`.
    Empty { fire_at: DateTime<Utc> },
    /// Missed by more than the grace: skipped, audited.
    Skipped {
        fire_at: DateTime<Utc>,
        missed: usize,
    },
}

/// One digest's next fire time, for `opsbot digest list`.
#[derive(Debug, Clone, PartialEq)]
pub struct Upcoming {
    pub name: String,
    pub cron: String,
    pub zone: chrono_tz::Tz,
    pub channel: i64,
    pub next: Option<DateTime<Utc>>,
}

/// A digest posted now (`opsbot digest run`).
#[derive(Debug, Clone, PartialEq)]
pub struct RunNow {
    pub outbox_id: i64,
    pub window: Window,
}

impl super::DigestCatalog {
    /// Each digest's next fire time after `now` (`opsbot digest list`: the config alone).
    pub fn upcoming(&self, now: DateTime<Utc>) -> Vec<Upcoming> {
        self.digests
            .iter()
            .map(|d| Upcoming {
                name: d.name.clone(),
                cron: d.schedule.expression().to_owned(),
                zone: d.schedule.zone(),
                channel: d.channel,
                next: d.schedule.next_after(now),
            })
            .collect()
    }
}

impl Desk {
    fn digest_spec(&self, name: &str) -> Result<&DigestSpec, CommandError> {
        let digests = &self.digests().digests;
        digests.iter().find(|d| d.name == name).ok_or_else(|| {
            let known: Vec<&str> = digests.iter().map(|d| d.name.as_str()).collect();
            CommandError::NotFound(if known.is_empty() {
                format!("no digest \"{name}\": none are configured ([[digests]] in the config)")
            } else {
                format!("no digest \"{name}\"; configured: {}", known.join(", "))
            })
        })
    }

    /// The window a digest shown or posted at `now` covers: since its last fire time.
    fn window_now(spec: &DigestSpec, now: DateTime<Utc>) -> Window {
        let start = spec
            .schedule
            .last_at_or_before(now)
            .filter(|at| *at < now)
            .or_else(|| {
                spec.schedule
                    .last_at_or_before(now - chrono::Duration::seconds(1))
            })
            .unwrap_or(now - chrono::Duration::days(1));
        Window { start, end: now }
    }

    async fn digest_data(
        &self,
        db: &mut sqlx::PgConnection,
        window: Window,
    ) -> Result<DigestData, sqlx::Error> {
        let alerts = self.alerts();
        let mut data = store::read_window(db, window, &alerts.service_label).await?;
        for alert in &mut data.alerts {
            alert.held = usize::try_from(alert.route_index)
                .ok()
                .and_then(|i| alerts.routes.get(i))
                .is_some_and(|route| route.mode == Mode::Digest);
        }
        Ok(data)
    }

    fn digest_text(&self, spec: &DigestSpec, window: Window, data: &DigestData) -> Message {
        let zone = spec.schedule.zone();
        let heading = Heading {
            digest: &spec.name,
            zone: zone.name(),
            window,
            public_url: self.digests().public_url.as_deref(),
        };
        sections::digest_message(&heading, &spec.include, data)
    }

    /// `/digest preview name`: the digest as it would read if it fired now (needs
    /// `digest:preview`). Audited like every read.
    pub async fn digest_preview(
        &self,
        inv: &Invocation,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Message, CommandError> {
        self.authorize(inv, "digest:preview", "preview a digest")
            .await?;
        let result = async {
            let spec = self.digest_spec(name)?;
            let window = Self::window_now(spec, now);
            let mut db = self.pool.acquire().await?;
            let data = self.digest_data(&mut db, window).await?;
            Ok(self.digest_text(spec, window, &data))
        }
        .await;
        self.conclude(inv, result, |_| format!("previewed digest {name}"))
            .await
    }

    /// `opsbot digest run NAME`: posts the digest now, through the outbox, in the
    /// transaction of its audit event. It claims no fire time: the schedule goes on as
    /// before. The CLI runs with the database's own credentials (whoever can run it can write
    /// the tables), so no permission is checked; the operator's name is recorded.
    pub async fn digest_run_by_operator(
        &self,
        inv: &Invocation,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<RunNow, CommandError> {
        let result: Result<RunNow, CommandError> = async {
            let spec = self.digest_spec(name)?;
            let window = Self::window_now(spec, now);
            let mut tx = self.pool.begin().await?;
            let data = self.digest_data(&mut tx, window).await?;
            let message = self.digest_text(spec, window, &data);
            let detail = format!(
                "posted digest {name} to channel {} (window {} – {})",
                spec.channel,
                window.start.to_rfc3339(),
                window.end.to_rfc3339()
            );
            let event = record_in(&mut *tx, inv, Outcome::Ok, &detail).await?;
            let outbox_id = outbox::enqueue(&mut *tx, spec.channel, &message, Some(event)).await?;
            tx.commit().await?;
            Ok(RunNow { outbox_id, window })
        }
        .await;
        match result {
            Ok(done) => Ok(done),
            Err(error) => {
                self.record(inv, error.outcome(), &error.to_string())
                    .await?;
                Err(error)
            }
        }
    }

    /// The scheduler's round at `now` (under the `digests` lease, though the claims alone
    /// keep it exactly once): for each digest, the fire times since the last one claimed.
    pub async fn digest_tick(&self, now: DateTime<Utc>) -> Result<Vec<Fired>, CommandError> {
        let mut fired = Vec::new();
        for spec in &self.digests().digests {
            if let Some(done) = self.fire_due(spec, now).await? {
                fired.push(done);
            }
        }
        Ok(fired)
    }

    async fn fire_due(
        &self,
        spec: &DigestSpec,
        now: DateTime<Utc>,
    ) -> Result<Option<Fired>, CommandError> {
        let grace = chrono::Duration::from_std(spec.grace).unwrap_or(LOOKBACK);
        // Never run before: only fire times within the grace are owed.
        let from = match store::last_claimed(&self.pool, &spec.name).await? {
            Some(last) => last.max(now - LOOKBACK),
            None => now - grace,
        };
        // Owed and still within the grace: caught up (in one post); older: skipped.
        let fresh = spec.schedule.between(from.max(now - grace), now, MAX_DUE);
        let stale = if from < now - grace {
            spec.schedule.between(from, now - grace, MAX_STALE)
        } else {
            Vec::new()
        };
        let Some(&latest) = fresh.last().or(stale.last()) else {
            return Ok(None);
        };
        let inv = |args| {
            let mut inv =
                Invocation::new(Actor::system(Source::Scheduler), SCHEDULED_COMMAND, args);
            inv.channel_id = Some(spec.channel);
            inv
        };
        let mut tx = self.pool.begin().await?;
        let Some(&first_fresh) = fresh.first() else {
            // Every owed fire time is older than the grace: record the skip once.
            let window_start = spec
                .schedule
                .last_at_or_before(latest - chrono::Duration::seconds(1))
                .unwrap_or(latest);
            if !store::claim(&mut tx, &spec.name, latest, window_start).await? {
                return Ok(None);
            }
            let detail = skipped_detail(spec, &stale);
            tracing::warn!(digest = spec.name, missed = stale.len(), "{detail}");
            let event = record_in(
                &mut *tx,
                &inv(json!({ "digest": spec.name, "fire_at": latest, "missed": stale.len() })),
                Outcome::Expired,
                &detail,
            )
            .await?;
            store::settle(&mut tx, &spec.name, latest, "skipped", None, event).await?;
            tx.commit().await?;
            return Ok(Some(Fired::Skipped {
                fire_at: latest,
                missed: stale.len(),
            }));
        };
        // The post covers every owed fire time within the grace (one message, not one each).
        let window = Window {
            start: spec
                .schedule
                .last_at_or_before(first_fresh - chrono::Duration::seconds(1))
                .unwrap_or(first_fresh - chrono::Duration::days(1)),
            end: latest,
        };
        if !store::claim(&mut tx, &spec.name, latest, window.start).await? {
            return Ok(None);
        }
        let args = json!({
            "digest": spec.name,
            "fire_at": latest,
            "window_start": window.start,
            "caught_up": fresh.len() - 1,
        });
        if !stale.is_empty() {
            let detail = skipped_detail(spec, &stale);
            tracing::warn!(digest = spec.name, missed = stale.len(), "{detail}");
            record_in(&mut *tx, &inv(args.clone()), Outcome::Expired, &detail).await?;
        }
        let data = self.digest_data(&mut tx, window).await?;
        let quiet = sections::is_quiet(&spec.include, &data, window);
        let done = if quiet && spec.when_empty == WhenEmpty::Skip {
            let event = record_in(
                &mut *tx,
                &inv(args),
                Outcome::Ok,
                &format!(
                    "digest {}: nothing to report; not posted (when_empty = \"skip\")",
                    spec.name
                ),
            )
            .await?;
            store::settle(&mut tx, &spec.name, latest, "empty", None, event).await?;
            Fired::Empty { fire_at: latest }
        } else {
            let message = self.digest_text(spec, window, &data);
            let event = record_in(
                &mut *tx,
                &inv(args),
                Outcome::Ok,
                &format!("digest {} posted to channel {}", spec.name, spec.channel),
            )
            .await?;
            let outbox_id = outbox::enqueue(&mut *tx, spec.channel, &message, Some(event)).await?;
            store::settle(
                &mut tx,
                &spec.name,
                latest,
                "posted",
                Some(outbox_id),
                event,
            )
            .await?;
            Fired::Posted {
                fire_at: latest,
                outbox_id,
            }
        };
        tx.commit().await?;
        Ok(Some(done))
    }
}

fn skipped_detail(spec: &DigestSpec, stale: &[DateTime<Utc>]) -> String {
    let newest = stale.last().map(|at| at.to_rfc3339()).unwrap_or_default();
    let more = if stale.len() >= MAX_STALE {
        " (the next round counts the rest)"
    } else {
        ""
    };
    format!(
        "digest {}: {} fire time(s) up to {newest}{more} missed by more than the grace ({}): skipped",
        spec.name,
        stale.len(),
        humantime::format_duration(spec.grace)
    )
}
