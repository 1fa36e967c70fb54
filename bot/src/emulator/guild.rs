//! The emulated guild's state (roles, members, channels, messages, registered commands) and
//! its objects in Discord's API v10 shapes.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Discord's snowflake epoch (2015-01-01) in Unix milliseconds; emulator ids are real
/// snowflakes so their timestamps decode.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// The fixed time emulated members joined (stable across runs, so snapshots are stable).
pub const JOINED_AT: &str = "2026-01-01T00:00:00+00:00";

/// Discord channel types the emulator creates.
pub const CHANNEL_TEXT: u8 = 0;
pub const CHANNEL_CATEGORY: u8 = 4;
pub const CHANNEL_PUBLIC_THREAD: u8 = 11;

/// Issues snowflakes: increasing, unique within the process.
#[derive(Debug, Default)]
pub struct Snowflakes {
    last: u64,
}

impl Snowflakes {
    /// The last id issued (0 before the first), without issuing one.
    pub fn peek(&self) -> u64 {
        self.last
    }

    pub fn issue(&mut self) -> u64 {
        let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let candidate = (now_ms.saturating_sub(DISCORD_EPOCH_MS)) << 22;
        self.last = candidate.max(self.last + 1);
        self.last
    }
}

#[derive(Debug, Clone)]
pub struct Role {
    pub id: u64,
    pub name: String,
    pub position: u32,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub id: u64,
    pub name: String,
    pub role_ids: Vec<u64>,
    pub bot: bool,
}

#[derive(Debug, Clone)]
pub struct Channel {
    pub id: u64,
    pub name: String,
    pub kind: u8,
    pub parent_id: Option<u64>,
    pub topic: Option<String>,
    /// As set through channel edit, in Discord's shape (`id`, `type`, `allow`, `deny`).
    pub permission_overwrites: Vec<Value>,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub id: u64,
    pub channel_id: u64,
    pub author_id: u64,
    pub content: String,
    pub embeds: Vec<Value>,
    pub components: Vec<Value>,
    pub attachments: Vec<Value>,
    /// The uploaded files behind `attachments`: name and bytes.
    pub files: Vec<(String, Vec<u8>)>,
    pub flags: u64,
    pub pinned: bool,
    pub edited: bool,
    pub nonce: Option<String>,
    pub interaction_id: Option<u64>,
    /// An ephemeral reply: only this member sees it.
    pub visible_to: Option<u64>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Everything the emulated Discord knows.
#[derive(Debug, Default)]
pub struct Guild {
    pub id: u64,
    pub name: String,
    pub application_id: u64,
    pub bot_user_id: u64,
    pub roles: Vec<Role>,
    pub members: Vec<Member>,
    pub channels: Vec<Channel>,
    pub messages: BTreeMap<u64, Message>,
    /// Registered commands as the bot sent them, each with the `id` the emulator assigned.
    pub commands: Vec<Value>,
    pub ids: Snowflakes,
}

impl Guild {
    pub fn role_by_name(&self, name: &str) -> Option<&Role> {
        self.roles
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
    }

    pub fn member(&self, id: u64) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn member_by_name(&self, name: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(name))
    }

    pub fn channel(&self, id: u64) -> Option<&Channel> {
        self.channels.iter().find(|c| c.id == id)
    }

