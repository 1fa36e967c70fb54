//! Domain results as Discord text and embeds, within Discord's limits (every
//! platform-neutral [`Message`] goes through [`message::render`]), and the one
//! `allowed_mentions` policy of every interaction reply: [`no_pings`]. Replies may echo what
//! a user typed (a lock reason with `<@id>` or `@everyone` in it); they never notify anyone.

use chrono::SecondsFormat;
use opsbot_commands::CommandError;
use opsbot_commands::audit::{AuditEvent, VerifyReport};
use opsbot_commands::chat::Message;
use opsbot_commands::whoami::WhoAmI;
use poise::serenity_prelude as serenity;

pub mod attachment;
mod components;
pub mod message;

use message::truncate;

/// Discord's limit on an embed description.
pub const EMBED_DESCRIPTION_MAX: usize = 4096;
/// Discord's limit on a message's content: a longer reply is refused, and the user sees
/// "The application did not respond".
pub const CONTENT_MAX: usize = 2000;
/// Arguments longer than this are cut in one-line listings; the dashboard shows them whole.
const ARGS_PREVIEW_MAX: usize = 120;

/// Mentions that interaction replies, follow-ups, edits and button updates may ping: none.
/// Sent explicitly, because Discord's default for interactions parses user mentions.
pub fn no_pings() -> serenity::CreateAllowedMentions {
    serenity::CreateAllowedMentions::new()
}

/// `text` cut to fit a message's content (it may echo what a user typed).
pub fn content(text: &str) -> String {
    truncate(text, CONTENT_MAX)
}

/// The reply to a failed command: user errors as written, internal ones by reference only;
/// cut to fit Discord's content limit (a refusal may quote the input).
pub fn error_text(error: &CommandError) -> String {
    content(&error_message(error))
}

fn error_message(error: &CommandError) -> String {
    match error {
        CommandError::Denied { .. } => {
            format!("⛔ {error}. Ask an admin for a role that grants it.")
        }
        CommandError::Internal { reference, .. } => format!(
            "⚠️ Something went wrong on our side. Nothing was changed. Reference: `{reference}` (the operators can find it in the log)."
        ),
        other => format!("❌ {other}"),
    }
}

/// A platform-neutral message as a reply (through the one translation, [`message::render`]).
pub fn reply(message: &Message) -> poise::CreateReply {
    message::render(message).reply()
}

/// A platform-neutral message as a follow-up of an interaction answered with a form.
pub fn followup(message: &Message) -> serenity::CreateInteractionResponseFollowup {
    message::render(message).followup()
}

/// A platform-neutral message replacing the message a button is on.
pub fn update(message: &Message) -> serenity::CreateInteractionResponseMessage {
    message::render(message).update()
}

