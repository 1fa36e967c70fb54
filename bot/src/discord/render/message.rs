//! The one translation of a platform-neutral [`Message`] into what Discord accepts, used by
//! interaction replies, follow-ups, button updates and outbox posts and edits alike:
//! - typed text ([`Text`]) spelled in Discord's markup (`**bold**`, `` `code` ``, links,
//!   `<t:…>` times, `<@id>` / `<@&id>` mentions);
//! - cut to Discord's documented limits (2000 content; 10 embeds, 6000 characters in all;
//!   title 256; description 4096; 25 fields of 256/1024; footer 2048; 5 rows of 5 buttons;
//!   custom_id 1–100; label 80; a string select takes a row of its own, 1–25 options of
//!   label/value/description 100, placeholder 150), so Discord never refuses a message for
//!   its size;
//! - `allowed_mentions` that notify exactly what [`Message::notify`] names, and nothing a
//!   member typed (`@everyone`, `<@id>` in a reason).

use opsbot_commands::chat::{Embed, Message, Notify, Span, Text, TimeStyle};
use poise::serenity_prelude as serenity;
use serde::Serialize;

use super::components::{self, Row, rows};
pub use super::components::{ButtonBody, Component, OptionBody, SelectBody};

/// `content`: at most 2000 characters.
pub const CONTENT_MAX: usize = 2000;
/// At most 10 embeds per message.
pub const EMBEDS_MAX: usize = 10;
/// At most 6000 characters across all embeds' titles, descriptions, fields and footers.
pub const EMBEDS_TOTAL_MAX: usize = 6000;
/// Embed title: at most 256 characters.
pub const TITLE_MAX: usize = 256;
/// Embed description: at most 4096 characters.
pub const DESCRIPTION_MAX: usize = 4096;
/// At most 25 fields per embed.
pub const FIELDS_MAX: usize = 25;
/// Field name: at most 256 characters.
pub const FIELD_NAME_MAX: usize = 256;
/// Field value: at most 1024 characters.
pub const FIELD_VALUE_MAX: usize = 1024;
/// Footer text: at most 2048 characters.
pub const FOOTER_MAX: usize = 2048;
/// At most 5 action rows, of at most 5 buttons each.
pub const ROWS_MAX: usize = 5;
pub const BUTTONS_PER_ROW: usize = 5;
/// Button labels: at most 80 characters.
pub const LABEL_MAX: usize = 80;
/// Custom ids: 1 to 100 characters.
pub const CUSTOM_ID_MAX: usize = 100;
/// A string select offers 1 to 25 options.
pub const OPTIONS_MAX: usize = 25;
/// Option labels, values and descriptions: at most 100 characters.
pub const OPTION_TEXT_MAX: usize = 100;
/// Select placeholders: at most 150 characters.
pub const PLACEHOLDER_MAX: usize = 150;

/// Marks text that was cut short.
const ELLIPSIS: char = '…';
/// Discord refuses empty field names and values; a zero-width space shows as blank.
const BLANK: &str = "\u{200b}";

