//! What members do besides typing commands and pressing buttons: fill in a modal the bot
//! opened (a MODAL_SUBMIT interaction), ask for autocomplete while typing an option
//! (APPLICATION_COMMAND_AUTOCOMPLETE), run a message context-menu command (Apps → …) on a
//! message, and write a plain message for such a command to act on. Each is checked the way
//! Discord's client would check it, so the bot only sees interactions Discord could send.

use chrono::Utc;
use serde_json::{Value, json};

use super::guild::{self, Message};
use super::input::interaction_json;
use super::typed_line::{self, LineError};
use super::{Emulator, EmulatorEvent, Interaction, State, dispatch};

/// Discord's interaction types (the callbacks each allows differ).
pub(super) const APPLICATION_COMMAND: u8 = 2;
pub(super) const MESSAGE_COMPONENT: u8 = 3;
pub(super) const AUTOCOMPLETE: u8 = 4;
pub(super) const MODAL_SUBMIT: u8 = 5;

/// Application command type of message context-menu commands.
const MESSAGE_COMMAND: u64 = 3;
/// Component types of a modal: an action row holding one text input.
const ACTION_ROW: u64 = 1;
const TEXT_INPUT: u64 = 4;

/// Discord's modal limits (docs: interactions/receiving-and-responding, components): a title
/// of at most 45 characters, one to five text inputs, labels of at most 45 characters,
/// custom ids of at most 100, values of at most 4000.
const MODAL_TITLE_MAX: usize = 45;
const MODAL_INPUTS_MAX: usize = 5;
const LABEL_MAX: usize = 45;
const CUSTOM_ID_MAX: usize = 100;
const TEXT_INPUT_MAX: usize = 4000;

/// Discord lists at most 25 autocomplete choices.
pub(super) const CHOICES_MAX: usize = 25;

/// An event only the member sees: a form popping up (`modal`: its title and text inputs) or
/// autocomplete choices (`choices`: their names, one a line, and the choices).
pub(super) fn event(
    kind: &'static str,
    interaction_id: u64,
    content: String,
    components: Vec<Value>,
) -> EmulatorEvent {
    EmulatorEvent {
        event: kind,
        interaction_id: Some(interaction_id),
        channel_id: 0,
        channel: String::new(),
        message_id: None,
        content,
        embeds: Vec::new(),
        components,
        attachments: Vec::new(),
        files: Vec::new(),
        ephemeral: true,
        allowed_mentions: None,
        pings: super::mentions::Pings::default(),
    }
}

/// A modal the bot opened (interaction response type 9), waiting to be filled in.
#[derive(Debug, Clone)]
pub(super) struct OpenModal {
    /// The interaction the modal answered.
    pub interaction_id: u64,
    pub member_id: u64,
    pub channel_id: u64,
    /// `custom_id`, `title` and `components`, as the bot sent them.
    pub data: Value,
}

