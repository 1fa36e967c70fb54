//! A local Discord: REST and gateway on loopback, speaking API v10 shapes, so the real bot
//! (the same poise commands) runs without Discord. `opsbot shell` and the integration tests
//! drive it: they type lines as in Discord's client ([`Emulator::type_line`]) and read what
//! the bot answered and posted ([`Emulator::subscribe`]).

mod gateway;
pub mod guild;
pub mod mentions;
mod oauth;
mod rest;
pub mod typed_line;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use guild::{CHANNEL_CATEGORY, CHANNEL_TEXT, Guild, Member};
use typed_line::{DirectoryChannel, DirectoryMember, DirectoryRole, GuildDirectory, LineError};

/// Events kept for a slow subscriber before it starts missing some.
const EVENT_BUFFER: usize = 1024;

/// What the emulated guild looks like, from the config.
#[derive(Debug, Clone)]
pub struct GuildSpec {
    pub guild_id: u64,
    pub name: String,
    /// Role names to create (those `[roles]` maps).
    pub roles: Vec<String>,
    /// Channels the config refers to: (id, name); created as text channels with those ids.
    pub channels: Vec<(u64, String)>,
    /// A category channel for incident channels, if configured.
    pub category: Option<(u64, String)>,
}

impl Default for GuildSpec {
    fn default() -> Self {
        GuildSpec {
            guild_id: 100_000_000_000_000_001,
            name: "opsbot emulator".to_owned(),
            roles: Vec::new(),
            channels: Vec::new(),
            category: None,
        }
    }
}

/// What happened in the emulated Discord that a person would see.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmulatorEvent {
    /// `reply`, `post`, `edit`, `channel_created`, `error`, or `refused` (a message Discord
    /// would refuse: over 2000 characters, or an invalid `allowed_mentions`).
    pub event: &'static str,
    /// The interaction this answers, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interaction_id: Option<u64>,
    pub channel_id: u64,
    pub channel: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<u64>,
    pub content: String,
    pub embeds: Vec<Value>,
    pub components: Vec<Value>,
    pub attachments: Vec<Value>,
    /// The attached files' names and bytes (the shell saves them).
    #[serde(skip)]
    pub files: Vec<(String, Vec<u8>)>,
    pub ephemeral: bool,
    /// The `allowed_mentions` of the request that produced this, as sent (absent: none sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_mentions: Option<Value>,
    /// Who this message notifies, by Discord's rules for its content and `allowed_mentions`.
    pub pings: mentions::Pings,
}

/// A route scripted to fail: the next `remaining` requests whose path contains `path`.
#[derive(Debug, Clone)]
struct ScriptedFailure {
    method: Option<String>,
    path: String,
    status: u16,
    retry_after: f64,
    remaining: u32,
}

#[derive(Debug)]
struct Interaction {
    id: u64,
    member_id: u64,
    channel_id: u64,
    /// The reply to a command; for a button press, the message the button is on.
    original_message_id: Option<u64>,
    /// Whether the initial response (callback) was sent: only one is allowed.
    acknowledged: bool,
    ephemeral: bool,
    /// Acknowledged with "thinking…": the first follow-up fills that message in, as on Discord.
    deferred: bool,
}

#[derive(Debug, Default)]
struct State {
    guild: Guild,
    interactions: HashMap<String, Interaction>,
    shards: Vec<mpsc::UnboundedSender<Value>>,
    failures: Vec<ScriptedFailure>,
    /// Every REST request served, as `METHOD /path`, for tests.
    requests: Vec<String>,
    oauth: oauth::OAuthState,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    events: broadcast::Sender<EmulatorEvent>,
    base_url: String,
    token: String,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data here (no partial updates).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, event: EmulatorEvent) {
        let _ = self.events.send(event);
    }
}

/// A running emulator; cheap to clone. Stops when the shutdown token is cancelled.
#[derive(Debug, Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
}

/// The bot token the emulator accepts (any other is refused with 401, as Discord would).
pub const EMULATOR_TOKEN: &str = "emulator-bot-token";

impl Emulator {
    /// Starts REST and gateway on a free loopback port.
    pub async fn start(spec: GuildSpec, shutdown: CancellationToken) -> anyhow::Result<Emulator> {
        Emulator::start_at(spec, SocketAddr::from(([127, 0, 0, 1], 0)), shutdown).await
    }

