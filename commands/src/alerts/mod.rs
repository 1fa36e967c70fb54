//! Alerts in Discord: Alertmanager posts its groups to opsbot, opsbot keeps one living
//! message per alert group per channel.
//!
//! How a user sets it up: in Alertmanager, a receiver with
//! `webhook_configs: [{ url: "http://opsbot:8080/webhooks/alertmanager", send_resolved: true,
//! http_config: { authorization: { credentials: TOKEN } } }]`; in opsbot, `[alerts]
//! webhook_token` (the same TOKEN, as a secret) and `[[alerts.routes]]` (matchers in
//! Alertmanager's syntax, a channel, a mode). Each group then appears as one message in its
//! route's channel, edited as alerts join and resolve, with an **Ack** button
//! (`alerts:ack`).
//!
//! - [`payload`]: the webhook payload (version 4); [`ingest`]: authentication, refusals and
//!   the one transaction that stores a delivery with its outbox rows; [`batch`]: concurrent
//!   deliveries share that transaction (group commit).
//! - [`routing`]: matchers and routes; [`store`]: the tables; [`view`]: the message.
//! - [`ack`]: the Ack button; [`silencing`]: the Silence picker, Unsilence, "Ack + silence
//!   until resolved", `/alerts silence` and `/alerts silences`, made in Alertmanager through
//!   [`silence`] (its v2 API client), [`silence_commands`], [`silence_upkeep`];
//!   [`commands`]: `/alerts active`; [`correlation`]: the deploy an alert follows and its
//!   Rollback button; [`threads`]: the full list of a long group in a thread;
//!   [`dashboard`]: the dashboard's Alerts page.

pub mod ack;
pub mod batch;
pub mod commands;
pub mod correlation;
pub mod dashboard;
mod fresh;
pub mod ingest;
pub mod payload;
pub mod routing;
pub mod silence;
pub mod silence_commands;
pub mod silence_upkeep;
pub mod silencing;
pub mod store;
pub mod threads;
pub mod view;

use std::time::Duration;

use secrecy::SecretString;

use crate::desk::Desk;
pub use ingest::{Delivery, DeliveryBody, IngestError, IngestOutcome, Refusal};
pub use routing::{Matcher, Mode, Route};

/// The `[alerts]` (and `[alertmanager]`) configuration, in the domain's terms.
#[derive(Debug, Clone)]
pub struct AlertsCatalog {
    /// The bearer token Alertmanager sends; `None`: the webhook refuses every delivery.
    pub webhook_token: Option<SecretString>,
    /// The label naming the service an alert is about (default `service`).
    pub service_label: String,
    /// How far back a deploy of the alert's service correlates with it.
    pub correlate_window: Duration,
    /// `[[alerts.routes]]`, first match wins; none configured: nothing is posted.
    pub routes: Vec<Route>,
    /// `[alertmanager]`, for silences; `None`: no silences from Discord.
    pub alertmanager: Option<silence::Alertmanager>,
    /// Wakes the alert loop: a resolve made an "until resolved" silence due, or a long
    /// group wants its thread.
    pub upkeep_wake: std::sync::Arc<tokio::sync::Notify>,
    /// Role name → Discord role id, for the routes' mentions, where known in advance; other
    /// names are looked up in `guild_id` through the chat platform.
    pub role_ids: std::collections::BTreeMap<String, i64>,
    /// The guild whose roles the routes mention.
    pub guild_id: Option<i64>,
    /// Webhook deliveries waiting to be stored together ([`batch`]).
    pub ingest_queue: std::sync::Arc<batch::IngestQueue>,
}

impl Default for AlertsCatalog {
    fn default() -> AlertsCatalog {
        AlertsCatalog {
            webhook_token: None,
            service_label: "service".to_owned(),
            correlate_window: Duration::from_secs(30 * 60),
            routes: Vec::new(),
            alertmanager: None,
            upkeep_wake: Default::default(),
            role_ids: Default::default(),
            guild_id: None,
            ingest_queue: Default::default(),
        }
    }
}

static NO_ALERTS: std::sync::LazyLock<AlertsCatalog> =
    std::sync::LazyLock::new(AlertsCatalog::default);

impl Desk {
    /// Registers what the config says about alerts.
    pub fn with_alerts(self, catalog: AlertsCatalog) -> Desk {
        self.with_feature(catalog)
    }

    /// What the config says about alerts (nothing routed when not configured).
    pub fn alerts(&self) -> &AlertsCatalog {
        self.feature::<AlertsCatalog>().unwrap_or(&NO_ALERTS)
    }

    /// The role ids route `index` mentions: known ones, then the rest looked up by name. A
    /// failed lookup pings nobody (logged), it never holds an alert back.
    pub(crate) async fn route_mentions(&self, index: usize) -> Vec<i64> {
        let catalog = self.alerts();
        let Some(route) = catalog.routes.get(index) else {
            return Vec::new();
        };
        let mut ids = Vec::new();
        let mut unknown = Vec::new();
        for name in &route.mention {
            match catalog.role_ids.get(name) {
                Some(id) => ids.push(*id),
                None => unknown.push(name.clone()),
            }
        }
        if let (false, Some(chat), Some(guild)) = (unknown.is_empty(), &self.chat, catalog.guild_id)
        {
            match chat.role_ids(guild, &unknown).await {
                Ok(found) => ids.extend(found),
                Err(e) => {
                    tracing::warn!(error = %e, "alert route roles could not be looked up; they are not pinged")
                }
            }
        }
        ids
    }
}

#[cfg(test)]
mod batch_tests;
#[cfg(test)]
mod silence_tests;
#[cfg(test)]
mod tests;