/// The text inputs of a modal: `(custom_id, input)`.
fn text_inputs(data: &Value) -> Vec<(String, Value)> {
    data["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["type"] == TEXT_INPUT)
        .map(|c| (c["custom_id"].as_str().unwrap_or_default().to_owned(), c))
        .collect()
}

/// Refuses a modal Discord would refuse, with Discord's wording of the field at fault.
pub(super) fn check_modal(data: &Value) -> Result<(), String> {
    let title = data["title"].as_str().unwrap_or_default();
    if title.is_empty() || title.chars().count() > MODAL_TITLE_MAX {
        return Err(format!(
            "data.title: Must be between 1 and {MODAL_TITLE_MAX} in length."
        ));
    }
    let custom_id = data["custom_id"].as_str().unwrap_or_default();
    if custom_id.is_empty() || custom_id.chars().count() > CUSTOM_ID_MAX {
        return Err(format!(
            "data.custom_id: Must be between 1 and {CUSTOM_ID_MAX} in length."
        ));
    }
    let rows = data["components"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() || rows.len() > MODAL_INPUTS_MAX {
        return Err(format!(
            "data.components: Must be between 1 and {MODAL_INPUTS_MAX} in length."
        ));
    }
    for (i, row) in rows.iter().enumerate() {
        let inner = row["components"].as_array().cloned().unwrap_or_default();
        if row["type"] != ACTION_ROW || inner.len() != 1 || inner[0]["type"] != TEXT_INPUT {
            return Err(format!(
                "data.components.{i}: an action row of a modal holds exactly one text input"
            ));
        }
        let input = &inner[0];
        let label = input["label"].as_str().unwrap_or_default();
        if label.is_empty() || label.chars().count() > LABEL_MAX {
            return Err(format!(
                "data.components.{i}.components.0.label: Must be between 1 and {LABEL_MAX} in length."
            ));
        }
        let value = input["value"].as_str().unwrap_or_default();
        let max = input["max_length"]
            .as_u64()
            .map_or(TEXT_INPUT_MAX, |m| m as usize);
        if value.chars().count() > max.min(TEXT_INPUT_MAX) {
            return Err(format!(
                "data.components.{i}.components.0.value: Must be {max} or fewer in length."
            ));
        }
    }
    Ok(())
}

fn new_token(id: u64) -> String {
    format!(
        "emulator-interaction-{id}-{}",
        uuid::Uuid::new_v4().simple()
    )
}

fn not_connected(state: &State) -> Result<(), LineError> {
    if state.shards.is_empty() {
        return Err(LineError(
            "the bot is not connected to the emulator yet".to_owned(),
        ));
    }
    Ok(())
}

/// Records interaction `id` of `kind` and dispatches `payload` to the bot.
fn deliver(
    state: &mut State,
    payload: Value,
    (id, token): (u64, String),
    (member_id, channel_id, kind): (u64, u64, u8),
) -> u64 {
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
            kind,
        },
    );
    dispatch(state, "INTERACTION_CREATE", payload);
    id
}

impl Emulator {
    /// The modal the bot opened in answer to `interaction_id`, as it sent it (`custom_id`,
    /// `title`, `components`), while it is open.
    pub fn modal(&self, interaction_id: u64) -> Option<Value> {
        self.shared
            .state()
            .modals
            .iter()
            .find(|m| m.interaction_id == interaction_id)
            .map(|m| m.data.clone())
    }

    /// The newest form open for `member_id`: the interaction that opened it (the bot answers
    /// that one once the form is submitted) and the form's title.
    pub fn open_form(&self, member_id: u64) -> Option<(u64, String)> {
        self.shared
            .state()
            .modals
            .iter()
            .rev()
            .find(|m| m.member_id == member_id)
            .map(|m| {
                let title = m.data["title"].as_str().unwrap_or_default().to_owned();
                (m.interaction_id, title)
            })
    }

