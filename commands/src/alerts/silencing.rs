//! Silences from Discord, made in Alertmanager (permission `alerts:silence`):
//! - the **Silence for…** picker on an alert group's message (30m, 1h, 4h, 24h, until
//!   resolved) silences the group's labels, exactly; **Unsilence** expires it;
//! - **Ack + silence until resolved** acks and silences; opsbot expires that silence when the
//!   group resolves (queued in the transaction that stores the resolve, retried until
//!   Alertmanager answers: [`super::silence_upkeep`]).
//!
//! `/alerts silence` and `/alerts silences` are [`super::silence_commands`].
//!
//! Alertmanager is called before anything is stored: when it cannot be reached the member
//! gets a clear error, nothing changes, and the attempt is audited as `error`.

use std::time::Duration;

use chrono::Utc;

use super::payload::Labels;
use super::routing::Matcher;
use super::silence::{Alertmanager, AlertmanagerError, ApiMatcher, NewSilence};
use super::store::{self, SilenceRecord};
use super::view;
use crate::audit::Outcome;
use crate::chat::Message;
use crate::desk::{Desk, Invocation, record_in};
use crate::error::CommandError;
use crate::outbox;

/// The permission of every silence action.
pub const SILENCE_PERMISSION: &str = "alerts:silence";
/// An "until resolved" silence still needs an end in Alertmanager: if the group never
/// resolves (Alertmanager lost it), the silence ends by itself after a week.
pub const UNTIL_RESOLVED_CAP: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long a silence lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilenceLength {
    For(Duration),
    UntilResolved,
}

impl SilenceLength {
    /// A picker value: `30m`, `1h`, `4h`, `24h` or `until resolved`.
    pub fn from_choice(value: &str) -> Option<SilenceLength> {
        if value == view::UNTIL_RESOLVED {
            return Some(SilenceLength::UntilResolved);
        }
        view::SILENCE_CHOICES
            .iter()
            .find(|(label, _)| *label == value)
            .map(|(_, secs)| SilenceLength::For(Duration::from_secs(*secs)))
    }
}

/// What a press changes in the store.
enum GroupChange<'a> {
    Silenced {
        record: SilenceRecord<'a>,
        ack: bool,
    },
    Expired {
        silence_id: &'a str,
        by: &'a str,
    },
}

/// A silence made or expired from a group's message: the message as it reads now.
#[derive(Debug, Clone, PartialEq)]
pub struct SilenceOutcome {
    pub group_id: i64,
    pub silence_id: String,
    pub message: Message,
}

impl Desk {
    pub(super) fn alertmanager(&self) -> Result<&Alertmanager, CommandError> {
        self.alerts().alertmanager.as_ref().ok_or_else(|| {
            CommandError::Unavailable(
                "opsbot has no Alertmanager to silence in: set [alertmanager] url in the config"
                    .to_owned(),
            )
        })
    }

    /// An Alertmanager call failed: audited (outcome `error` when it could not be reached),
    /// nothing stored.
    pub(super) async fn alertmanager_failed(
        &self,
        inv: &Invocation,
        error: AlertmanagerError,
    ) -> CommandError {
        self.refuse(inv, CommandError::from(error)).await
    }

    /// Silences group `group_id` from its message's picker.
    pub async fn alert_silence(
        &self,
        inv: &Invocation,
        group_id: i64,
        length: SilenceLength,
    ) -> Result<SilenceOutcome, CommandError> {
        self.silence_group(inv, group_id, length, false).await
    }

    /// "Ack + silence until resolved": acks and silences until the group resolves, as one
    /// change with one audit event.
    pub async fn alert_ack_and_silence(
        &self,
        inv: &Invocation,
        group_id: i64,
    ) -> Result<SilenceOutcome, CommandError> {
        self.authorize(inv, super::ack::ACK_PERMISSION, "ack alerts")
            .await?;
        self.silence_group(inv, group_id, SilenceLength::UntilResolved, true)
            .await
    }

