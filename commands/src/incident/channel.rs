//! The incident's channel: created once (by declare, or by the reconciler after a crash),
//! its summary pinned, its topic kept in step, archived after resolve.

use std::time::Duration;

use chrono::Utc;

use super::Archive;
use super::model::{Incident, channel_name, channel_prefix};
use super::store;
use super::view;
use crate::chat::{ChannelEdit, NewChannel};
use crate::desk::Desk;
use crate::error::CommandError;
use crate::outbox;

/// How often the reconciler looks for unfinished channel work.
pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(5);

impl Desk {
    /// Creates (or, after a crash, finds) the channel of incident `id` and queues its summary,
    /// exactly once: the incident's row is locked while Discord is asked, and a channel named
    /// `inc-<id>-…` that already exists is adopted instead of creating a second one. Returns
    /// the channel, or `None` without a chat platform. A second caller waits for the first
    /// and gets the channel it made.
    pub async fn incident_open_channel(&self, id: i64) -> Result<Option<i64>, CommandError> {
        let Some(chat) = self.chat.clone() else {
            return Ok(None);
        };
        let mut tx = self.pool.begin().await?;
        match store::lock_channel(&mut tx, id).await? {
            None => {
                return Err(CommandError::NotFound(format!(
                    "incident #{id} does not exist"
                )));
            }
            Some(Some(channel)) => return Ok(Some(channel)),
            Some(None) => {}
        }
        let incident = store::by_id(&mut tx, id, false)
            .await?
            .ok_or_else(|| CommandError::NotFound(format!("incident #{id} does not exist")))?;
        let Some(guild) = incident.guild_id else {
            return Err(CommandError::Invalid(format!(
                "incident #{id} has no guild to create its channel in ([discord] guild_ids)"
            )));
        };
        let topic = view::topic(&incident);
        let unavailable = |e: String| {
            CommandError::Unavailable(format!("Discord did not create the incident channel: {e}"))
        };
        let existing = chat
            .find_channel(guild, &channel_prefix(id))
            .await
            .map_err(unavailable)?;
        let channel = match existing {
            Some(channel) => {
                tracing::info!(
                    incident = id,
                    channel,
                    "adopting the incident channel created before a restart"
                );
                channel
            }
            None => chat
                .create_channel(
                    guild,
                    &NewChannel {
                        name: channel_name(id, &incident.slug),
                        parent: self.incidents().category,
                        topic: topic.clone(),
                    },
                )
                .await
                .map_err(unavailable)?,
        };
        let mut placed = incident.clone();
        placed.channel_id = Some(channel);
        let summary = view::summary(&placed, self.incidents(), Utc::now());
        let post = outbox::enqueue(&mut *tx, channel, &summary, None).await?;
        // Once, with the channel: the recent deploys of its services, each with Rollback.
        if let Some(deploys) =
            super::deploys::recent_deploys_message(&mut *tx, &placed, Utc::now()).await?
        {
            outbox::enqueue(&mut *tx, channel, &deploys, None).await?;
        }
        store::set_channel(&mut *tx, id, channel, post, &topic).await?;
        super::from_alert::show_channel(self, &mut tx, id).await?;
        tx.commit().await?;
        Ok(Some(channel))
    }

    /// Sets the channel topic if it differs from what was last set (failures wait for the
    /// reconciler).
    pub(crate) async fn incident_sync_topic(&self, incident: &Incident) {
        let (Some(chat), Some(channel)) = (&self.chat, incident.channel_id) else {
            return;
        };
        let topic = view::topic(incident);
        if incident.topic_set.as_deref() == Some(topic.as_str()) {
            return;
        }
        let edit = ChannelEdit {
            topic: Some(topic.clone()),
            ..ChannelEdit::default()
        };
        match chat.edit_channel(channel, &edit).await {
            Ok(()) => {
                if let Err(e) = store::mark_topic(&self.pool, incident.id, &topic).await {
                    tracing::warn!(incident = incident.id, error = %e, "topic set but not recorded");
                }
            }
            Err(e) => {
                tracing::warn!(incident = incident.id, error = %e, "topic not set; the reconciler retries")
            }
        }
    }

    /// One round of the reconciler (a leased background loop): channels not created yet,
    /// summaries not pinned yet, topics out of step, resolved incidents not archived yet.
    pub async fn incident_reconcile(&self) -> Result<(), CommandError> {
        for id in store::without_channel(&self.pool).await? {
            if let Err(e) = self.incident_open_channel(id).await {
                tracing::warn!(incident = id, error = %e, "incident channel still not created");
            }
        }
        let Some(chat) = self.chat.clone() else {
            return Ok(());
        };
        for (id, channel, message) in store::unpinned(&self.pool).await? {
            match chat.pin_message(channel, message).await {
                Ok(()) => store::mark_pinned(&self.pool, id).await?,
                Err(e) => tracing::warn!(incident = id, error = %e, "summary not pinned yet"),
            }
        }
        for incident in store::to_reconcile(&self.pool).await? {
            self.incident_sync_topic(&incident).await;
            if incident.status.is_open() {
                continue;
            }
            let Some(channel) = incident.channel_id else {
                continue;
            };
            let catalog = self.incidents();
            let edit = match (catalog.archive, catalog.archive_category, incident.guild_id) {
                (Archive::Move, Some(category), _) => Some(ChannelEdit {
                    parent: Some(category),
                    ..ChannelEdit::default()
                }),
                (Archive::ReadOnly, _, Some(guild)) => Some(ChannelEdit {
                    read_only_in_guild: Some(guild),
                    ..ChannelEdit::default()
                }),
                _ => None,
            };
            let done = match edit {
                Some(edit) => match chat.edit_channel(channel, &edit).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(incident = incident.id, error = %e, "channel not archived yet");
                        false
                    }
                },
                None => true,
            };
            if done {
                store::mark_archived(&self.pool, incident.id).await?;
            }
        }
        Ok(())
    }
}
