//! The domain's [`Chat`] over serenity's HTTP client: the calls whose answer the domain needs
//! at once (a deploy's thread id, an incident's channel). Messages go through the outbox instead.

use std::num::NonZeroU64;
use std::sync::Arc;

use opsbot_commands::chat::{ChannelEdit, Chat, NewChannel};
use poise::serenity_prelude as serenity;

use super::GatewaySettings;

#[derive(Debug, Clone)]
pub struct SerenityChat {
    http: Arc<serenity::Http>,
}

impl SerenityChat {
    pub fn new(settings: &GatewaySettings) -> SerenityChat {
        SerenityChat {
            http: Arc::new(super::http_client(settings)),
        }
    }
}

/// A Discord id from the domain's `i64`: ids are positive, and serenity's constructors panic
/// on 0, so anything else is an error naming `what`, never a panic.
fn id<T: From<NonZeroU64>>(raw: i64, what: &str) -> Result<T, String> {
    u64::try_from(raw)
        .ok()
        .and_then(NonZeroU64::new)
        .map(T::from)
        .ok_or_else(|| format!("{raw} is not a Discord {what} id"))
}

#[async_trait::async_trait]
impl Chat for SerenityChat {
    async fn start_thread(
        &self,
        channel_id: i64,
        message_id: i64,
        name: &str,
    ) -> Result<i64, String> {
        let channel = id::<serenity::ChannelId>(channel_id, "channel")?;
        let message = id::<serenity::MessageId>(message_id, "message")?;
        // Thread names: at most 100 characters.
        let name: String = name.chars().take(100).collect();
        channel
            .create_thread_from_message(
                &self.http,
                message,
                serenity::CreateThread::new(name)
                    .auto_archive_duration(serenity::AutoArchiveDuration::OneDay),
            )
            .await
            .map(|thread| thread.id.get() as i64)
            .map_err(|e| e.to_string())
    }

    async fn create_channel(&self, guild_id: i64, channel: &NewChannel) -> Result<i64, String> {
        let guild = id::<serenity::GuildId>(guild_id, "guild")?;
        // Channel names: at most 100 characters; topics at most 1024.
        let name: String = channel.name.chars().take(100).collect();
        let topic: String = channel.topic.chars().take(1024).collect();
        let mut create = serenity::CreateChannel::new(name)
            .kind(serenity::ChannelType::Text)
            .topic(topic);
        if let Some(parent) = channel.parent {
            create = create.category(id::<serenity::ChannelId>(parent, "category")?);
        }
        guild
            .create_channel(&self.http, create)
            .await
            .map(|c| c.id.get() as i64)
            .map_err(|e| e.to_string())
    }

    async fn find_channel(&self, guild_id: i64, prefix: &str) -> Result<Option<i64>, String> {
        let guild = id::<serenity::GuildId>(guild_id, "guild")?;
        let channels = guild
            .channels(&self.http)
            .await
            .map_err(|e| e.to_string())?;
        let mut found: Vec<i64> = channels
            .values()
            .filter(|c| c.name.starts_with(prefix))
            .map(|c| c.id.get() as i64)
            .collect();
        found.sort_unstable();
        Ok(found.first().copied())
    }

    async fn edit_channel(&self, channel_id: i64, edit: &ChannelEdit) -> Result<(), String> {
        let channel = id::<serenity::ChannelId>(channel_id, "channel")?;
        let mut builder = serenity::EditChannel::new();
        if let Some(topic) = &edit.topic {
            builder = builder.topic(topic.chars().take(1024).collect::<String>());
        }
        if let Some(parent) = edit.parent {
            builder = builder.category(Some(id::<serenity::ChannelId>(parent, "category")?));
        }
        if let Some(guild) = edit.read_only_in_guild {
            // @everyone's role id is the guild's id: members may read, not write.
            builder = builder.permissions(vec![serenity::PermissionOverwrite {
                allow: serenity::Permissions::VIEW_CHANNEL
                    | serenity::Permissions::READ_MESSAGE_HISTORY,
                deny: serenity::Permissions::SEND_MESSAGES
                    | serenity::Permissions::SEND_MESSAGES_IN_THREADS
                    | serenity::Permissions::ADD_REACTIONS,
                kind: serenity::PermissionOverwriteType::Role(id::<serenity::RoleId>(
                    guild, "guild",
                )?),
            }]);
        }
        channel
            .edit(&self.http, builder)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn role_ids(&self, guild_id: i64, names: &[String]) -> Result<Vec<i64>, String> {
        let guild = id::<serenity::GuildId>(guild_id, "guild")?;
        let roles = guild.roles(&self.http).await.map_err(|e| e.to_string())?;
        Ok(names
            .iter()
            .filter_map(|name| {
                roles
                    .values()
                    .find(|r| &r.name == name)
                    .map(|r| r.id.get() as i64)
            })
            .collect())
    }

    async fn pin_message(&self, channel_id: i64, message_id: i64) -> Result<(), String> {
        id::<serenity::ChannelId>(channel_id, "channel")?
            .pin(
                &self.http,
                id::<serenity::MessageId>(message_id, "message")?,
            )
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_are_no_discord_ids_are_errors_not_panics() {
        assert_eq!(
            id::<serenity::ChannelId>(0, "channel"),
            Err("0 is not a Discord channel id".to_owned())
        );
        assert!(id::<serenity::GuildId>(-5, "guild").is_err());
        assert_eq!(
            id::<serenity::ChannelId>(42, "channel"),
            Ok(serenity::ChannelId::new(42))
        );
    }
}