    /// Starts REST and gateway on `addr`: Discord "coming back" at the address a bot already
    /// tries to reach (outage tests).
    pub async fn start_at(
        spec: GuildSpec,
        addr: SocketAddr,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Emulator> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let mut guild = Guild {
            id: spec.guild_id,
            name: spec.name.clone(),
            ..Guild::default()
        };
        guild.application_id = guild.ids.issue();
        guild.bot_user_id = guild.application_id;
        // @everyone has the guild's id.
        guild.roles.push(guild::Role {
            id: guild.id,
            name: "@everyone".to_owned(),
            position: 0,
        });
        for role in &spec.roles {
            guild.ensure_role(role);
        }
        guild.members.push(Member {
            id: guild.bot_user_id,
            name: "opsbot".to_owned(),
            role_ids: Vec::new(),
            bot: true,
        });
        if let Some((id, name)) = &spec.category {
            guild.add_channel(Some(*id), name, CHANNEL_CATEGORY, None);
        }
        guild.add_channel(None, "general", CHANNEL_TEXT, None);
        for (id, name) in &spec.channels {
            if guild.channel(*id).is_none() {
                guild.add_channel(Some(*id), name, CHANNEL_TEXT, None);
            }
        }
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                guild,
                ..State::default()
            }),
            events,
            base_url: format!("http://{addr}"),
            token: EMULATOR_TOKEN.to_owned(),
        });
        // Every REST and OAuth2 request is recorded, authenticated and may be scripted to fail.
        let app = rest::router(shared.clone())
            .merge(oauth::router(shared.clone()))
            .layer(axum::middleware::from_fn_with_state(
                shared.clone(),
                rest::gatekeeper,
            ))
            .merge(gateway::router(shared.clone()));
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "emulator server failed");
            }
        });
        Ok(Emulator { shared })
    }

    /// The base URL to give serenity (`[discord] api_base`).
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// OAuth2 client id (the application id) and secret for a web login against the emulator.
    pub fn oauth_client(&self) -> (String, String) {
        (
            self.shared.state().guild.application_id.to_string(),
            oauth::EMULATOR_CLIENT_SECRET.to_owned(),
        )
    }

    pub fn guild_id(&self) -> u64 {
        self.shared.state().guild.id
    }

    pub fn subscribe(&self) -> broadcast::Receiver<EmulatorEvent> {
        self.shared.events.subscribe()
    }

    /// Whether the bot has connected and registered its commands.
    pub fn commands_registered(&self) -> bool {
        !self.shared.state().guild.commands.is_empty()
    }

    /// The member called `name`, created on first use; `roles` (created if missing) replace
    /// the member's roles when given.
    pub fn member(&self, name: &str, roles: Option<&[String]>) -> u64 {
        let mut state = self.shared.state();
        let guild = &mut state.guild;
        let role_ids: Option<Vec<u64>> =
            roles.map(|roles| roles.iter().map(|r| guild.ensure_role(r)).collect());
        let id = match guild.member_by_name(name) {
            Some(member) => member.id,
            None => {
                let id = guild.ids.issue();
                guild.members.push(Member {
                    id,
                    name: name.to_owned(),
                    role_ids: Vec::new(),
                    bot: false,
                });
                id
            }
        };
        if let Some(role_ids) = role_ids
            && let Some(member) = guild.members.iter_mut().find(|m| m.id == id)
        {
            member.role_ids = role_ids;
        }
        id
    }

    /// A channel id by name, id or `new` (the most recently created channel).
    pub fn find_channel(&self, name: &str) -> Option<(u64, String)> {
        let state = self.shared.state();
        let guild = &state.guild;
        let channel = if name == "new" {
            guild.channels.last()
        } else if let Ok(id) = name
            .trim_start_matches("<#")
            .trim_end_matches('>')
            .parse::<u64>()
        {
            guild.channel(id)
        } else {
            guild.channel_by_name(name)
        };
        channel.map(|c| (c.id, c.name.clone()))
    }

    /// Text channels and threads, as `(id, name, kind)`.
    pub fn channels(&self) -> Vec<(u64, String, u8)> {
        self.shared
            .state()
            .guild
            .channels
            .iter()
            .map(|c| (c.id, c.name.clone(), c.kind))
            .collect()
    }

    /// Makes the next `times` requests whose path contains `path` (and method, if given)
    /// answer `status`; a 429 carries `retry_after` seconds, as Discord's does.
    pub fn script_failure(
        &self,
        method: Option<&str>,
        path: &str,
        status: u16,
        times: u32,
        retry_after: f64,
    ) {
        self.shared.state().failures.push(ScriptedFailure {
            method: method.map(str::to_uppercase),
            path: path.to_owned(),
            status,
            retry_after,
            remaining: times,
        });
    }

    /// REST requests served so far, as `METHOD /path`.
    pub fn requests(&self) -> Vec<String> {
        self.shared.state().requests.clone()
    }

    /// Messages currently in a channel, oldest first, in Discord's JSON shape.
    pub fn channel_messages(&self, channel_id: u64) -> Vec<Value> {
        let state = self.shared.state();
        state
            .guild
            .messages
            .values()
            .filter(|m| m.channel_id == channel_id)
            .map(|m| state.guild.message_json(m))
            .collect()
    }

    /// Records an interaction in `channel_id` without dispatching it and returns its
    /// `(id, token)`: the interaction and webhook routes can then be called as the bot would,
    /// with no bot connected. For the OpenAPI conformance test.
    #[doc(hidden)]
    pub fn open_interaction(&self, channel_id: u64) -> (u64, String) {
        let mut state = self.shared.state();
        let id = state.guild.ids.issue();
        let token = format!(
            "emulator-interaction-{id}-{}",
            uuid::Uuid::new_v4().simple()
        );
        let member_id = state.guild.bot_user_id;
        state.interactions.insert(
            token.clone(),
            Interaction {
                id,
                member_id,
                channel_id,
                original_message_id: None,
                acknowledged: false,
                ephemeral: false,
                deferred: false,
            },
        );
        (id, token)
    }

    /// Turns a typed line into an APPLICATION_COMMAND interaction from `member_id` in
    /// `channel_id` and dispatches it to the bot. Returns the interaction id.
    pub fn type_line(&self, member_id: u64, channel_id: u64, line: &str) -> Result<u64, LineError> {
        let mut state = self.shared.state();
        if state.shards.is_empty() {
            return Err(LineError(
                "the bot is not connected to the emulator yet".to_owned(),
            ));
        }
        let directory = directory(&state.guild);
        let typed = typed_line::parse_line(line, &state.guild.commands, &directory)?;
        let guild = &mut state.guild;
        let id = guild.ids.issue();
        let token = format!(
            "emulator-interaction-{id}-{}",
            uuid::Uuid::new_v4().simple()
        );
        let member = guild
            .member(member_id)
            .ok_or_else(|| LineError(format!("no member with id {member_id}")))?;
        let channel = guild
            .channel(channel_id)
            .ok_or_else(|| LineError(format!("no channel with id {channel_id}")))?;
        let payload = interaction_json(guild, member, channel, typed.data, id, &token);
        state.interactions.insert(
            token,
            Interaction {
                id,
                member_id,
                channel_id,
                original_message_id: None,
                acknowledged: false,
                ephemeral: false,
                deferred: false,
            },
        );
        dispatch(&mut state, "INTERACTION_CREATE", payload);
        Ok(id)
    }
}

