//! What members do in the emulated guild: type a slash command as a line (checked against
//! the registered commands, like Discord's client) and press buttons; each becomes the
//! interaction the gateway delivers to the bot.

use serde_json::{Value, json};

use super::guild::{self, Guild, Member};
use super::typed_line::{
    self, DirectoryChannel, DirectoryMember, DirectoryRole, GuildDirectory, LineError,
};
use super::{Emulator, Interaction, dispatch};

impl Emulator {
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
                kind: super::forms::APPLICATION_COMMAND,
            },
        );
        dispatch(&mut state, "INTERACTION_CREATE", payload);
        Ok(id)
    }

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
        let data = json!({ "custom_id": custom_id, "component_type": 2 });
        component_interaction(&mut state, member_id, &message, data)
    }

    /// Picks the option labelled `option` (case-insensitive; its value also works) in the
    /// string select whose placeholder starts with `menu` (case-insensitive), on the newest
    /// message that has one among those `member_id` can see. Dispatches a MESSAGE_COMPONENT
    /// interaction with `values`, as Discord does; returns its id.
    pub fn select(&self, member_id: u64, menu: &str, option: &str) -> Result<u64, LineError> {
        let mut state = self.shared.state();
        if state.shards.is_empty() {
            return Err(LineError(
                "the bot is not connected to the emulator yet".to_owned(),
            ));
        }
        let wanted = menu.trim().to_lowercase();
        let menus = |m: &guild::Message| -> Vec<Value> {
            m.components
                .iter()
                .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
                .filter(|c| c["type"] == 3)
                .collect()
        };
        let guild = &state.guild;
        let found = guild.messages.values().rev().find_map(|m| {
            if m.visible_to.is_some_and(|v| v != member_id) {
                return None;
            }
            let select = menus(m).into_iter().find(|c| {
                c["placeholder"]
                    .as_str()
                    .is_some_and(|p| p.to_lowercase().starts_with(&wanted))
                    || c["custom_id"].as_str().is_some_and(|id| id == menu)
            })?;
            Some((m.clone(), select))
        });
        let Some((message, select)) = found else {
            let placeholders: Vec<String> = guild
                .messages
                .values()
                .filter(|m| m.visible_to.is_none_or(|v| v == member_id))
                .flat_map(menus)
                .filter_map(|c| c["placeholder"].as_str().map(str::to_owned))
                .collect();
            return Err(LineError(if placeholders.is_empty() {
                format!("no message you can see has a menu \"{menu}\" (no menus at all)")
            } else {
                format!(
                    "no message you can see has a menu \"{menu}\"; menus: {}",
                    placeholders.join(", ")
                )
            }));
        };
        if select["disabled"] == json!(true) {
            return Err(LineError(format!("the \"{menu}\" menu is disabled")));
        }
        let options = select["options"].as_array().cloned().unwrap_or_default();
        let Some(value) = options
            .iter()
            .find(|o| {
                o["label"]
                    .as_str()
                    .is_some_and(|l| l.eq_ignore_ascii_case(option.trim()))
                    || o["value"].as_str() == Some(option.trim())
            })
            .and_then(|o| o["value"].as_str())
            .map(str::to_owned)
        else {
            let labels: Vec<&str> = options.iter().filter_map(|o| o["label"].as_str()).collect();
            return Err(LineError(format!(
                "the \"{menu}\" menu has no option \"{option}\"; options: {}",
                labels.join(", ")
            )));
        };
        let data = json!({
            "custom_id": select["custom_id"],
            "component_type": 3,
            "values": [value],
        });
        component_interaction(&mut state, member_id, &message, data)
    }
}

impl Emulator {
    /// Presses the component `custom_id` (with `values` for a select menu) on message
    /// `message_id`, whatever that message shows and whoever may see it: what a modified
    /// client or a replayed interaction sends. Discord's own client only sends what it shows;
    /// the access tests use this to press every kind of component as a member without the
    /// permission. Returns the interaction id.
    #[doc(hidden)]
    pub fn press_custom_id(
        &self,
        member_id: u64,
        message_id: u64,
        custom_id: &str,
        values: Option<&[&str]>,
    ) -> Result<u64, LineError> {
        let mut state = self.shared.state();
        if state.shards.is_empty() {
            return Err(LineError(
                "the bot is not connected to the emulator yet".to_owned(),
            ));
        }
        let message = state
            .guild
            .messages
            .get(&message_id)
            .cloned()
            .ok_or_else(|| LineError(format!("no message with id {message_id}")))?;
        let data = match values {
            Some(values) => {
                json!({ "custom_id": custom_id, "component_type": 3, "values": values })
            }
            None => json!({ "custom_id": custom_id, "component_type": 2 }),
        };
        component_interaction(&mut state, member_id, &message, data)
    }
}

/// Dispatches the MESSAGE_COMPONENT (type 3) interaction of `member_id` acting on `message`.
fn component_interaction(
    state: &mut super::State,
    member_id: u64,
    message: &guild::Message,
    data: Value,
) -> Result<u64, LineError> {
    let guild = &state.guild;
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
    let mut payload = interaction_json(guild, &member, &channel, data, id, &token);
    payload["type"] = json!(3);
    payload["message"] = guild.message_json(message);
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
            kind: super::forms::MESSAGE_COMPONENT,
        },
    );
    dispatch(state, "INTERACTION_CREATE", payload);
    Ok(id)
}

/// An APPLICATION_COMMAND (type 2) interaction as the gateway delivers it.
pub(super) fn interaction_json(
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
pub(super) fn member_with_permissions(mut member: Value) -> Value {
    member["permissions"] = json!("1071698660929");
    member
}

pub(super) fn directory(guild: &Guild) -> GuildDirectory {
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
