//! A local Discord: REST and gateway on loopback, speaking API v10 shapes, so the real bot
//! (the same poise commands) runs without Discord. `opsbot shell` and the integration tests
//! drive it: they type lines as in Discord's client ([`Emulator::type_line`]) and read what
//! the bot answered and posted ([`Emulator::subscribe`]).

pub mod attachments;
mod forms;
mod gateway;
pub mod guild;
mod input;
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

/// Names of the guild's members, roles and channels by id (see [`Emulator::names`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuildNames {
    pub users: std::collections::HashMap<u64, String>,
    pub roles: std::collections::HashMap<u64, String>,
    pub channels: std::collections::HashMap<u64, String>,
}

/// What happened in the emulated Discord that a person would see.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmulatorEvent {
    /// `reply`, `post`, `edit`, `channel_created`, `error`, `refused` (a message Discord
    /// would refuse: over 2000 characters, or an invalid `allowed_mentions`), `modal` (a form
    /// the bot opened: `content` is its title, `components` its rows) or `choices`
    /// (autocomplete choices: their names a line each in `content`, the choices in
    /// `components`).
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
    /// The request is served, then its answer is replaced by the failure: what a client
    /// sees when Discord acted but the answer never arrived.
    after: bool,
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
    /// Discord's interaction type: 2 application command, 3 component, 4 autocomplete,
    /// 5 modal submit (each allows different callback types).
    kind: u8,
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
    /// Modals the bot opened and nobody submitted yet, oldest first.
    modals: Vec<forms::OpenModal>,
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

    /// The names mentions refer to (members, roles, channels by id), for a client that
    /// shows `<@id>` as `@name`, as Discord's does.
    pub fn names(&self) -> GuildNames {
        let state = self.shared.state();
        let guild = &state.guild;
        GuildNames {
            users: guild
                .members
                .iter()
                .map(|m| (m.id, m.name.clone()))
                .collect(),
            roles: guild.roles.iter().map(|r| (r.id, r.name.clone())).collect(),
            channels: guild
                .channels
                .iter()
                .map(|c| (c.id, c.name.clone()))
                .collect(),
        }
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

    /// A channel in Discord's JSON shape (topic, parent, permission overwrites included).
    pub fn channel_json(&self, channel_id: u64) -> Option<Value> {
        let state = self.shared.state();
        state
            .guild
            .channel(channel_id)
            .map(|c| state.guild.channel_json(c))
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
            after: false,
        });
    }

    /// Makes the next `times` requests whose path contains `path` (and method, if given)
    /// take effect and then answer 504 instead of their result: Discord did it, but the
    /// answer was lost on the way.
    pub fn script_lost_answer(&self, method: Option<&str>, path: &str, times: u32) {
        self.shared.state().failures.push(ScriptedFailure {
            method: method.map(str::to_uppercase),
            path: path.to_owned(),
            status: 504,
            retry_after: 0.0,
            remaining: times,
            after: true,
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
                kind: forms::APPLICATION_COMMAND,
            },
        );
        (id, token)
    }
}

/// Sends a gateway dispatch to every connected shard (one guild: one shard).
fn dispatch(state: &mut State, event: &str, data: Value) {
    let payload = json!({ "op": 0, "t": event, "d": data });
    state
        .shards
        .retain(|shard| shard.send(payload.clone()).is_ok());
}

#[cfg(test)]
mod tests;
