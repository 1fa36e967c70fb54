//! The digest's sections, from rows to text: pure functions, no database, no clock. Each
//! section is a heading line and item lines; [`digest_message`] assembles the included ones
//! into one message and shortens every section ("+N more") until the whole fits Discord's
//! limits.

use chrono::{DateTime, Utc};

mod alerts;
mod audit;
mod deploys;
mod incidents;

use super::Section;
use crate::chat::{Embed, Message, Span, Text, TimeStyle};

/// The window a digest covers: `(start, end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A deploy or rollback requested or finished in the window.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DeployRow {
    pub id: i64,
    pub service: String,
    pub environment: String,
    pub version: String,
    pub state: String,
    pub is_rollback: bool,
    pub freeze_overridden: bool,
    pub requested_by_name: String,
    pub requested_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// An incident opened or resolved in the window, or still open at its end.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct IncidentRow {
    pub id: i64,
    pub title: String,
    pub severity: String,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub commander: Option<String>,
}

/// An alert group that fired or resolved in the window.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AlertRow {
    pub alertname: String,
    pub service: String,
    pub status: String,
    pub first_seen_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub acked_by_name: Option<String>,
    pub silenced_by_name: Option<String>,
    /// The `[[alerts.routes]]` entry that routed the group.
    pub route_index: i32,
    /// Its route has `mode = "digest"`: the group was never posted, only summarised here.
    #[sqlx(skip)]
    pub held: bool,
}

/// Denied audit events in the window, by actor, command and reason.
pub type DenialRow = crate::audit::Denials;

/// Everything one digest shows, read for its window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DigestData {
    pub deploys: Vec<DeployRow>,
    pub incidents: Vec<IncidentRow>,
    pub alerts: Vec<AlertRow>,
    pub denials: Vec<DenialRow>,
}

/// One section as text: a heading and its items (each one line).
#[derive(Debug, Clone, PartialEq)]
pub struct SectionText {
    pub heading: Text,
    pub items: Vec<Text>,
    /// Nothing happened in the window.
    pub quiet: bool,
}

/// The embed description's limit is 4096 characters; this leaves room for the window line
/// and the link, measured conservatively (see [`rendered_len`]).
pub const DESCRIPTION_BUDGET: usize = 3800;
/// Items per section before "+N more" when everything fits.
pub const MAX_ITEMS: usize = 10;
/// Longest single item line (a long incident title, a denial's detail), in characters.
const ITEM_MAX: usize = 160;

/// What a message needs besides the rows.
#[derive(Debug, Clone)]
pub struct Heading<'a> {
    pub digest: &'a str,
    /// IANA zone name the schedule runs in (shown in the footer).
    pub zone: &'a str,
    pub window: Window,
    /// `[http] public_url`: the dashboard, for the link to the same window.
    pub public_url: Option<&'a str>,
}

/// Whether the window had nothing to report in any of `include`.
pub fn is_quiet(include: &[Section], data: &DigestData, window: Window) -> bool {
    include
        .iter()
        .all(|section| section_text(*section, data, window, MAX_ITEMS).quiet)
}

/// The digest as one message: an embed whose title links the dashboard for the window.
pub fn digest_message(heading: &Heading<'_>, include: &[Section], data: &DigestData) -> Message {
    let link = dashboard_link(heading.public_url, heading.window);
    let mut description = Text::new();
    for max_items in (0..=MAX_ITEMS).rev() {
        description = describe(heading, include, data, max_items, link.as_deref());
        if rendered_len(&description) <= DESCRIPTION_BUDGET {
            break;
        }
    }
    Message {
        embeds: vec![Embed {
            title: format!("{} digest", heading.digest),
            description,
            url: link,
            color: Some(0x5865F2),
            fields: Vec::new(),
            footer: Some(format!("schedule in {}", heading.zone)),
        }],
        ..Message::default()
    }
}

fn describe(
    heading: &Heading<'_>,
    include: &[Section],
    data: &DigestData,
    max_items: usize,
    link: Option<&str>,
) -> Text {
    let window = heading.window;
    let mut text = Text::new()
        .plain("From ")
        .time(window.start, TimeStyle::DateTime)
        .plain(" to ")
        .time(window.end, TimeStyle::DateTime);
    if is_quiet(include, data, window) {
        text = text.plain("\n\nAll quiet: nothing to report.");
    } else {
        for section in include {
            let section = section_text(*section, data, window, max_items);
            text = text.plain("\n\n").append(section.heading);
            for item in section.items {
                text = text.plain("\n• ").append(item);
            }
        }
    }
    if let Some(url) = link {
        text = text
            .plain("\n\n")
            .link("Audit log for this window", url.to_owned());
    }
    text
}

/// The dashboard's audit page filtered to the window.
pub fn dashboard_link(public_url: Option<&str>, window: Window) -> Option<String> {
    let base = public_url?.trim_end_matches('/');
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Some(format!(
        "{base}/?since={}&until={}",
        time(window.start),
        time(window.end)
    ))
}

/// An upper bound of the text's length once any platform spells it (markup around emphasis,
/// code and links; a mention or a time as its longest form).
pub fn rendered_len(text: &Text) -> usize {
    text.spans
        .iter()
        .map(|span| match span {
            Span::Plain { text } => text.chars().count(),
            Span::Strong { text } => text.chars().count() + 4,
            Span::Code { text } => text.chars().count() + 4,
            Span::Block { text } => text.chars().count() + 12,
            Span::Link { label, url } => label.chars().count() + url.chars().count() + 4,
            Span::Time { .. } => 24,
            Span::User { .. } | Span::Role { .. } => 24,
        })
        .sum()
}

/// One section's text for the window, at most `max_items` items (then "+N more").
pub fn section_text(
    section: Section,
    data: &DigestData,
    window: Window,
    max_items: usize,
) -> SectionText {
    let (heading, items, quiet) = match section {
        Section::Deploys => deploys::section(&data.deploys, window),
        Section::Incidents => incidents::section(&data.incidents, window),
        Section::Alerts => alerts::section(&data.alerts, window),
        Section::Audit => audit::section(&data.denials, &data.deploys, window),
    };
    SectionText {
        heading,
        items: shorten(items, max_items),
        quiet,
    }
}

fn shorten(mut items: Vec<Text>, max_items: usize) -> Vec<Text> {
    if items.len() > max_items {
        let more = items.len() - max_items;
        items.truncate(max_items);
        items.push(Text::from(format!("+{more} more")));
    }
    items
}

fn cut(text: &str) -> String {
    if text.chars().count() <= ITEM_MAX {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(ITEM_MAX - 1).collect();
        out.push('…');
        out
    }
}

/// `3d 4h`, `1h 20m`, `12m`, `40s`.
pub fn human(duration: chrono::Duration) -> String {
    let secs = duration.num_seconds().max(0);
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m"),
        (0, _, 0) => format!("{h}h"),
        (0, _, _) => format!("{h}h {m}m"),
        (_, 0, _) => format!("{d}d"),
        _ => format!("{d}d {h}h"),
    }
}

fn in_window(at: DateTime<Utc>, window: Window) -> bool {
    at > window.start && at <= window.end
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests;