    /// Fills in and submits the newest modal open for `member_id`: `fields` are
    /// `(label or custom_id, value)`, case-insensitive; a field not given keeps the value the
    /// bot pre-filled. Refuses what Discord's client would not submit (a required field left
    /// empty, a value out of its length range, a field the modal does not have). Dispatches a
    /// MODAL_SUBMIT interaction; returns its id.
    pub fn submit_modal(
        &self,
        member_id: u64,
        fields: &[(String, String)],
    ) -> Result<u64, LineError> {
        let mut state = self.shared.state();
        not_connected(&state)?;
        let Some(index) = state.modals.iter().rposition(|m| m.member_id == member_id) else {
            return Err(LineError(
                "no form is open for you: a command or button opens one".to_owned(),
            ));
        };
        let modal = state.modals[index].clone();
        let inputs = text_inputs(&modal.data);
        let names = inputs
            .iter()
            .map(|(id, input)| {
                let label = input["label"].as_str().unwrap_or(id);
                label.to_lowercase()
            })
            .collect::<Vec<_>>()
            .join(", ");
        for (key, _) in fields {
            let known = inputs.iter().any(|(id, input)| {
                id.eq_ignore_ascii_case(key)
                    || input["label"]
                        .as_str()
                        .is_some_and(|l| l.eq_ignore_ascii_case(key))
            });
            if !known {
                return Err(LineError(format!(
                    "the form has no field \"{key}\"; fields: {names}"
                )));
            }
        }
        let mut rows = Vec::new();
        for (id, input) in &inputs {
            let label = input["label"].as_str().unwrap_or(id);
            let value = fields
                .iter()
                .rev()
                .find(|(key, _)| key.eq_ignore_ascii_case(id) || key.eq_ignore_ascii_case(label))
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| input["value"].as_str().unwrap_or_default().to_owned());
            let length = value.chars().count();
            let required = input["required"].as_bool().unwrap_or(true);
            if required && value.trim().is_empty() {
                return Err(LineError(format!(
                    "the form needs \"{label}\"; fill it in, e.g. {}=\"…\"",
                    label.to_lowercase()
                )));
            }
            let min = input["min_length"].as_u64().unwrap_or(0) as usize;
            let max = input["max_length"]
                .as_u64()
                .map_or(TEXT_INPUT_MAX, |m| m as usize);
            if length > 0 && (length < min || length > max) {
                return Err(LineError(format!(
                    "\"{label}\" takes {min} to {max} characters (got {length})"
                )));
            }
            rows.push(json!({
                "type": ACTION_ROW,
                "components": [{ "type": TEXT_INPUT, "custom_id": id, "value": value }],
            }));
        }
        state.modals.remove(index);
        let guild = &mut state.guild;
        let id = guild.ids.issue();
        let token = new_token(id);
        let member = guild
            .member(member_id)
            .cloned()
            .ok_or_else(|| LineError(format!("no member with id {member_id}")))?;
        let channel = guild
            .channel(modal.channel_id)
            .cloned()
            .ok_or_else(|| LineError("the form's channel is gone".to_owned()))?;
        let data = json!({ "custom_id": modal.data["custom_id"], "components": rows });
        let mut payload = interaction_json(guild, &member, &channel, data, id, &token);
        payload["type"] = json!(MODAL_SUBMIT);
        Ok(deliver(
            &mut state,
            payload,
            (id, token),
            (member_id, modal.channel_id, MODAL_SUBMIT),
        ))
    }

    /// Asks the bot for autocomplete choices as Discord's client does while `member_id` types
    /// `line` in `channel_id`: the last option of the line (`/deploy run service:ap`) is the
    /// focused one. Dispatches an APPLICATION_COMMAND_AUTOCOMPLETE interaction; the choices
    /// arrive as a `choices` event. Returns the interaction id.
    pub fn autocomplete(
        &self,
        member_id: u64,
        channel_id: u64,
        line: &str,
    ) -> Result<u64, LineError> {
        let mut state = self.shared.state();
        not_connected(&state)?;
        let guild = &mut state.guild;
        let data = typed_line::autocomplete_data(line, &guild.commands, guild.id)?;
        let id = guild.ids.issue();
        let token = new_token(id);
        let member = guild
            .member(member_id)
            .cloned()
            .ok_or_else(|| LineError(format!("no member with id {member_id}")))?;
        let channel = guild
            .channel(channel_id)
            .cloned()
            .ok_or_else(|| LineError(format!("no channel with id {channel_id}")))?;
        let mut payload = interaction_json(guild, &member, &channel, data, id, &token);
        payload["type"] = json!(AUTOCOMPLETE);
        Ok(deliver(
            &mut state,
            payload,
            (id, token),
            (member_id, channel_id, AUTOCOMPLETE),
        ))
    }

    /// Runs the message context-menu command `name` (case-insensitive) on message
    /// `message_id`, as right-click → Apps → `name` does. Dispatches an APPLICATION_COMMAND
    /// interaction with `target_id` and the message under `resolved`; returns its id.
    pub fn message_command(
        &self,
        member_id: u64,
        message_id: u64,
        name: &str,
    ) -> Result<u64, LineError> {
        let mut state = self.shared.state();
        not_connected(&state)?;
        let guild = &mut state.guild;
        let message_commands: Vec<&Value> = guild
            .commands
            .iter()
            .filter(|c| c["type"] == MESSAGE_COMMAND)
            .collect();
        let Some(command) = message_commands.iter().find(|c| {
            c["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name.trim()))
        }) else {
            let names: Vec<&str> = message_commands
                .iter()
                .filter_map(|c| c["name"].as_str())
                .collect();
            return Err(LineError(format!(
                "no message command \"{name}\"; message commands: {}",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )));
        };
        let Some(message) = guild
            .messages
            .get(&message_id)
            .filter(|m| m.visible_to.is_none_or(|v| v == member_id))
            .cloned()
        else {
            return Err(LineError(format!(
                "no message {message_id} that you can see"
            )));
        };
        let data = json!({
            "id": command["id"].as_str().map_or_else(|| command["id"].to_string(), str::to_owned),
            "name": command["name"],
            "type": MESSAGE_COMMAND,
            "guild_id": guild.id.to_string(),
            "target_id": message.id.to_string(),
            "resolved": { "messages": { message.id.to_string(): guild.message_json(&message) } },
        });
        let id = guild.ids.issue();
        let token = new_token(id);
        let member = guild
            .member(member_id)
            .cloned()
            .ok_or_else(|| LineError(format!("no member with id {member_id}")))?;
        let channel = guild
            .channel(message.channel_id)
            .cloned()
            .ok_or_else(|| LineError("the message's channel is gone".to_owned()))?;
        let payload = interaction_json(guild, &member, &channel, data, id, &token);
        Ok(deliver(
            &mut state,
            payload,
            (id, token),
            (member_id, message.channel_id, APPLICATION_COMMAND),
        ))
    }

    /// `member_id` writes `text` in `channel_id` (a plain message, for a context-menu command
    /// to act on). The bot reads no message content, so nothing is dispatched. Returns the
    /// message id.
    pub fn write_message(
        &self,
        member_id: u64,
        channel_id: u64,
        text: &str,
    ) -> Result<u64, LineError> {
        let mut state = self.shared.state();
        let guild = &mut state.guild;
        if guild.channel(channel_id).is_none() {
            return Err(LineError(format!("no channel with id {channel_id}")));
        }
        if text.trim().is_empty() || text.chars().count() > 2000 {
            return Err(LineError("a message has 1 to 2000 characters".to_owned()));
        }
        let id = guild.ids.issue();
        guild.messages.insert(
            id,
            Message {
                id,
                channel_id,
                author_id: member_id,
                content: text.to_owned(),
                embeds: Vec::new(),
                components: Vec::new(),
                attachments: Vec::new(),
                files: Vec::new(),
                flags: 0,
                pinned: false,
                edited: false,
                nonce: None,
                interaction_id: None,
                visible_to: None,
                created_at: Utc::now(),
            },
        );
        Ok(id)
    }

    /// The newest message in `channel_id` that `member_id` can see.
    pub fn newest_message(&self, member_id: u64, channel_id: u64) -> Option<u64> {
        let state = self.shared.state();
        state
            .guild
            .messages
            .values()
            .rev()
            .find(|m: &&guild::Message| {
                m.channel_id == channel_id && m.visible_to.is_none_or(|v| v == member_id)
            })
            .map(|m| m.id)
    }
}

