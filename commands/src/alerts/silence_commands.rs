//! `/alerts silence matchers duration reason` (matchers in Alertmanager's syntax, checked
//! with the routing parser before anything is sent) and `/alerts silences` (the active
//! silences, read from Alertmanager, each with an **Expire** button). Permission
//! `alerts:silence` for everything that changes a silence.

use std::time::Duration;

use chrono::Utc;

use super::routing;
use super::silence::{ApiMatcher, MAX_SILENCE, NewSilence};
use super::silencing::{SILENCE_PERMISSION, chrono_duration};
use super::store::{self, SilenceRecord};
use super::view;
use crate::audit::Outcome;
use crate::chat::{Button, ButtonStyle, Embed, Message, Text, TimeStyle};
use crate::desk::{Desk, Invocation, record_in};
use crate::error::CommandError;
use crate::outbox;

/// Longest `/alerts silence` reason kept (Alertmanager's comment).
pub const REASON_MAX: usize = 500;
/// Silences shown by `/alerts silences` (one Expire button each: 5 rows of 5).
pub const LIST_MAX: usize = 25;

impl Desk {
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
}

/// Queues an edit of group `group_id`'s message as it reads now.
pub(super) async fn refresh_message(
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