pub fn whoami(who: &WhoAmI) -> String {
    let roles = if who.roles.is_empty() {
        "none".to_owned()
    } else {
        who.roles.join(", ")
    };
    let grants = if who.grants.is_empty() {
        "none (no role of yours is listed under [roles])".to_owned()
    } else {
        who.grants
            .iter()
            .map(|g| format!("`{g}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "**{}** (`{}`)\nroles: {roles}\npermissions: {grants}",
        escape_markdown(&who.name),
        who.id
    )
}

/// One line per event, newest first, cut to fit one embed.
pub fn recent_lines(events: &[AuditEvent]) -> String {
    if events.is_empty() {
        return "No events match.".to_owned();
    }
    let mut text = String::new();
    for event in events {
        let line = event_line(event);
        if text.len() + line.len() + 1 > EMBED_DESCRIPTION_MAX {
            text.push('…');
            break;
        }
        text.push_str(&line);
        text.push('\n');
    }
    text.trim_end().to_owned()
}

/// A page of `/audit recent`; `before` is the event a later page (the *Older* button) starts
/// below, and its heading says so.
pub fn recent_embed(events: &[AuditEvent], before: Option<i64>) -> serenity::CreateEmbed {
    serenity::CreateEmbed::new()
        .title(recent_title(events.len(), before))
        .description(recent_lines(events))
}

fn recent_title(count: usize, before: Option<i64>) -> String {
    let events = if count == 1 { "event" } else { "events" };
    match before {
        None => format!("Audit trail: {count} newest {events}"),
        Some(id) => format!("Audit trail: {count} older {events}, before #{id}"),
    }
}

fn event_line(event: &AuditEvent) -> String {
    let args = serde_json::to_string(&event.args).unwrap_or_default();
    let args = if args == "{}" {
        String::new()
    } else {
        format!(" {}", truncate(&args, ARGS_PREVIEW_MAX))
    };
    format!(
        "`#{}` {} **{}** `{}{}` → **{}**",
        event.id,
        event.at.to_rfc3339_opts(SecondsFormat::Secs, true),
        escape_markdown(&event.actor_name),
        event.command,
        args.replace('`', "'"),
        event.outcome
    )
}

pub fn verify(report: &VerifyReport) -> String {
    let mut text = if report.is_ok() {
        format!("✅ audit chain {}", report.summary())
    } else {
        format!("🚨 audit chain broken at {}", report.summary())
    };
    if let Some(head) = &report.head {
        text.push_str(&format!(
            "\nhead: position {} (event {}), hash `{}`",
            head.position, head.event_id, head.hash
        ));
    }
    if let Some(warning) = report.unsealed_warning() {
        text.push('\n');
        text.push_str(&warning);
    }
    text
}

/// Names are user-controlled: keep them from turning into formatting or mentions.
fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '_' | '`' | '~' | '|' | '>' | '\\' | '@') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_page_of_audit_recent_says_it_shows_older_events() {
        insta::assert_snapshot!(recent_title(10, None), @"Audit trail: 10 newest events");
        insta::assert_snapshot!(recent_title(1, None), @"Audit trail: 1 newest event");
        insta::assert_snapshot!(recent_title(10, Some(41)), @"Audit trail: 10 older events, before #41");
    }
    use chrono::{DateTime, Utc};
    use opsbot_commands::audit::{ChainHead, ChainProblem};

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    fn event(
        id: i64,
        name: &str,
        command: &str,
        args: serde_json::Value,
        outcome: &str,
    ) -> AuditEvent {
        AuditEvent {
            id,
            at: at(),
            actor_id: 1,
            actor_name: name.into(),
            source: "discord".into(),
            guild_id: None,
            channel_id: None,
            interaction_id: None,
            command: command.into(),
            args,
            outcome: outcome.into(),
            detail: String::new(),
            correlation_id: None,
            position: None,
            hash: None,
        }
    }

    #[test]
    fn whoami_reply() {
        let who = WhoAmI {
            id: 42,
            name: "ana_b".into(),
            roles: vec!["ops".into()],
            grants: vec!["audit:*".into(), "deploy:*".into()],
        };
        insta::assert_snapshot!(whoami(&who), @r"
        **ana\_b** (`42`)
        roles: ops
        permissions: `audit:*`, `deploy:*`
        ");
        let nobody = WhoAmI {
            id: 7,
            name: "bo".into(),
            roles: vec![],
            grants: vec![],
        };
        insta::assert_snapshot!(whoami(&nobody), @r"
        **bo** (`7`)
        roles: none
        permissions: none (no role of yours is listed under [roles])
        ");
    }

    #[test]
    fn recent_listing() {
        let events = vec![
            event(
                3,
                "ana",
                "audit recent",
                serde_json::json!({"count": 5}),
                "ok",
            ),
            event(
                2,
                "@everyone",
                "deploy run",
                serde_json::json!({"service": "`x`"}),
                "denied",
            ),
            event(1, "bo", "whoami", serde_json::json!({}), "ok"),
        ];
        insta::assert_snapshot!(recent_lines(&events), @r#"
        `#3` 2026-11-28T10:00:00Z **ana** `audit recent {"count":5}` → **ok**
        `#2` 2026-11-28T10:00:00Z **\@everyone** `deploy run {"service":"'x'"}` → **denied**
        `#1` 2026-11-28T10:00:00Z **bo** `whoami` → **ok**
        "#);
        assert_eq!(recent_lines(&[]), "No events match.");
        let many: Vec<_> = (0..200)
            .map(|i| {
                event(
                    i,
                    "ana",
                    "deploy run",
                    serde_json::json!({"reason": "x".repeat(200)}),
                    "ok",
                )
            })
            .collect();
        assert!(recent_lines(&many).len() <= EMBED_DESCRIPTION_MAX + 3);
    }

    #[test]
    fn verify_replies() {
        let ok = VerifyReport {
            verified: 12,
            head: Some(ChainHead {
                position: 12,
                event_id: 14,
                hash: "ab".repeat(32),
            }),
            problem: None,
            unsealed: 1,
            stale_unsealed: 0,
            oldest_unsealed_at: None,
        };
        insta::assert_snapshot!(verify(&ok), @r"
        ✅ audit chain ok: 12 events
        head: position 12 (event 14), hash `abababababababababababababababababababababababababababababababab`
        note: 1 recent events are not sealed yet (the sealer runs every 500ms)
        ");
        let broken = VerifyReport {
            verified: 3,
            head: None,
            problem: Some(ChainProblem {
                event_id: 42,
                message: "its contents do not match".into(),
            }),
            unsealed: 0,
            stale_unsealed: 0,
            oldest_unsealed_at: None,
        };
        insta::assert_snapshot!(verify(&broken), @"🚨 audit chain broken at event 42: its contents do not match");
    }

    #[test]
    fn refusals_fit_discords_content_limit() {
        let err = CommandError::Invalid(format!("unknown service \"{}\"", "x".repeat(10_000)));
        let text = error_text(&err);
        assert_eq!(text.chars().count(), CONTENT_MAX);
        assert!(text.starts_with("❌ unknown service \"xxx"));
        assert!(text.ends_with('…'));
        let short = CommandError::Invalid("no".into());
        assert_eq!(error_text(&short), "❌ no");
    }

    #[test]
    fn no_pings_parses_nothing() {
        assert_eq!(
            serde_json::to_value(no_pings()).expect("json"),
            serde_json::json!({"parse": [], "users": [], "roles": []})
        );
    }

    #[test]
    fn internal_errors_show_only_a_reference() {
        let err = CommandError::internal(std::io::Error::other("password=hunter2"));
        let text = error_text(&err);
        assert!(!text.contains("hunter2"));
        assert!(text.contains("Reference: `"));
    }
}
