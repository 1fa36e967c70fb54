//! Silences from Discord, made in Alertmanager (permission `alerts:silence`):
//! - the **Silence for…** picker on an alert group's message (30m, 1h, 4h, 24h, until
//!   resolved) silences the group's labels, exactly; **Unsilence** expires it;
//! - **Ack + silence until resolved** acks and silences; opsbot expires that silence when the
//!   group resolves (queued in the transaction that stores the resolve, retried until
//!   Alertmanager answers: [`Desk::expire_due_silences`]);
//! - `/alerts silence matchers duration reason`, `/alerts silences` (with an **Expire**
//!   button each).
//!
//! Alertmanager is called before anything is stored: when it cannot be reached the member
//! gets a clear error, nothing changes, and the attempt is audited as `error`.

use std::time::Duration;

use chrono::Utc;

use super::payload::{Alert, Labels, Payload, Status};
use super::routing::{self, Matcher};
use super::silence::{Alertmanager, AlertmanagerError, ApiMatcher, MAX_SILENCE, NewSilence};
use super::store::{self, SilenceRecord};
use super::view;
use crate::actor::{Actor, Source};
use crate::audit::Outcome;
use crate::chat::{Button, ButtonStyle, Embed, Message, Text, TimeStyle};
use crate::desk::{Desk, Invocation, record_in};
use crate::error::CommandError;
use crate::outbox;