    async fn silence_group(
        &self,
        inv: &Invocation,
        group_id: i64,
        length: SilenceLength,
        ack: bool,
    ) -> Result<SilenceOutcome, CommandError> {
        self.authorize(inv, SILENCE_PERMISSION, "silence alerts")
            .await?;
        let am = match self.alertmanager() {
            Ok(am) => am,
            Err(e) => return Err(self.refuse(inv, e).await),
        };
        let Some(group) = store::group(&self.pool, group_id).await? else {
            let e = CommandError::NotFound(format!("alert group {group_id} does not exist"));
            return Err(self.refuse(inv, e).await);
        };
        if !group.is_firing() {
            let e = CommandError::Conflict(
                "this alert group has resolved; there is nothing to silence".to_owned(),
            );
            return Err(self.refuse(inv, e).await);
        }
        if let (true, Some(who)) = (ack, &group.acked_by_name) {
            let e = CommandError::Conflict(if group.acked_by_id == Some(inv.actor.id) {
                "you already acked this alert".to_owned()
            } else {
                format!("{who} already has this alert (acked it first)")
            });
            return Err(self.refuse(inv, e).await);
        }
        if let Some(who) = &group.silenced_by_name
            && group.silenced_until.is_none_or(|until| until > Utc::now())
        {
            let e = CommandError::Conflict(format!(
                "{who} already silenced this group; press Unsilence first to silence it differently"
            ));
            return Err(self.refuse(inv, e).await);
        }
        let labels: &Labels = if group.group_labels.0.is_empty() {
            &group.common_labels.0
        } else {
            &group.group_labels.0
        };
        let matchers = group_matchers(labels);
        if matchers.is_empty() {
            let e = CommandError::Invalid(
                "this group has no labels to silence by; use /alerts silence with matchers"
                    .to_owned(),
            );
            return Err(self.refuse(inv, e).await);
        }
        let now = Utc::now();
        let (ends_at, until_resolved) = match length {
            SilenceLength::For(d) => (now + chrono_duration(d), false),
            SilenceLength::UntilResolved => (now + chrono_duration(UNTIL_RESOLVED_CAP), true),
        };
        let comment = format!(
            "Silenced from opsbot by {} on the message of alert group {} (channel {}){}",
            inv.actor.name,
            group.id,
            group.channel_id,
            if until_resolved {
                "; opsbot expires it when the group resolves"
            } else {
                ""
            }
        );
        let new = NewSilence {
            matchers: matchers.clone(),
            starts_at: now,
            ends_at,
            created_by: inv.actor.name.clone(),
            comment: comment.clone(),
        };
        let silence_id = match am.create(&new).await {
            Ok(id) => id,
            Err(e) => return Err(self.alertmanager_failed(inv, e).await),
        };
        let record = SilenceRecord {
            silence_id: &silence_id,
            group_id: Some(group.id),
            matchers: serde_json::to_value(&matchers).unwrap_or_default(),
            created_by_id: inv.actor.id,
            created_by_name: &inv.actor.name,
            comment: &comment,
            ends_at,
            until_resolved,
        };
        let detail = format!(
            "{}silenced alert group {group_id} {} (silence {silence_id})",
            if ack { "acked and " } else { "" },
            match length {
                SilenceLength::For(d) => format!("for {}", humantime::format_duration(d)),
                SilenceLength::UntilResolved => "until it resolves".to_owned(),
            }
        );
        match self
            .store_group_change(
                inv,
                group_id,
                &detail,
                GroupChange::Silenced { record, ack },
            )
            .await
        {
            Ok(message) => Ok(SilenceOutcome {
                group_id,
                silence_id,
                message,
            }),
            Err(e) => {
                // Stored nothing: take the silence back so that nothing changed.
                if let Err(undo) = am.expire(&silence_id).await {
                    tracing::error!(silence = %silence_id, error = %undo, "a silence opsbot could not record stays in Alertmanager until it ends");
                }
                Err(e)
            }
        }
    }

