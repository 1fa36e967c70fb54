//! The silence loop (`opsbot run` registers it as "alert silences", one replica at a time):
//! - a group that resolves while silenced gets no resolve from Alertmanager (it mutes
//!   resolved alerts too), so the loop asks Alertmanager whether a silenced group's alerts
//!   still fire, and stores the resolve itself when they are gone;
//! - "until resolved" silences whose group resolved are expired in Alertmanager; one that
//!   Alertmanager does not take is retried with backoff, so nothing is lost while it is down.

use std::time::Duration;

use chrono::Utc;

use super::payload::{Alert, Payload, Status};
use super::silence::AlertmanagerError;
use super::silencing::group_matchers;
use super::store;
use crate::actor::{Actor, Source};
use crate::audit::Outcome;
use crate::desk::{Desk, Invocation, record_in};
use crate::error::CommandError;

/// How long a failed "until resolved" expiry waits before the next attempt, at most.
pub const EXPIRY_RETRY_MAX: Duration = Duration::from_secs(600);
/// How often the silence loop runs (it is also woken by each resolve that makes a silence
/// due): a group that resolves while silenced (Alertmanager sends no resolve for it) shows
/// resolved within about this long, and a due expiry waits at most this long after a miss.
pub const EXPIRY_INTERVAL: Duration = Duration::from_secs(10);

/// The audit command of a resolve opsbot found itself (Alertmanager muted it).
pub const RESOLVED_WHILE_SILENCED: &str = "alerts resolved while silenced";

impl Desk {
    /// The silence loop's round: first the silenced groups whose alerts Alertmanager no
    /// longer has (resolved while silenced: Alertmanager mutes that resolve, so opsbot
    /// stores it itself, which makes their "until resolved" silences due), then the due
    /// expiries.
    pub async fn alert_silence_upkeep(&self) -> Result<usize, CommandError> {
        self.forget_ended_silences().await?;
        let Some(am) = self.alerts().alertmanager.as_ref() else {
            return Ok(0);
        };
        for group in store::silenced_firing_groups(&self.pool, 50).await? {
            let labels = if group.group_labels.0.is_empty() {
                &group.common_labels.0
            } else {
                &group.group_labels.0
            };
            match am.firing_alerts(&group_matchers(labels)).await {
                Ok(0) => {
                    let alerts = store::instances(&self.pool, group.id).await?;
                    let payload = resolved_payload(&group, &alerts);
                    self.store_group_state(&payload, RESOLVED_WHILE_SILENCED, Source::Scheduler)
                        .await?;
                }
                Ok(_) => {}
                // Down: the due expiries below fail the same way and are retried.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check silenced alert groups in Alertmanager");
                    break;
                }
            }
        }
        self.expire_due_silences().await
    }

    /// Timed silences that ended by themselves in Alertmanager: their messages stop saying
    /// "silenced" and offer the Silence picker again.
    async fn forget_ended_silences(&self) -> Result<(), CommandError> {
        for (group_id, silence_id) in store::ended_silences(&self.pool, 50).await? {
            let mut tx = self.pool.begin().await?;
            store::mark_expired(&mut tx, &silence_id, "its end").await?;
            let inv = Invocation::new(
                Actor::system(Source::Scheduler),
                "alerts silence ended",
                serde_json::json!({ "silence_id": silence_id, "group_id": group_id }),
            );
            let detail = format!("silence {silence_id} of alert group {group_id} ended");
            let event = record_in(&mut *tx, &inv, Outcome::Ok, &detail).await?;
            super::silence_commands::refresh_message(&mut tx, self, group_id, event).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Expires the "until resolved" silences whose groups resolved; one that Alertmanager
    /// does not take is retried later with backoff (nothing is lost while it is down).
    /// Returns how many were expired.
    pub async fn expire_due_silences(&self) -> Result<usize, CommandError> {
        let Some(am) = self.alerts().alertmanager.as_ref() else {
            return Ok(0);
        };
        let mut expired = 0;
        for _ in 0..50 {
            let mut tx = self.pool.begin().await?;
            let Some(due) = store::lock_due_silences(&mut tx, 1).await?.pop() else {
                break;
            };
            let inv = Invocation::new(
                Actor::system(Source::Scheduler),
                "alerts expire silence",
                serde_json::json!({ "silence_id": due.silence_id, "group_id": due.group_id }),
            );
            match am.expire(&due.silence_id).await {
                Ok(()) | Err(AlertmanagerError::NotFound(_)) => {
                    store::mark_expired(&mut tx, &due.silence_id, "opsbot (group resolved)")
                        .await?;
                    record_in(
                        &mut *tx,
                        &inv,
                        Outcome::Ok,
                        &format!(
                            "expired silence {} of alert group {}: the group resolved",
                            due.silence_id,
                            due.group_id.unwrap_or_default()
                        ),
                    )
                    .await?;
                    expired += 1;
                }
                Err(e) => {
                    let wait = retry_after(due.expire_attempts);
                    store::expiry_failed(&mut tx, due.id, &e.to_string(), wait).await?;
                    if due.expire_attempts == 0 {
                        record_in(
                            &mut *tx,
                            &inv,
                            Outcome::Error,
                            &format!(
                                "could not expire silence {} yet ({e}); retrying",
                                due.silence_id
                            ),
                        )
                        .await?;
                    }
                    tx.commit().await?;
                    // Alertmanager is down: the others would fail the same way.
                    break;
                }
            }
            tx.commit().await?;
        }
        Ok(expired)
    }
}

/// The delivery Alertmanager would have sent had it not muted the resolve: every alert of
/// the group resolved now.
fn resolved_payload(group: &store::AlertGroup, alerts: &[store::AlertInstance]) -> Payload {
    let now = Utc::now();
    Payload {
        version: super::payload::VERSION.to_owned(),
        group_key: group.group_key.clone(),
        truncated_alerts: 0,
        status: Status::Resolved,
        receiver: group.receiver.clone(),
        group_labels: group.group_labels.0.clone(),
        common_labels: group.common_labels.0.clone(),
        common_annotations: group.common_annotations.0.clone(),
        external_url: group.external_url.clone(),
        alerts: alerts
            .iter()
            .map(|a| Alert {
                status: Status::Resolved,
                labels: a.labels.0.clone(),
                annotations: a.annotations.0.clone(),
                starts_at: a.starts_at,
                ends_at: Some(a.ends_at.filter(|t| *t < now).unwrap_or(now)),
                generator_url: a.generator_url.clone(),
                fingerprint: a.fingerprint.clone(),
            })
            .collect(),
    }
}

/// 10 s, 20 s, 40 s, ... up to [`EXPIRY_RETRY_MAX`].
fn retry_after(attempts: i32) -> Duration {
    let factor = 1u64 << attempts.clamp(0, 10);
    (EXPIRY_INTERVAL * u32::try_from(factor).unwrap_or(u32::MAX)).min(EXPIRY_RETRY_MAX)
}