impl Emulator {
    /// Presses the button labelled `label` (case-insensitive) on the newest message that has
    /// one, in any channel, among those `member_id` can see (ephemeral replies only by the
    /// member they answered). Dispatches a MESSAGE_COMPONENT interaction; returns its id.
    pub fn click(&self, member_id: u64, label: &str) -> Result<u64, LineError> {
        let mut state = self.shared.state();
        if state.shards.is_empty() {
            return Err(LineError(
                "the bot is not connected to the emulator yet".to_owned(),
            ));
        }
        let guild = &state.guild;
        let found = guild.messages.values().rev().find_map(|m| {
            if m.visible_to.is_some_and(|v| v != member_id) {
                return None;
            }
            let button = m
                .components
                .iter()
                .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
                .find(|c| {
                    c["type"] == 2
                        && c["label"]
                            .as_str()
                            .is_some_and(|l| l.eq_ignore_ascii_case(label))
                })?;
            Some((m.clone(), button))
        });
        let Some((message, button)) = found else {
            let labels: Vec<String> = guild
                .messages
                .values()
                .filter(|m| m.visible_to.is_none_or(|v| v == member_id))
                .flat_map(|m| {
                    m.components
                        .iter()
                        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
                })
                .filter_map(|c| c["label"].as_str().map(str::to_owned))
                .collect();
            return Err(LineError(if labels.is_empty() {
                format!(
                    "no message you can see has a button labelled \"{label}\" (no buttons at all)"
                )
            } else {
                format!(
                    "no message you can see has a button labelled \"{label}\"; buttons: {}",
                    labels.join(", ")
                )
            }));
        };
        if button["disabled"] == json!(true) {
            return Err(LineError(format!("the \"{label}\" button is disabled")));
        }
        let Some(custom_id) = button["custom_id"].as_str().map(str::to_owned) else {
            return Err(LineError(format!(
                "the \"{label}\" button is a link, not an action"
            )));
        };
        let member = guild
            .member(member_id)
            .cloned()
            .ok_or_else(|| LineError(format!("no member with id {member_id}")))?;
        let channel = guild
            .channel(message.channel_id)
            .cloned()
            .ok_or_else(|| LineError("the message's channel is gone".to_owned()))?;
        let id = state.guild.ids.issue();
        let token = format!(
            "emulator-interaction-{id}-{}",
            uuid::Uuid::new_v4().simple()
        );
        let guild = &state.guild;
        let mut payload = interaction_json(
            guild,
            &member,
            &channel,
            json!({ "custom_id": custom_id, "component_type": 2 }),
            id,
            &token,
        );
        payload["type"] = json!(3);
        payload["message"] = guild.message_json(&message);
        state.interactions.insert(
            token,
            Interaction {
                id,
                member_id,
                channel_id: message.channel_id,
                original_message_id: Some(message.id),
                acknowledged: false,
                ephemeral: message.visible_to.is_some(),
                deferred: false,
            },
        );
        dispatch(&mut state, "INTERACTION_CREATE", payload);
        Ok(id)
    }
}

