//! The domain's [`Chat`] over serenity's HTTP client: the calls whose answer the domain needs
//! at once (a deploy's thread id). Messages go through the outbox instead.

use std::sync::Arc;

use opsbot_commands::chat::Chat;
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

#[async_trait::async_trait]
impl Chat for SerenityChat {
    async fn start_thread(
        &self,
        channel_id: i64,
        message_id: i64,
        name: &str,
    ) -> Result<i64, String> {
        let channel = serenity::ChannelId::new(channel_id as u64);
        let message = serenity::MessageId::new(message_id as u64);
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
}