#[cfg(test)]
mod tests {
    use super::check_modal;
    use serde_json::json;

    fn input(label: &str) -> serde_json::Value {
        json!({ "type": 1, "components": [{ "type": 4, "custom_id": "f", "style": 1, "label": label }] })
    }

    #[test]
    fn modals_are_checked_as_discord_checks_them() {
        let ok = json!({ "custom_id": "1", "title": "Declare", "components": [input("Title")] });
        assert_eq!(check_modal(&ok), Ok(()));
        let long_title =
            json!({ "custom_id": "1", "title": "x".repeat(46), "components": [input("T")] });
        assert!(check_modal(&long_title).unwrap_err().contains("data.title"));
        let six: Vec<_> = (0..6).map(|_| input("T")).collect();
        let too_many = json!({ "custom_id": "1", "title": "t", "components": six });
        assert!(
            check_modal(&too_many)
                .unwrap_err()
                .contains("data.components")
        );
        let long_label =
            json!({ "custom_id": "1", "title": "t", "components": [input(&"l".repeat(46))] });
        assert!(check_modal(&long_label).unwrap_err().contains("label"));
        let button = json!({ "custom_id": "1", "title": "t", "components": [{ "type": 1, "components": [{ "type": 2 }] }] });
        assert!(check_modal(&button).is_err());
    }
}
