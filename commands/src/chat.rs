//! Platform-neutral messages: what the domain wants said, not how Discord spells it.
//! Front doors translate a [`Message`] into their own shape (Discord: a create-message body,
//! through the one renderer in `bot/src/discord/render/`).
//!
//! Text is [`Text`]: typed pieces ([`Span`]) — plain words, emphasis, code, links, points in
//! time, mentions of members and roles — that each platform spells its own way. Nothing here
//! writes platform markup. Who a message may notify is explicit ([`Message::notify`]): a
//! mention in the text alone notifies nobody.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub content: Text,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embeds: Vec<Embed>,
    /// Buttons under the message, in rows of up to five.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<Button>,
    /// Menus of choices under the buttons, one row each (after the buttons' rows).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selects: Vec<Select>,
    /// Whom the message notifies: only these roles and members, and only if the text
    /// mentions them. Empty: nobody, whatever the text contains.
    #[serde(default, skip_serializing_if = "Notify::is_empty")]
    pub notify: Notify,
}

/// The roles and members a message may notify (Discord: `allowed_mentions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notify {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<i64>,
}

impl Notify {
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty() && self.users.is_empty()
    }
}

/// Inline text as typed pieces. Stored in the outbox as JSON; a plain string (older rows)
/// reads as one plain piece.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "TextRepr", into = "Vec<Span>")]
pub struct Text {
    pub spans: Vec<Span>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TextRepr {
    Plain(String),
    Spans(Vec<Span>),
}

impl From<TextRepr> for Text {
    fn from(repr: TextRepr) -> Text {
        match repr {
            TextRepr::Plain(text) => Text::from(text),
            TextRepr::Spans(spans) => Text { spans },
        }
    }
}

impl From<Text> for Vec<Span> {
    fn from(text: Text) -> Vec<Span> {
        text.spans
    }
}

/// One piece of [`Text`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Span {
    Plain {
        text: String,
    },
    /// Emphasised (Discord: bold).
    Strong {
        text: String,
    },
    /// An identifier, a permission, a version: shown as code.
    Code {
        text: String,
    },
    /// Preformatted lines (a command's output).
    Block {
        text: String,
    },
    Link {
        label: String,
        url: String,
    },
    /// A point in time (unix seconds), shown in the reader's own time zone where possible.
    Time {
        at: i64,
        style: TimeStyle,
    },
    /// A member, by Discord user id.
    User {
        id: i64,
    },
    /// A role, by id.
    Role {
        id: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeStyle {
    /// `16:20`
    ShortTime,
    /// `1 December 2026 16:20`
    DateTime,
    /// `in 5 minutes`, `2 hours ago`
    Relative,
}

impl From<String> for Text {
    fn from(text: String) -> Text {
        if text.is_empty() {
            Text::default()
        } else {
            Text {
                spans: vec![Span::Plain { text }],
            }
        }
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Text {
        Text::from(text.to_owned())
    }
}

impl Text {
    pub fn new() -> Text {
        Text::default()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.iter().all(|s| match s {
            Span::Plain { text }
            | Span::Strong { text }
            | Span::Code { text }
            | Span::Block { text } => text.is_empty(),
            _ => false,
        })
    }

    pub fn push(&mut self, span: Span) -> &mut Text {
        self.spans.push(span);
        self
    }

    pub fn plain(mut self, text: impl Into<String>) -> Text {
        self.spans.push(Span::Plain { text: text.into() });
        self
    }

    pub fn strong(mut self, text: impl Into<String>) -> Text {
        self.spans.push(Span::Strong { text: text.into() });
        self
    }

    pub fn code(mut self, text: impl Into<String>) -> Text {
        self.spans.push(Span::Code { text: text.into() });
        self
    }

    pub fn block(mut self, text: impl Into<String>) -> Text {
        self.spans.push(Span::Block { text: text.into() });
        self
    }

    pub fn link(mut self, label: impl Into<String>, url: impl Into<String>) -> Text {
        self.spans.push(Span::Link {
            label: label.into(),
            url: url.into(),
        });
        self
    }

    pub fn time(mut self, at: chrono::DateTime<chrono::Utc>, style: TimeStyle) -> Text {
        self.spans.push(Span::Time {
            at: at.timestamp(),
            style,
        });
        self
    }

    /// A mention of role `id` (it notifies only if [`Message::notify`] names the role).
    pub fn role(mut self, id: i64) -> Text {
        self.spans.push(Span::Role { id });
        self
    }

    /// A mention of member `id` (it notifies only if [`Message::notify`] names them).
    pub fn user(mut self, id: i64) -> Text {
        self.spans.push(Span::User { id });
        self
    }

    /// Appends every piece of `other`.
    pub fn append(mut self, other: Text) -> Text {
        self.spans.extend(other.spans);
        self
    }

    /// CommonMark (GitHub, plain-text doors, tests): `**strong**`, `` `code` ``, fenced
    /// blocks, `[label](url)`; times in UTC; mentions as `@id` / `@role:id`.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        for span in &self.spans {
            match span {
                Span::Strong { text } if !text.is_empty() => out.push_str(&format!("**{text}**")),
                Span::Code { text } => out.push_str(&format!("`{text}`")),
                Span::Block { text } => out.push_str(&format!("```\n{text}\n```")),
                Span::Link { label, url } => out.push_str(&format!("[{label}]({url})")),
                other => out.push_str(
                    &Text {
                        spans: vec![other.clone()],
                    }
                    .plain_text(),
                ),
            }
        }
        out
    }

    /// The words without any styling, times in UTC: for logs, tests and plain-text doors.
    pub fn plain_text(&self) -> String {
        let mut out = String::new();
        for span in &self.spans {
            match span {
                Span::Plain { text }
                | Span::Strong { text }
                | Span::Code { text }
                | Span::Block { text } => out.push_str(text),
                Span::Link { label, url } => out.push_str(&format!("{label} ({url})")),
                Span::Time { at, .. } => match chrono::DateTime::from_timestamp(*at, 0) {
                    Some(t) => out.push_str(&t.format("%Y-%m-%d %H:%M UTC").to_string()),
                    None => out.push_str(&at.to_string()),
                },
                Span::User { id } => out.push_str(&format!("@{id}")),
                Span::Role { id } => out.push_str(&format!("@role:{id}")),
            }
        }
        out
    }
}

/// A button; pressing it sends `custom_id` back to the bot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Button {
    pub label: String,
    pub custom_id: String,
    pub style: ButtonStyle,
}