    pub fn channel_by_name(&self, name: &str) -> Option<&Channel> {
        let name = name.trim_start_matches('#');
        self.channels
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Creates a role unless one of that name exists; returns its id.
    pub fn ensure_role(&mut self, name: &str) -> u64 {
        if let Some(role) = self.role_by_name(name) {
            return role.id;
        }
        let id = self.ids.issue();
        let position = self.roles.len() as u32;
        self.roles.push(Role {
            id,
            name: name.to_owned(),
            position,
        });
        id
    }

    pub fn add_channel(
        &mut self,
        id: Option<u64>,
        name: &str,
        kind: u8,
        parent_id: Option<u64>,
    ) -> u64 {
        let id = id.unwrap_or_else(|| self.ids.issue());
        self.channels.push(Channel {
            id,
            name: name.to_owned(),
            kind,
            parent_id,
            topic: None,
            permission_overwrites: Vec::new(),
        });
        id
    }

    // ---- Discord API v10 shapes ----

    pub fn user_json(&self, member: &Member) -> Value {
        json!({
            "id": member.id.to_string(),
            "username": member.name,
            "global_name": null,
            "discriminator": "0",
            "avatar": null,
            "bot": member.bot,
            "public_flags": 0,
            "flags": 0,
            "primary_guild": null,
        })
    }

    pub fn member_json(&self, member: &Member) -> Value {
        json!({
            "user": self.user_json(member),
            "nick": null,
            "avatar": null,
            "banner": null,
            "communication_disabled_until": null,
            "roles": member.role_ids.iter().map(u64::to_string).collect::<Vec<_>>(),
            "joined_at": JOINED_AT,
            "premium_since": null,
            "deaf": false,
            "mute": false,
            "flags": 0,
            "pending": false,
        })
    }

    pub fn role_json(&self, role: &Role) -> Value {
        json!({
            "id": role.id.to_string(),
            "name": role.name,
            "color": 0,
            "colors": { "primary_color": 0, "secondary_color": null, "tertiary_color": null },
            "hoist": false,
            "icon": null,
            "unicode_emoji": null,
            "position": role.position,
            "permissions": if role.id == self.id { "1071698660929" } else { "0" },
            "managed": false,
            "mentionable": false,
            "flags": 0,
        })
    }

    pub fn channel_json(&self, channel: &Channel) -> Value {
        let mut value = json!({
            "id": channel.id.to_string(),
            "type": channel.kind,
            "guild_id": self.id.to_string(),
            "name": channel.name,
            "position": 0,
            "permission_overwrites": channel.permission_overwrites,
            "parent_id": channel.parent_id.map(|p| p.to_string()),
            "nsfw": false,
            "flags": 0,
        });
        if channel.kind == CHANNEL_TEXT {
            value["topic"] = json!(channel.topic);
            value["last_message_id"] = Value::Null;
            value["rate_limit_per_user"] = json!(0);
        }
        if channel.kind == CHANNEL_PUBLIC_THREAD {
            value["owner_id"] = json!(self.bot_user_id.to_string());
            value["message_count"] = json!(0);
            value["total_message_sent"] = json!(0);
            value["member_count"] = json!(1);
            value["rate_limit_per_user"] = json!(0);
            value["thread_metadata"] = json!({
                "archived": false,
                "auto_archive_duration": 1440,
                "archive_timestamp": JOINED_AT,
                "locked": false,
            });
        }
        value
    }

    pub fn message_json(&self, message: &Message) -> Value {
        let author = self
            .member(message.author_id)
            .map(|m| self.user_json(m))
            .unwrap_or(Value::Null);
        let mut value = json!({
            "id": message.id.to_string(),
            "channel_id": message.channel_id.to_string(),
            "author": author,
            "content": message.content,
            "timestamp": message.created_at.to_rfc3339(),
            "edited_timestamp": if message.edited { json!(chrono::Utc::now().to_rfc3339()) } else { Value::Null },
            "tts": false,
            "mention_everyone": false,
            "mentions": [],
            "mention_roles": [],
            "attachments": message.attachments,
            "embeds": message.embeds.iter().map(embed_json).collect::<Vec<_>>(),
            "components": components_json(&message.components),
            "pinned": message.pinned,
            "type": if message.interaction_id.is_some() { 20 } else { 0 },
            "flags": message.flags,
        });
        // Discord omits `nonce` when the message was sent without one (it is never null).
        if let Some(nonce) = &message.nonce {
            value["nonce"] = json!(nonce);
        }
        value
    }

    pub fn guild_create_json(&self) -> Value {
        json!({
            "id": self.id.to_string(),
            "name": self.name,
            "icon": null,
            "splash": null,
            "discovery_splash": null,
            "owner_id": self.bot_user_id.to_string(),
            "afk_channel_id": null,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": self.roles.iter().map(|r| self.role_json(r)).collect::<Vec<_>>(),
            "emojis": [],
            "features": [],
            "mfa_level": 0,
            "application_id": null,
            "system_channel_id": null,
            "system_channel_flags": 0,
            "rules_channel_id": null,
            "vanity_url_code": null,
            "description": null,
            "banner": null,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": null,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": false,
            "stickers": [],
            "joined_at": JOINED_AT,
            "large": false,
            "unavailable": false,
            "member_count": self.members.len(),
            "voice_states": [],
            "members": self.members.iter().map(|m| self.member_json(m)).collect::<Vec<_>>(),
            "channels": self.channels.iter().filter(|c| c.kind != CHANNEL_PUBLIC_THREAD).map(|c| self.channel_json(c)).collect::<Vec<_>>(),
            "threads": self.channels.iter().filter(|c| c.kind == CHANNEL_PUBLIC_THREAD).map(|c| self.channel_json(c)).collect::<Vec<_>>(),
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "safety_alerts_channel_id": null,
        })
    }
}

/// An embed as Discord answers it: `type` is always there (`rich` for bot embeds).
fn embed_json(embed: &Value) -> Value {
    let mut embed = embed.clone();
    if embed.get("type").is_none()
        && let Some(object) = embed.as_object_mut()
    {
        object.insert("type".to_owned(), json!("rich"));
    }
    embed
}

/// Components as Discord answers them: each carries a numeric `id`, numbered depth-first
/// from 1 within the message when the bot did not set one.
fn components_json(components: &[Value]) -> Vec<Value> {
    fn number(component: &mut Value, next: &mut u64) {
        let Some(object) = component.as_object_mut() else {
            return;
        };
        if !object.contains_key("id") {
            object.insert("id".to_owned(), json!(*next));
        }
        *next += 1;
        if let Some(children) = object.get_mut("components").and_then(Value::as_array_mut) {
            for child in children {
                number(child, next);
            }
        }
    }
    let mut next = 1;
    let mut components = components.to_vec();
    for component in &mut components {
        number(component, &mut next);
    }
    components
}