    /// Unsilence pressed: expires the group's silence.
    pub async fn alert_unsilence(
        &self,
        inv: &Invocation,
        group_id: i64,
    ) -> Result<SilenceOutcome, CommandError> {
        self.authorize(inv, SILENCE_PERMISSION, "unsilence alerts")
            .await?;
        let am = match self.alertmanager() {
            Ok(am) => am,
            Err(e) => return Err(self.refuse(inv, e).await),
        };
        let group = store::group(&self.pool, group_id).await?;
        let Some(silence_id) = group.as_ref().and_then(|g| g.silence_id.clone()) else {
            let e = CommandError::Conflict("this alert group is not silenced".to_owned());
            return Err(self.refuse(inv, e).await);
        };
        match am.expire(&silence_id).await {
            // Someone expired it in Alertmanager already: the message catches up.
            Ok(()) | Err(AlertmanagerError::NotFound(_)) => {}
            Err(e) => return Err(self.alertmanager_failed(inv, e).await),
        }
        let detail = format!("unsilenced alert group {group_id} (expired silence {silence_id})");
        let change = GroupChange::Expired {
            silence_id: &silence_id,
            by: &inv.actor.name,
        };
        let message = self
            .store_group_change(inv, group_id, &detail, change)
            .await?;
        Ok(SilenceOutcome {
            group_id,
            silence_id,
            message,
        })
    }

    /// In one transaction: `change`, the audit event, and an edit of the group's message;
    /// returns the message as it reads now.
    async fn store_group_change(
        &self,
        inv: &Invocation,
        group_id: i64,
        detail: &str,
        change: GroupChange<'_>,
    ) -> Result<Message, CommandError> {
        let route =
            sqlx::query_scalar::<_, i32>("SELECT route_index FROM alert_groups WHERE id = $1")
                .bind(group_id)
                .fetch_optional(&self.pool)
                .await?;
        let mention = match route {
            Some(index) => {
                self.route_mentions(usize::try_from(index).unwrap_or(usize::MAX))
                    .await
            }
            None => Vec::new(),
        };
        let mut tx = self.pool.begin().await?;
        // Locked first: a delivery resolving the group waits for this change, or this one
        // sees it resolved.
        let Some(locked) = store::lock_group(&mut tx, group_id).await? else {
            return Err(CommandError::NotFound(format!(
                "alert group {group_id} does not exist"
            )));
        };
        let mut wake = false;
        match change {
            GroupChange::Silenced { record, ack } => {
                store::insert_silence(&mut tx, &record).await?;
                if ack && locked.acked_by_id.is_none() {
                    store::set_ack(&mut tx, group_id, inv.actor.id, &inv.actor.name).await?;
                }
                if !locked.is_firing() {
                    // It resolved since we looked: an "until resolved" silence is due now.
                    wake = store::due_on_resolve(&mut tx, group_id).await? > 0;
                }
            }
            GroupChange::Expired { silence_id, by } => {
                store::mark_expired(&mut tx, silence_id, by).await?;
            }
        }
        let Some(group) = store::group(&mut *tx, group_id).await? else {
            return Err(CommandError::NotFound(format!(
                "alert group {group_id} does not exist"
            )));
        };
        let alerts = store::instances(&mut *tx, group_id).await?;
        let message = view::group_message(&group, &alerts, &mention);
        let event = record_in(&mut *tx, inv, Outcome::Ok, detail).await?;
        if let Some(post) = group.post_outbox_id {
            outbox::enqueue_edit_of(&mut *tx, group.channel_id, post, &message, Some(event))
                .await?;
        }
        if let Some(thread) = group.thread_id {
            let line = Message::text(format!("🔕 {} ({})", detail, inv.actor.name));
            outbox::enqueue(&mut *tx, thread, &line, Some(event)).await?;
        }
        tx.commit().await?;
        if wake {
            self.alerts().upkeep_wake.notify_one();
        }
        Ok(message)
    }
}

/// Exact matchers on `labels`.
pub(super) fn group_matchers(labels: &Labels) -> Vec<ApiMatcher> {
    labels
        .iter()
        .map(|(name, value)| ApiMatcher::from(&Matcher::equal(name, value)))
        .collect()
}

pub(super) fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(31))
}