/// The permission of every silence action.
pub const SILENCE_PERMISSION: &str = "alerts:silence";
/// An "until resolved" silence still needs an end in Alertmanager: if the group never
/// resolves (Alertmanager lost it), the silence ends by itself after a week.
pub const UNTIL_RESOLVED_CAP: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longest `/alerts silence` reason kept (Alertmanager's comment).
pub const REASON_MAX: usize = 500;
/// Silences shown by `/alerts silences` (one Expire button each: 5 rows of 5).
pub const LIST_MAX: usize = 25;
/// How long a failed "until resolved" expiry waits before the next attempt, at most.
pub const EXPIRY_RETRY_MAX: Duration = Duration::from_secs(600);
/// How often the silence loop runs (it is also woken by each resolve that makes a silence
/// due): a group that resolves while silenced (Alertmanager sends no resolve for it) shows
/// resolved within about this long, and a due expiry waits at most this long after a miss.
pub const EXPIRY_INTERVAL: Duration = Duration::from_secs(10);

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
    fn alertmanager(&self) -> Result<&Alertmanager, CommandError> {
        self.alerts().alertmanager.as_ref().ok_or_else(|| {
            CommandError::Unavailable(
                "opsbot has no Alertmanager to silence in: set [alertmanager] url in the config"
                    .to_owned(),
            )
        })
    }

    /// An Alertmanager call failed: audited (outcome `error` when it could not be reached),
    /// nothing stored.
    async fn alertmanager_failed(
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
        if let Some(who) = &group.silenced_by_name {
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
        match change {
            GroupChange::Silenced { record, ack } => {
                store::insert_silence(&mut tx, &record).await?;
                if ack {
                    store::set_ack(&mut tx, group_id, inv.actor.id, &inv.actor.name).await?;
                }
            }
            GroupChange::Expired { silence_id, by } => {
                store::mark_expired(&mut tx, silence_id, by).await?;
            }
        }
        let Some(group) = store::lock_group(&mut tx, group_id).await? else {
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
        tx.commit().await?;
        Ok(message)
    }

    /// `/alerts silence matchers duration reason`: matchers in Alertmanager's syntax, checked
    /// before anything is sent.
    pub async fn alerts_silence_matchers(
        &self,
        inv: &Invocation,
        matchers: &str,
        duration: &str,
        reason: &str,
    ) -> Result<Message, CommandError> {
        self.authorize(inv, SILENCE_PERMISSION, "silence alerts")
            .await?;
        let checked = (|| {
            let parsed = routing::parse_list(matchers).map_err(CommandError::Invalid)?;
            if parsed.iter().all(|m| m.value.is_empty() || m.is_negative()) {
                return Err(CommandError::Invalid(
                    "at least one matcher must match a non-empty value positively (Alertmanager refuses silences that match everything)".to_owned(),
                ));
            }
            let length = humantime::parse_duration(duration.trim()).map_err(|e| {
                CommandError::Invalid(format!(
                    "`{duration}` is not a duration ({e}); write e.g. 90m, 2h or 3d"
                ))
            })?;
            if length < Duration::from_secs(60) || length > MAX_SILENCE {
                return Err(CommandError::Invalid(format!(
                    "a silence lasts from 1 minute to {}; `{duration}` does not",
                    humantime::format_duration(MAX_SILENCE)
                )));
            }
            let reason = reason.trim();
            if reason.is_empty() {
                return Err(CommandError::Invalid(
                    "say why (reason), so that others know whether the silence still matters"
                        .to_owned(),
                ));
            }
            if reason.chars().count() > REASON_MAX {
                return Err(CommandError::Invalid(format!(
                    "the reason is longer than {REASON_MAX} characters"
                )));
            }
            Ok((parsed, length, reason.to_owned()))
        })();
        let (parsed, length, reason) = match checked {
            Ok(checked) => checked,
            Err(e) => return Err(self.refuse(inv, e).await),
        };
        let am = match self.alertmanager() {
            Ok(am) => am,
            Err(e) => return Err(self.refuse(inv, e).await),
        };
        let api: Vec<ApiMatcher> = parsed.iter().map(ApiMatcher::from).collect();
        let now = Utc::now();
        let ends_at = now + chrono_duration(length);
        let comment = format!("{reason} (silenced from opsbot by {})", inv.actor.name);
        let new = NewSilence {
            matchers: api.clone(),
            starts_at: now,
            ends_at,
            created_by: inv.actor.name.clone(),
            comment: comment.clone(),
        };
        let silence_id = match am.create(&new).await {
            Ok(id) => id,
            Err(e) => return Err(self.alertmanager_failed(inv, e).await),
        };
        let shown: Vec<String> = api.iter().map(ApiMatcher::display).collect();
        let record = SilenceRecord {
            silence_id: &silence_id,
            group_id: None,
            matchers: serde_json::to_value(&api).unwrap_or_default(),
            created_by_id: inv.actor.id,
            created_by_name: &inv.actor.name,
            comment: &comment,
            ends_at,
            until_resolved: false,
        };
        let stored = async {
            let mut tx = self.pool.begin().await?;
            store::insert_silence(&mut tx, &record).await?;
            record_in(
                &mut *tx,
                inv,
                Outcome::Ok,
                &format!(
                    "silence {silence_id} on {} until {ends_at}",
                    shown.join(", ")
                ),
            )
            .await?;
            tx.commit().await?;
            Ok::<(), CommandError>(())
        }
        .await;
        if let Err(e) = stored {
            if let Err(undo) = am.expire(&silence_id).await {
                tracing::error!(silence = %silence_id, error = %undo, "a silence opsbot could not record stays in Alertmanager until it ends");
            }
            return Err(e);
        }
        Ok(Message::text(
            Text::new()
                .plain("🔕 Silenced ")
                .code(view::cut(&shown.join(", "), 1500))
                .plain(" until ")
                .time(ends_at, TimeStyle::DateTime)
                .plain(" (silence ")
                .code(silence_id)
                .plain(")"),
        ))
    }

    /// `/alerts silences`: the active silences, read from Alertmanager, each with an Expire
    /// button.
    pub async fn alerts_silences(&self, inv: &Invocation) -> Result<Message, CommandError> {
        let result = async {
            let silences = self.alertmanager()?.active().await?;
            Ok(silences_message(&silences))
        }
        .await;
        self.conclude(inv, result, |_| "listed active silences".to_owned())
            .await
    }

    /// Expire pressed under `/alerts silences`.
    pub async fn alert_expire_silence(
        &self,
        inv: &Invocation,
        silence_id: &str,
    ) -> Result<Message, CommandError> {
        self.authorize(inv, SILENCE_PERMISSION, "expire silences")
            .await?;
        let am = match self.alertmanager() {
            Ok(am) => am,
            Err(e) => return Err(self.refuse(inv, e).await),
        };
        if let Err(e) = am.expire(silence_id).await {
            return Err(self.alertmanager_failed(inv, e).await);
        }
        let mut tx = self.pool.begin().await?;
        let group = store::mark_expired(&mut tx, silence_id, &inv.actor.name).await?;
        let detail = format!("expired silence {silence_id}");
        let event = record_in(&mut *tx, inv, Outcome::Ok, &detail).await?;
        if let Some(group_id) = group {
            refresh_message(&mut tx, self, group_id, event).await?;
        }
        tx.commit().await?;
        Ok(Message::text(
            Text::new()
                .plain("🔔 Expired silence ")
                .code(silence_id.to_owned()),
        ))
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

impl Desk {
    /// The silence loop's round: first the silenced groups whose alerts Alertmanager no
    /// longer has (resolved while silenced: Alertmanager mutes that resolve, so opsbot
    /// stores it itself, which makes their "until resolved" silences due), then the due
    /// expiries.
    pub async fn alert_silence_upkeep(&self) -> Result<usize, CommandError> {
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
                    self.store_delivery(&resolved_payload(&group, &alerts))
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
}

/// Exact matchers on `labels`.
fn group_matchers(labels: &Labels) -> Vec<ApiMatcher> {
    labels
        .iter()
        .map(|(name, value)| ApiMatcher::from(&Matcher::equal(name, value)))
        .collect()
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

/// Queues an edit of group `group_id`'s message as it reads now.
async fn refresh_message(
    tx: &mut sqlx::PgConnection,
    desk: &Desk,
    group_id: i64,
    event: i64,
) -> Result<(), CommandError> {
    let Some(group) = store::lock_group(tx, group_id).await? else {
        return Ok(());
    };
    let alerts = store::instances(&mut *tx, group_id).await?;
    let mention = desk
        .route_mentions(usize::try_from(group.route_index).unwrap_or(usize::MAX))
        .await;
    let message = view::group_message(&group, &alerts, &mention);
    if let Some(post) = group.post_outbox_id {
        outbox::enqueue_edit_of(&mut *tx, group.channel_id, post, &message, Some(event)).await?;
    }
    Ok(())
}

/// 10 s, 20 s, 40 s, ... up to [`EXPIRY_RETRY_MAX`].
fn retry_after(attempts: i32) -> Duration {
    let factor = 1u64 << attempts.clamp(0, 10);
    (EXPIRY_INTERVAL * u32::try_from(factor).unwrap_or(u32::MAX)).min(EXPIRY_RETRY_MAX)
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(31))
}

/// The reply of `/alerts silences`.
pub fn silences_message(silences: &[super::silence::Silence]) -> Message {
    let mut description = Text::new();
    if silences.is_empty() {
        description = description.plain("No active silences.");
    }
    for (i, s) in silences.iter().take(LIST_MAX).enumerate() {
        let matchers: Vec<String> = s.matchers.iter().map(ApiMatcher::display).collect();
        description = description
            .strong(format!("{}. ", i + 1))
            .code(view::cut(&matchers.join(", "), 120))
            .plain(" until ")
            .time(s.ends_at, TimeStyle::Relative)
            .plain(format!(
                " · by {} · {}\n",
                view::cut(&s.created_by, 40),
                view::cut(&s.comment, 60)
            ));
    }
    if silences.len() > LIST_MAX {
        description = description.strong(format!("+{} more", silences.len() - LIST_MAX));
    }
    Message {
        embeds: vec![Embed {
            title: format!("🔕 Active silences ({})", silences.len()),
            description,
            ..Embed::default()
        }],
        buttons: silences
            .iter()
            .take(LIST_MAX)
            .enumerate()
            .map(|(i, s)| Button {
                label: format!("Expire {}", i + 1),
                custom_id: format!("{}{}", view::EXPIRE_BUTTON, s.id),
                style: ButtonStyle::Danger,
            })
            .collect(),
        ..Message::default()
    }
}