/// An APPLICATION_COMMAND (type 2) interaction as the gateway delivers it.
fn interaction_json(
    guild: &Guild,
    member: &Member,
    channel: &guild::Channel,
    data: Value,
    id: u64,
    token: &str,
) -> Value {
    json!({
        "id": id.to_string(),
        "application_id": guild.application_id.to_string(),
        "type": 2,
        "data": data,
        "guild_id": guild.id.to_string(),
        "channel_id": channel.id.to_string(),
        "channel": guild.channel_json(channel),
        "member": member_with_permissions(guild.member_json(member)),
        "token": token,
        "version": 1,
        "app_permissions": "1071698660929",
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": { "0": guild.id.to_string() },
        "context": 0,
        "attachment_size_limit": 10_485_760,
    })
}

/// Interaction members carry the member's computed permissions in the channel.
fn member_with_permissions(mut member: Value) -> Value {
    member["permissions"] = json!("1071698660929");
    member
}

/// Sends a gateway dispatch to every connected shard (one guild: one shard).
fn dispatch(state: &mut State, event: &str, data: Value) {
    let payload = json!({ "op": 0, "t": event, "d": data });
    state
        .shards
        .retain(|shard| shard.send(payload.clone()).is_ok());
}

fn directory(guild: &Guild) -> GuildDirectory {
    GuildDirectory {
        guild_id: guild.id,
        members: guild
            .members
            .iter()
            .map(|m| DirectoryMember {
                id: m.id,
                name: m.name.clone(),
                role_ids: m.role_ids.clone(),
            })
            .collect(),
        roles: guild
            .roles
            .iter()
            .map(|r| DirectoryRole {
                id: r.id,
                name: r.name.clone(),
            })
            .collect(),
        channels: guild
            .channels
            .iter()
            .map(|c| DirectoryChannel {
                id: c.id,
                name: c.name.clone(),
                kind: c.kind,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poise::serenity_prelude as serenity;

    fn sample_guild() -> Guild {
        let mut guild = Guild {
            id: 100_000_000_000_000_001,
            name: "g".into(),
            ..Guild::default()
        };
        guild.application_id = guild.ids.issue();
        guild.bot_user_id = guild.application_id;
        guild.roles.push(guild::Role {
            id: guild.id,
            name: "@everyone".into(),
            position: 0,
        });
        let ops = guild.ensure_role("ops");
        guild.members.push(Member {
            id: guild.bot_user_id,
            name: "opsbot".into(),
            role_ids: vec![],
            bot: true,
        });
        let ana = guild.ids.issue();
        guild.members.push(Member {
            id: ana,
            name: "ana".into(),
            role_ids: vec![ops],
            bot: false,
        });
        guild.add_channel(None, "general", CHANNEL_TEXT, None);
        let general = guild.channels[0].id;
        guild.add_channel(
            None,
            "deploy-1",
            guild::CHANNEL_PUBLIC_THREAD,
            Some(general),
        );
        guild
    }

    #[test]
    fn guild_create_deserializes_into_serenitys_guild() {
        let guild = sample_guild();
        let parsed: serenity::Guild =
            serde_json::from_value(guild.guild_create_json()).expect("serenity Guild");
        assert_eq!(parsed.roles.len(), 2);
        assert_eq!(parsed.members.len(), 2);
        assert_eq!(parsed.threads.len(), 1);
    }

    #[test]
    fn interactions_deserialize_into_serenitys_interaction() {
        let guild = sample_guild();
        let member = &guild.members[1];
        let channel = &guild.channels[0];
        let data = json!({"id": "1", "name": "whoami", "type": 1, "guild_id": guild.id.to_string(), "options": []});
        let value = interaction_json(&guild, member, channel, data, 5, "tok");
        let parsed: serenity::Interaction =
            serde_json::from_value(value).expect("serenity Interaction");
        let command = parsed.command().expect("a command interaction");
        assert_eq!(command.data.name, "whoami");
        assert_eq!(command.member.as_ref().map(|m| m.roles.len()), Some(1));
    }

    #[test]
    fn button_presses_deserialize_into_serenitys_component_interaction() {
        let guild = sample_guild();
        let data = json!({"custom_id": "audit-older|1|2|||", "component_type": 2});
        let mut value = interaction_json(
            &guild,
            &guild.members[1],
            &guild.channels[0],
            data,
            6,
            "tok",
        );
        value["type"] = json!(3);
        let message = guild::Message {
            id: 9,
            channel_id: guild.channels[0].id,
            author_id: guild.bot_user_id,
            content: String::new(),
            embeds: vec![],
            components: vec![
                json!({"type": 1, "components": [{"type": 2, "style": 2, "label": "Older", "custom_id": "audit-older|1|2|||"}]}),
            ],
            attachments: vec![],
            files: vec![],
            flags: 64,
            pinned: false,
            edited: false,
            nonce: None,
            interaction_id: Some(5),
            visible_to: Some(guild.members[1].id),
            created_at: chrono::Utc::now(),
        };
        value["message"] = guild.message_json(&message);
        let parsed: serenity::Interaction =
            serde_json::from_value(value).expect("serenity Interaction");
        let press = parsed.message_component().expect("a component interaction");
        assert_eq!(press.data.custom_id, "audit-older|1|2|||");
    }

    #[test]
    fn messages_and_channels_deserialize_into_serenitys_models() {
        let mut guild = sample_guild();
        let channel_id = guild.channels[0].id;
        let message = guild::Message {
            id: guild.ids.issue(),
            channel_id,
            author_id: guild.bot_user_id,
            content: "hi".into(),
            embeds: vec![json!({"title": "t", "description": "d", "type": "rich"})],
            components: vec![],
            attachments: vec![],
            files: vec![],
            flags: 0,
            pinned: false,
            edited: false,
            nonce: Some("n".into()),
            interaction_id: None,
            visible_to: None,
            created_at: chrono::Utc::now(),
        };
        let _: serenity::Message =
            serde_json::from_value(guild.message_json(&message)).expect("serenity Message");
        for channel in &guild.channels {
            let _: serenity::GuildChannel =
                serde_json::from_value(guild.channel_json(channel)).expect("serenity GuildChannel");
        }
        let _: serenity::Member = serde_json::from_value(json!({"guild_id": guild.id.to_string(), "user": guild.user_json(&guild.members[1]), "roles": [], "joined_at": guild::JOINED_AT, "deaf": false, "mute": false, "flags": 0, "pending": false})).expect("member");
    }
}