/// A message as Discord will take it: every limit applied, mentions decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rendered {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub content: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub embeds: Vec<EmbedBody>,
    /// Always sent (even empty), so that an edit removes buttons that no longer apply.
    pub components: Vec<Row>,
    pub allowed_mentions: AllowedMentions,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AllowedMentions {
    /// Always empty: nothing is parsed from the text; only the ids below notify.
    pub parse: [&'static str; 0],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmbedBody {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub footer: Option<FooterBody>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldBody {
    pub name: String,
    pub value: String,
    pub inline: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FooterBody {
    pub text: String,
}

/// `text` in Discord's markup.
pub fn markup(text: &Text) -> String {
    let mut out = String::new();
    for span in &text.spans {
        match span {
            Span::Plain { text } => out.push_str(text),
            Span::Strong { text } if !text.is_empty() => {
                out.push_str("**");
                out.push_str(text);
                out.push_str("**");
            }
            Span::Strong { .. } => {}
            Span::Code { text } => {
                let fence = if text.contains('`') { "``" } else { "`" };
                out.push_str(&format!("{fence}{text}{fence}"));
            }
            Span::Block { text } => {
                // A fence opens a code block only at the start of a line.
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push('\n');
                }
                out.push_str("```\n");
                // A fence inside the output would end the block early.
                out.push_str(&text.replace("```", "`\u{200b}``"));
                out.push_str("\n```");
            }
            Span::Link { label, url } => out.push_str(&format!("[{label}]({url})")),
            Span::Time { at, style } => {
                let style = match style {
                    TimeStyle::ShortTime => 't',
                    TimeStyle::DateTime => 'f',
                    TimeStyle::Relative => 'R',
                };
                out.push_str(&format!("<t:{at}:{style}>"));
            }
            Span::User { id } => out.push_str(&format!("<@{id}>")),
            Span::Role { id } => out.push_str(&format!("<@&{id}>")),
        }
    }
    out
}

/// The one translation: `message` as Discord will take it.
pub fn render(message: &Message) -> Rendered {
    let mut budget = EMBEDS_TOTAL_MAX;
    let embeds = message
        .embeds
        .iter()
        .take(EMBEDS_MAX)
        .map_while(|embed| embed_body(embed, &mut budget))
        .collect();
    Rendered {
        content: truncate(&markup(&message.content), CONTENT_MAX),
        embeds,
        components: rows(message),
        allowed_mentions: allowed_mentions(&message.notify),
    }
}

fn allowed_mentions(notify: &Notify) -> AllowedMentions {
    AllowedMentions {
        parse: [],
        roles: notify.roles.iter().map(i64::to_string).collect(),
        users: notify.users.iter().map(i64::to_string).collect(),
    }
}

#[derive(Debug, Serialize)]
struct CreateMessage<'a> {
    #[serde(flatten)]
    rendered: &'a Rendered,
    #[serde(skip_serializing_if = "str::is_empty")]
    nonce: &'a str,
    /// Discord returns the existing message instead of posting a second one for a nonce it
    /// has seen in the past few minutes.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    enforce_nonce: bool,
}

impl Rendered {
    /// The JSON body of `POST /channels/{id}/messages` (with `nonce` enforced) or, with an
    /// empty nonce, of `PATCH /channels/{id}/messages/{message}`.
    pub fn json(&self, nonce: &str) -> serde_json::Value {
        let body = CreateMessage {
            rendered: self,
            nonce,
            enforce_nonce: !nonce.is_empty(),
        };
        serde_json::to_value(&body).unwrap_or_else(|e| {
            tracing::error!(error = %e, "a rendered message did not serialise");
            serde_json::json!({ "content": "", "allowed_mentions": { "parse": [] } })
        })
    }

    fn serenity_mentions(&self) -> serenity::CreateAllowedMentions {
        let ids = |list: &[String]| -> Vec<u64> {
            list.iter().filter_map(|id| id.parse().ok()).collect()
        };
        serenity::CreateAllowedMentions::new()
            .roles(
                ids(&self.allowed_mentions.roles)
                    .into_iter()
                    .map(serenity::RoleId::new),
            )
            .users(
                ids(&self.allowed_mentions.users)
                    .into_iter()
                    .map(serenity::UserId::new),
            )
    }

    fn serenity_embeds(&self) -> Vec<serenity::CreateEmbed> {
        self.embeds
            .iter()
            .map(|e| {
                let mut embed = serenity::CreateEmbed::new();
                if !e.title.is_empty() {
                    embed = embed.title(&e.title);
                }
                if !e.description.is_empty() {
                    embed = embed.description(&e.description);
                }
                if let Some(url) = &e.url {
                    embed = embed.url(url);
                }
                if let Some(color) = e.color {
                    embed = embed.color(color);
                }
                for field in &e.fields {
                    embed = embed.field(&field.name, &field.value, field.inline);
                }
                if let Some(footer) = &e.footer {
                    embed = embed.footer(serenity::CreateEmbedFooter::new(&footer.text));
                }
                embed
            })
            .collect()
    }

    fn serenity_rows(&self) -> Vec<serenity::CreateActionRow> {
        components::serenity_rows(&self.components)
    }

    /// As an interaction reply or follow-up.
    pub fn reply(&self) -> poise::CreateReply {
        let mut reply = poise::CreateReply::default()
            .components(self.serenity_rows())
            .allowed_mentions(self.serenity_mentions());
        if !self.content.is_empty() {
            reply = reply.content(&self.content);
        }
        for embed in self.serenity_embeds() {
            reply = reply.embed(embed);
        }
        reply
    }

