//! Translation of a platform-neutral [`Message`] into Discord's "create message" JSON body,
//! cut to Discord's documented limits so that Discord never rejects a message for its size.

use opsbot_commands::chat::{ButtonStyle, Embed, Message};
use serde::Serialize;

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

/// Marks text that was cut short.
const ELLIPSIS: char = '…';
/// Discord refuses empty field names and values; a zero-width space shows as blank.
const BLANK: &str = "\u{200b}";

#[derive(Debug, Serialize)]
struct CreateMessage<'a> {
    #[serde(skip_serializing_if = "String::is_empty")]
    content: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    embeds: Vec<EmbedBody<'a>>,
    /// Always sent (even empty), so that an edit removes buttons that no longer apply.
    components: serde_json::Value,
    #[serde(skip_serializing_if = "str::is_empty")]
    nonce: &'a str,
    /// Discord returns the existing message instead of posting a second one for a nonce it
    /// has seen in the past few minutes.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    enforce_nonce: bool,
    /// Stored text must never ping `@everyone`, roles or users.
    allowed_mentions: AllowedMentions,
}

#[derive(Debug, Serialize)]
struct AllowedMentions {
    parse: [&'static str; 0],
}

#[derive(Debug, Serialize)]
struct EmbedBody<'a> {
    #[serde(skip_serializing_if = "String::is_empty")]
    title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    color: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fields: Vec<FieldBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    footer: Option<FooterBody>,
}

#[derive(Debug, Serialize)]
struct FieldBody {
    name: String,
    value: String,
    inline: bool,
}

#[derive(Debug, Serialize)]
struct FooterBody {
    text: String,
}

/// The body of `POST /channels/{id}/messages` for `message`, with `nonce` enforced and
/// mentions disabled. Text over a limit is cut and ends with `…`; embeds past the 10th, fields
/// past the 25th and whatever exceeds the 6000-character embed total are dropped.
pub fn create_message_body(message: &Message, nonce: &str) -> serde_json::Value {
    message_body(message, nonce)
}

/// The body of `PATCH /channels/{id}/messages/{message}` for `message`: the same as a post,
/// without a nonce.
pub fn edit_message_body(message: &Message) -> serde_json::Value {
    message_body(message, "")
}

/// Discord allows at most 5 buttons in a row.
const BUTTONS_PER_ROW: usize = 5;
/// Button labels: at most 80 characters.
const LABEL_MAX: usize = 80;

fn components(message: &Message) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = message
        .buttons
        .chunks(BUTTONS_PER_ROW)
        .map(|row| {
            let buttons: Vec<serde_json::Value> = row
                .iter()
                .map(|b| {
                    let style = match b.style {
                        ButtonStyle::Primary => 1,
                        ButtonStyle::Secondary => 2,
                        ButtonStyle::Success => 3,
                        ButtonStyle::Danger => 4,
                    };
                    serde_json::json!({ "type": 2, "style": style, "label": truncate(&b.label, LABEL_MAX), "custom_id": b.custom_id })
                })
                .collect();
            serde_json::json!({ "type": 1, "components": buttons })
        })
        .collect();
    serde_json::Value::Array(rows)
}

fn message_body(message: &Message, nonce: &str) -> serde_json::Value {
    let mut budget = EMBEDS_TOTAL_MAX;
    let embeds = message
        .embeds
        .iter()
        .take(EMBEDS_MAX)
        .map_while(|embed| embed_body(embed, &mut budget))
        .collect();
    let body = CreateMessage {
        content: truncate(&message.content, CONTENT_MAX),
        embeds,
        components: components(message),
        nonce,
        enforce_nonce: !nonce.is_empty(),
        allowed_mentions: AllowedMentions { parse: [] },
    };
    serde_json::to_value(&body).expect("a body of strings, numbers and bools always serialises")
}

/// One embed within what is left of the 6000-character budget; `None` once it is spent.
fn embed_body<'a>(embed: &'a Embed, budget: &mut usize) -> Option<EmbedBody<'a>> {
    if *budget == 0 {
        return None;
    }
    let title = take(&embed.title, TITLE_MAX, budget);
    let description = take(&embed.description, DESCRIPTION_MAX, budget);
    let mut fields = Vec::new();
    for field in embed.fields.iter().take(FIELDS_MAX) {
        let name = non_blank(&field.name);
        let value = non_blank(&field.value);
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
        url: embed.url.as_deref(),
        color: embed.color,
        fields,
        footer,
    })
}

fn non_blank(text: &str) -> &str {
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