/// A menu of choices (Discord: a string select); picking one sends `custom_id` and the chosen
/// option's `value` back to the bot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Select {
    pub custom_id: String,
    /// Shown while nothing is picked, e.g. "Silence for…".
    pub placeholder: String,
    pub options: Vec<SelectOption>,
}

/// One choice of a [`Select`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectOption {
    pub label: String,
    /// What the bot receives when this option is picked.
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ButtonStyle {
    Primary,
    Secondary,
    Success,
    Danger,
}

/// What the domain asks of the chat platform directly (not through the outbox), when it needs
/// the answer: the id of a thread it creates.
#[async_trait::async_trait]
pub trait Chat: Send + Sync + std::fmt::Debug {
    /// Starts a public thread on a message; returns the thread's channel id.
    async fn start_thread(
        &self,
        channel_id: i64,
        message_id: i64,
        name: &str,
    ) -> Result<i64, String>;

    /// Creates a text channel in `guild_id` (under `channel.parent` when given); returns its id.
    async fn create_channel(&self, guild_id: i64, channel: &NewChannel) -> Result<i64, String> {
        let _ = (guild_id, channel);
        Err("this chat platform cannot create channels".to_owned())
    }

    /// The id of a channel of `guild_id` whose name starts with `prefix`, if there is one
    /// (to find a channel created before a crash instead of creating a second one).
    async fn find_channel(&self, guild_id: i64, prefix: &str) -> Result<Option<i64>, String> {
        let _ = (guild_id, prefix);
        Err("this chat platform cannot list channels".to_owned())
    }

    /// Changes a channel's topic, category or member permissions (what `edit` sets).
    async fn edit_channel(&self, channel_id: i64, edit: &ChannelEdit) -> Result<(), String> {
        let _ = (channel_id, edit);
        Err("this chat platform cannot edit channels".to_owned())
    }

    /// The ids of the roles of `guild_id` named in `names` (names not found are left out).
    async fn role_ids(&self, guild_id: i64, names: &[String]) -> Result<Vec<i64>, String> {
        let _ = (guild_id, names);
        Err("this chat platform cannot list roles".to_owned())
    }

    /// Pins message `message_id` in `channel_id`.
    async fn pin_message(&self, channel_id: i64, message_id: i64) -> Result<(), String> {
        let _ = (channel_id, message_id);
        Err("this chat platform cannot pin messages".to_owned())
    }
}

/// A text channel to create ([`Chat::create_channel`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChannel {
    pub name: String,
    /// The category it goes under.
    pub parent: Option<i64>,
    pub topic: String,
}

/// What [`Chat::edit_channel`] changes; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelEdit {
    pub topic: Option<String>,
    /// Move it under this category.
    pub parent: Option<i64>,
    /// Members may read but no longer write (everyone's send permission denied).
    pub read_only_in_guild: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Embed {
    pub title: String,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub description: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// 0xRRGGBB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Field>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub value: Text,
    #[serde(default)]
    pub inline: bool,
}

impl Message {
    pub fn text(content: impl Into<Text>) -> Message {
        Message {
            content: content.into(),
            ..Message::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_reads_old_plain_strings_and_round_trips_spans() {
        let old: Message = serde_json::from_str(r#"{"content":"hello","embeds":[{"title":"t","description":"d","fields":[{"name":"n","value":"v"}]}]}"#)
            .expect("an older outbox row");
        assert_eq!(old.content, Text::from("hello"));
        assert_eq!(old.embeds[0].fields[0].value.plain_text(), "v");
        let new = Message::text(Text::new().strong("running").plain(" until ").time(
            chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("time"),
            TimeStyle::ShortTime,
        ));
        let json = serde_json::to_string(&new).expect("json");
        assert_eq!(serde_json::from_str::<Message>(&json).expect("back"), new);
        assert_eq!(
            new.content.plain_text(),
            "running until 2027-01-15 08:00 UTC"
        );
    }
}