    /// As a follow-up of an interaction whose first response was something else (a form).
    pub fn followup(&self) -> serenity::CreateInteractionResponseFollowup {
        let mut followup = serenity::CreateInteractionResponseFollowup::new()
            .embeds(self.serenity_embeds())
            .components(self.serenity_rows())
            .allowed_mentions(self.serenity_mentions());
        if !self.content.is_empty() {
            followup = followup.content(&self.content);
        }
        followup
    }

    /// As the new content of the message a button is on.
    pub fn update(&self) -> serenity::CreateInteractionResponseMessage {
        serenity::CreateInteractionResponseMessage::new()
            .content(&self.content)
            .embeds(self.serenity_embeds())
            .components(self.serenity_rows())
            .allowed_mentions(self.serenity_mentions())
    }
}

/// The body of `POST /channels/{id}/messages` for `message`, with `nonce` enforced. Text over
/// a limit is cut and ends with `…`; embeds past the 10th, fields past the 25th and whatever
/// exceeds the 6000-character embed total are dropped.
pub fn create_message_body(message: &Message, nonce: &str) -> serde_json::Value {
    render(message).json(nonce)
}

/// The body of `PATCH /channels/{id}/messages/{message}` for `message`: the same as a post,
/// without a nonce.
pub fn edit_message_body(message: &Message) -> serde_json::Value {
    render(message).json("")
}

/// One embed within what is left of the 6000-character budget; `None` once it is spent.
fn embed_body(embed: &Embed, budget: &mut usize) -> Option<EmbedBody> {
    if *budget == 0 {
        return None;
    }
    let title = take(&embed.title, TITLE_MAX, budget);
    let description = take(&markup(&embed.description), DESCRIPTION_MAX, budget);
    let mut fields = Vec::new();
    for field in embed.fields.iter().take(FIELDS_MAX) {
        let value = markup(&field.value);
        let name = non_blank(&field.name);
        let value = non_blank(&value);
        // A field needs a name and a value of at least one character each.
        if *budget < 2 {
            break;
        }
        let name = take(name, FIELD_NAME_MAX.min(*budget - 1), budget);
        let value = take(value, FIELD_VALUE_MAX, budget);
        fields.push(FieldBody {
            name,
            value,
            inline: field.inline,
        });
    }
    let footer = embed
        .footer
        .as_deref()
        .filter(|text| !text.is_empty() && *budget > 0)
        .map(|text| FooterBody {
            text: take(text, FOOTER_MAX, budget),
        });
    Some(EmbedBody {
        title,
        description,
        url: embed.url.clone(),
        color: embed.color,
        fields,
        footer,
    })
}

pub(super) fn non_blank(text: &str) -> &str {
    if text.trim().is_empty() { BLANK } else { text }
}

/// `text` cut to `limit` and to what is left of `budget`, which it then spends.
fn take(text: &str, limit: usize, budget: &mut usize) -> String {
    let cut = truncate(text, limit.min(*budget));
    *budget -= cut.chars().count();
    cut
}

