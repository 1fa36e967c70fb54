//! Reminders: no status update within the severity's `reminder` interval → the commander is
//! reminded in the channel; no commander [`COMMANDER_GRACE`] after declare → the responders
//! are. Each fires once per interval across replicas and restarts: a reminder is a claimed
//! `(incident, kind, due time)` row, inserted with `ON CONFLICT DO NOTHING` in the same
//! transaction as its outbox message.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::store;
use super::view;
use crate::desk::Desk;
use crate::error::CommandError;
use crate::outbox;

/// How often the reminder loop looks.
pub const REMIND_INTERVAL: Duration = Duration::from_secs(30);
/// An incident with no commander this long after declare reminds the responders.
pub const COMMANDER_GRACE: Duration = Duration::from_secs(10 * 60);

/// The latest due time of a reminder every `every` since `since`, if one is due at `now`.
pub fn due_at(since: DateTime<Utc>, every: Duration, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let every = chrono::Duration::from_std(every).ok()?;
    if every <= chrono::Duration::zero() {
        return None;
    }
    let elapsed = now - since;
    if elapsed < every {
        return None;
    }
    let periods = elapsed.num_milliseconds() / every.num_milliseconds();
    Some(since + every * i32::try_from(periods).ok()?)
}

impl Desk {
    /// Sends the reminders due at `now` that no replica has sent; returns how many it sent.
    pub async fn incident_remind(&self, now: DateTime<Utc>) -> Result<usize, CommandError> {
        let mut sent = 0;
        for incident in store::open_with_channel(&self.pool).await? {
            let Some(channel) = incident.channel_id else {
                continue;
            };
            let severity = self.incidents().severities.get(&incident.severity).cloned();
            let mut due = Vec::new();
            if let Some(every) = severity.as_ref().and_then(|s| s.reminder)
                && let Some(at) = due_at(incident.last_update_at, every, now)
            {
                due.push(("update", at));
            }
            if incident.commander().is_none()
                && let Some(at) = chrono::Duration::from_std(COMMANDER_GRACE)
                    .ok()
                    .map(|grace| incident.started_at + grace)
                    .filter(|at| *at <= now)
            {
                due.push(("commander", at));
            }
            if due.is_empty() {
                continue;
            }
            let responders = self
                .responder_roles(incident.guild_id, &incident.severity)
                .await;
            for (kind, at) in due {
                let mut tx = self.pool.begin().await?;
                if !store::claim_reminder(&mut *tx, incident.id, kind, at).await? {
                    continue;
                }
                let message = if kind == "update" {
                    view::update_reminder(&incident, now - incident.last_update_at, &responders)
                } else {
                    view::commander_reminder(&incident, &responders)
                };
                let outbox_id = outbox::enqueue(&mut *tx, channel, &message, None).await?;
                store::set_reminder_outbox(&mut *tx, incident.id, kind, at, outbox_id).await?;
                tx.commit().await?;
                sent += 1;
            }
        }
        Ok(sent)
    }
}
