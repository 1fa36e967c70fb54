//! What the shell prints: each emulator event as text for people or as one JSON line, and the
//! attached files it saves.

use serde_json::{Value, json};

use crate::emulator::{EmulatorEvent, GuildNames};

use super::forms;
use super::markdown::{self, Style};

/// Where the shell saves the files attached to messages.
pub const ATTACHMENTS_DIR: &str = ".opsbot/shell-attachments";

/// Saves an event's attached files under `dir` (the shell uses [`ATTACHMENTS_DIR`]);
/// returns their paths.
pub fn save_attachments(event: &EmulatorEvent, dir: &std::path::Path) -> Vec<String> {
    if event.files.is_empty() {
        return Vec::new();
    }
    if let Err(e) = std::fs::create_dir_all(dir) {
        tracing::warn!(error = %e, dir = %dir.display(), "cannot create the attachments directory; attachments are not saved");
        return Vec::new();
    }
    event
        .files
        .iter()
        .filter_map(|(name, bytes)| {
            // Names come from the bot; keep them to safe characters and inside the directory.
            let safe: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let path = dir
                .join(format!(
                    "{}-{}",
                    event.message_id.unwrap_or_default(),
                    safe.trim_start_matches('.')
                ))
                .display()
                .to_string();
            match std::fs::write(&path, bytes) {
                Ok(()) => Some(path),
                Err(e) => {
                    tracing::warn!(error = %e, path, "cannot save an attachment");
                    None
                }
            }
        })
        .collect()
}

/// One `--json` line; `attachments` are the paths the files were saved to.
pub fn event_json(event: &EmulatorEvent, input: Option<&str>, attachments: &[String]) -> Value {
    let mut value = json!({
        "event": event.event,
        "channel": event.channel,
        "channel_id": event.channel_id.to_string(),
        "content": event.content,
        "embeds": event.embeds,
        "components": event.components,
        "attachments": attachments,
        "ephemeral": event.ephemeral,
    });
    if let Some(input) = input {
        value["input"] = json!(input);
    }
    if let Some(id) = event.message_id {
        value["message_id"] = json!(id.to_string());
    }
    value
}

/// An event as text for people; `attachments` are the saved files. Discord's markup is
/// rendered for the terminal ([`markdown`]), mentions named from `names`.
pub fn event_text(
    event: &EmulatorEvent,
    attachments: &[String],
    names: &GuildNames,
    style: &Style,
) -> String {
    let md = |text: &str| markdown::render(text, names, style);
    let mut text = match event.event {
        "channel_created" => {
            style.paint("2", &format!("+ channel #{} created", event.channel), "22")
        }
        "modal" => return forms::modal_text(event),
        "choices" => return format!("[choices]\n{}", event.content),
        kind => {
            let header = format!(
                "[{kind} in #{}{}]",
                event.channel,
                if event.ephemeral {
                    ", only you can see this"
                } else {
                    ""
                }
            );
            match kind {
                "refused" | "error" => style.paint("31", &header, "39"),
                _ => style.paint("2", &header, "22"),
            }
        }
    };
    if !event.content.is_empty() {
        text.push('\n');
        text.push_str(&md(&event.content));
    }
    for embed in &event.embeds {
        // The embed's colour bar, in its colour when colours are on.
        let bar = match embed["color"].as_u64().filter(|_| style.color) {
            Some(rgb) => format!(
                "\x1b[38;2;{};{};{}m┃\x1b[39m",
                (rgb >> 16) & 0xff,
                (rgb >> 8) & 0xff,
                rgb & 0xff
            ),
            None => "┃".to_owned(),
        };
        let mut line = |content: &str| {
            for part in content.split('\n') {
                text.push_str(&format!("\n{bar} {part}"));
            }
        };
        if let Some(title) = embed["title"].as_str() {
            line(&style.paint("1", &md(title), "22"));
        }
        if let Some(description) = embed["description"].as_str() {
            line(&md(description));
        }
        for field in embed["fields"].as_array().into_iter().flatten() {
            let name = md(field["name"].as_str().unwrap_or_default());
            line(&format!(
                "{}: {}",
                style.paint("1", &name, "22"),
                md(field["value"].as_str().unwrap_or_default())
            ));
        }
        if let Some(footer) = embed["footer"]["text"].as_str() {
            line(&style.paint("2", &md(footer), "22"));
        }
    }
    for (index, (name, bytes)) in event.files.iter().enumerate() {
        text.push_str(&format!(
            "\n{}",
            crate::emulator::attachments::describe(name, bytes)
        ));
        if let Some(path) = attachments.get(index) {
            text.push_str(&format!(", saved as {path}"));
        }
    }
    for row in &event.components {
        let labels: Vec<String> = row["components"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                if c["type"] == 3 {
                    let options: Vec<&str> = c["options"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|o| o["label"].as_str())
                        .collect();
                    let placeholder = c["placeholder"].as_str().unwrap_or("choose");
                    return Some(format!("[{placeholder} ▾ {}]", options.join(" | ")));
                }
                c["label"].as_str().map(|l| format!("[{l}]"))
            })
            .collect();
        if !labels.is_empty() {
            text.push_str(&format!("\n{}", labels.join(" ")));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::Zone;

    fn event(content: &str, embeds: Vec<Value>) -> EmulatorEvent {
        EmulatorEvent {
            event: "post",
            interaction_id: None,
            channel_id: 1,
            channel: "deploys".to_owned(),
            message_id: Some(2),
            content: content.to_owned(),
            embeds,
            components: Vec::new(),
            attachments: Vec::new(),
            files: Vec::new(),
            ephemeral: false,
            allowed_mentions: None,
            pings: Default::default(),
        }
    }

    fn style(color: bool) -> Style {
        Style {
            color,
            zone: Zone::Fixed(chrono::FixedOffset::east_opt(0).expect("UTC")),
            now: 0,
        }
    }

    fn names() -> GuildNames {
        GuildNames {
            users: [(7, "ana".to_owned())].into(),
            ..GuildNames::default()
        }
    }

    #[test]
    fn a_post_with_an_embed_reads_without_markup() {
        let embed = json!({
            "title": "deploy #1 **api** v2 → staging",
            "description": "**running**: `./scripts/deploy.sh`",
            "color": 0x1f6feb,
            "fields": [{ "name": "requested by", "value": "<@7>" }],
            "footer": { "text": "correlation c-1" },
        });
        let post = event("🚀 deploy #1 **running** (by <@7>)", vec![embed]);
        insta::assert_snapshot!(event_text(&post, &[], &names(), &style(false)), @r"
        [post in #deploys]
        🚀 deploy #1 running (by @ana)
        ┃ deploy #1 api v2 → staging
        ┃ running: ./scripts/deploy.sh
        ┃ requested by: @ana
        ┃ correlation c-1
        ");
    }

    #[test]
    fn colours_paint_the_embed_bar_in_its_colour() {
        let post = event("", vec![json!({ "description": "x", "color": 0x1f6feb })]);
        let text = event_text(&post, &[], &names(), &style(true)).replace('\x1b', "⎋");
        insta::assert_snapshot!(text, @r"
        ⎋[2m[post in #deploys]⎋[22m
        ⎋[38;2;31;111;235m┃⎋[39m x
        ");
    }
}
