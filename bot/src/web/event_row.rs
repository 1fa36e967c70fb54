//! An audit event as the dashboard's tables show it (`templates/rows.html`, and the live
//! tail's JSON, which app.js turns into the same row): the time as a `<time>` in UTC (app.js
//! shows it in the viewer's zone), every reference a link — the actor to the log filtered by
//! them, the command to its log, a deploy or an incident to its page, the channel to Discord
//! — the arguments as `key: value` chips, a long detail folded to its first line.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use opsbot_commands::audit::AuditEvent;
use opsbot_commands::audit::browse::Reference;
use serde::Serialize;

/// A detail's first line is cut here in the folded view (the whole detail unfolds).
const FIRST_LINE_MAX: usize = 120;

pub fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn utc(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `value` for a query string.
pub fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A Discord link to a channel (or a message in it) when the ids are known.
pub fn discord_link(guild: Option<i64>, channel: Option<i64>, message: Option<i64>) -> String {
    match (guild, channel, message) {
        (Some(g), Some(c), Some(m)) => format!("https://discord.com/channels/{g}/{c}/{m}"),
        (Some(g), Some(c), None) => format!("https://discord.com/channels/{g}/{c}"),
        _ => String::new(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: i64,
    pub at_iso: String,
    pub at_utc: String,
    pub actor: String,
    /// The log filtered by this actor.
    pub actor_href: String,
    pub source: String,
    pub command: String,
    pub command_href: String,
    /// The arguments as `(key, value)`; strings as they are, anything else as JSON.
    pub chips: Vec<(String, String)>,
    pub outcome: String,
    pub detail: String,
    /// The detail's first line, cut; the same as `detail` when nothing is folded.
    pub detail_first: String,
    pub folded: bool,
    /// `(href, label)` of the deploy or incident this event belongs to.
    pub reference: Option<(String, String)>,
    pub channel_href: String,
    /// The event whose page this is (in a story).
    pub current: bool,
}

/// `args` as chips: each key of an object with its value.
pub fn chips(args: &serde_json::Value) -> Vec<(String, String)> {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match args {
        serde_json::Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        serde_json::Value::Null => Vec::new(),
        other => vec![("value".to_owned(), text(other))],
    }
}

/// The first line of `detail`, cut to [`FIRST_LINE_MAX`] characters, and whether anything
/// was left out.
pub fn first_line(detail: &str) -> (String, bool) {
    let line = detail.lines().next().unwrap_or_default();
    let multi = detail.trim_end().contains('\n');
    if line.chars().count() > FIRST_LINE_MAX {
        let cut: String = line.chars().take(FIRST_LINE_MAX).collect();
        (format!("{cut}…"), true)
    } else {
        (line.to_owned(), multi)
    }
}

impl Row {
    pub fn of(e: &AuditEvent, references: &BTreeMap<uuid::Uuid, Reference>) -> Row {
        let (detail_first, folded) = first_line(&e.detail);
        let actor_filter = if e.actor_id != 0 {
            e.actor_id.to_string()
        } else {
            e.actor_name.clone()
        };
        Row {
            id: e.id,
            at_iso: iso(e.at),
            at_utc: utc(e.at),
            actor: e.actor_name.clone(),
            actor_href: format!("/?actor={}", encode(&actor_filter)),
            source: e.source.clone(),
            command_href: format!("/?command={}", encode(&e.command)),
            command: e.command.clone(),
            chips: chips(&e.args),
            outcome: e.outcome.clone(),
            detail: e.detail.clone(),
            detail_first,
            folded,
            reference: e
                .correlation_id
                .and_then(|c| references.get(&c))
                .map(|r| match r {
                    Reference::Deploy(id) => (format!("/deploys/{id}"), format!("deploy #{id}")),
                    Reference::Incident(id) => {
                        (format!("/incidents/{id}"), format!("incident #{id}"))
                    }
                }),
            channel_href: discord_link(e.guild_id, e.channel_id, None),
            current: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_become_chips_and_details_fold_to_their_first_line() {
        let args = serde_json::json!({"service": "api", "override": true, "n": 3});
        assert_eq!(
            chips(&args),
            [
                ("n".to_owned(), "3".to_owned()),
                ("override".to_owned(), "true".to_owned()),
                ("service".to_owned(), "api".to_owned()),
            ]
        );
        assert!(chips(&serde_json::json!({})).is_empty());
        assert_eq!(first_line("one line"), ("one line".to_owned(), false));
        assert_eq!(first_line("first\nsecond"), ("first".to_owned(), true));
        let (cut, folded) = first_line(&"x".repeat(200));
        assert!(folded && cut.ends_with('…') && cut.chars().count() == 121);
        assert_eq!(
            discord_link(Some(1), Some(2), Some(3)),
            "https://discord.com/channels/1/2/3"
        );
        assert_eq!(discord_link(None, Some(2), None), "");
    }
}