/// `text` if it has at most `max` characters, else its first `max - 1` and `…`.
/// Discord counts characters (code points), not bytes.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push(ELLIPSIS);
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use opsbot_commands::chat::{Button, ButtonStyle, Field, Select, SelectOption};

    #[test]
    fn typed_pieces_are_spelled_in_discords_markup() {
        let text = Text::new()
            .strong("running")
            .plain(" on ")
            .code("deploy:approve:production")
            .plain(", until ")
            .time(
                chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("time"),
                TimeStyle::ShortTime,
            )
            .plain(" ")
            .link("run", "https://ci.example/1");
        assert_eq!(
            markup(&text),
            "**running** on `deploy:approve:production`, until <t:1800000000:t> [run](https://ci.example/1)"
        );
    }

    #[test]
    fn mentions_notify_only_what_the_message_names() {
        let mut message = Message::text("@everyone <@42> typed by a member");
        let body = create_message_body(&message, "n");
        assert_eq!(body["allowed_mentions"], serde_json::json!({ "parse": [] }));
        message.content = Text::new().role(7).plain(" firing");
        message.notify.roles = vec![7];
        let body = create_message_body(&message, "n");
        assert_eq!(body["content"], "<@&7> firing");
        assert_eq!(
            body["allowed_mentions"],
            serde_json::json!({ "parse": [], "roles": ["7"] })
        );
    }

    #[test]
    fn buttons_fill_at_most_five_rows_of_five() {
        let buttons = (0..30)
            .map(|i| Button {
                label: "x".repeat(100),
                custom_id: format!("b{i}"),
                style: ButtonStyle::Secondary,
            })
            .chain(std::iter::once(Button {
                label: "too long an id".to_owned(),
                custom_id: "x".repeat(101),
                style: ButtonStyle::Danger,
            }))
            .collect();
        let message = Message {
            buttons,
            ..Message::default()
        };
        let rendered = render(&message);
        assert_eq!(rendered.components.len(), 5);
        assert!(rendered.components.iter().all(|r| r.components.len() == 5));
        let Component::Button(first) = &rendered.components[0].components[0] else {
            panic!("a button row");
        };
        assert!(first.label.chars().count() <= LABEL_MAX);
        assert!(
            rendered
                .components
                .iter()
                .flat_map(|r| &r.components)
                .all(|c| matches!(c, Component::Button(b) if b.custom_id.len() <= CUSTOM_ID_MAX))
        );
    }

    #[test]
    fn a_select_takes_a_row_of_its_own_within_discords_limits() {
        let select = |id: String, options: usize| Select {
            custom_id: id,
            placeholder: "p".repeat(200),
            options: (0..options)
                .map(|i| SelectOption {
                    label: "l".repeat(150),
                    value: format!("v{i}"),
                    description: Some("d".repeat(150)),
                })
                .collect(),
        };
        let message = Message {
            buttons: vec![Button {
                label: "Ack".to_owned(),
                custom_id: "ack".to_owned(),
                style: ButtonStyle::Primary,
            }],
            selects: vec![
                select("silence".to_owned(), 40),
                select("x".repeat(101), 3),
                select("empty".to_owned(), 0),
            ],
            ..Message::default()
        };
        let body = create_message_body(&message, "");
        let rows = body["components"].as_array().expect("rows");
        assert_eq!(rows.len(), 2, "{body:#}");
        let menu = &rows[1]["components"][0];
        assert_eq!(menu["type"], 3);
        assert_eq!(menu["custom_id"], "silence");
        assert_eq!(
            menu["options"].as_array().expect("options").len(),
            OPTIONS_MAX
        );
        assert_eq!(
            menu["placeholder"].as_str().expect("p").chars().count(),
            PLACEHOLDER_MAX
        );
        assert_eq!(
            menu["options"][0]["label"]
                .as_str()
                .expect("l")
                .chars()
                .count(),
            OPTION_TEXT_MAX
        );
        assert_eq!(
            menu["options"][0]["description"]
                .as_str()
                .expect("d")
                .chars()
                .count(),
            OPTION_TEXT_MAX
        );
        // Five rows at most, buttons first.
        let crowded = Message {
            buttons: message.buttons.iter().cycle().take(25).cloned().collect(),
            ..message
        };
        assert_eq!(render(&crowded).components.len(), ROWS_MAX);
    }

    #[test]
    fn every_limit_holds_for_a_huge_message() {
        let long = "y".repeat(5000);
        let message = Message {
            content: Text::from(long.as_str()),
            embeds: (0..12)
                .map(|_| Embed {
                    title: long.clone(),
                    description: Text::from(long.as_str()),
                    fields: (0..30)
                        .map(|_| Field {
                            name: long.clone(),
                            value: Text::from(long.as_str()),
                            inline: false,
                        })
                        .collect(),
                    footer: Some(long.clone()),
                    ..Embed::default()
                })
                .collect(),
            ..Message::default()
        };
        let rendered = render(&message);
        assert_eq!(rendered.content.chars().count(), CONTENT_MAX);
        assert!(rendered.embeds.len() <= EMBEDS_MAX);
        let total: usize = rendered
            .embeds
            .iter()
            .map(|e| {
                e.title.chars().count()
                    + e.description.chars().count()
                    + e.fields
                        .iter()
                        .map(|f| f.name.chars().count() + f.value.chars().count())
                        .sum::<usize>()
                    + e.footer.as_ref().map_or(0, |f| f.text.chars().count())
            })
            .sum();
        assert!(total <= EMBEDS_TOTAL_MAX, "{total}");
    }
}
