//! The digest's sections, from rows to text: pure functions, no database, no clock. Each
//! section is a heading line and item lines; [`digest_message`] assembles the included ones
//! into one message and shortens every section ("+N more") until the whole fits Discord's
//! limits.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

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

/// A denied audit event in the window.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DenialRow {
    pub at: DateTime<Utc>,
    pub actor_name: String,
    pub command: String,
    pub detail: String,
}

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
        Section::Deploys => deploys(&data.deploys, window),
        Section::Incidents => incidents(&data.incidents, window),
        Section::Alerts => alerts(&data.alerts, window),
        Section::Audit => audit(&data.denials, &data.deploys, window),
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

fn deploys(rows: &[DeployRow], window: Window) -> (Text, Vec<Text>, bool) {
    let title = Text::new().strong("Deploys");
    let finished: Vec<&DeployRow> = rows
        .iter()
        .filter(|d| d.finished_at.is_some_and(|at| in_window(at, window)))
        .collect();
    if finished.is_empty() {
        return (title.plain(": none finished"), Vec::new(), true);
    }
    let mut by_outcome: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &finished {
        *by_outcome.entry(outcome_word(d)).or_default() += 1;
    }
    let counts: Vec<String> = by_outcome
        .iter()
        .map(|(outcome, n)| format!("{n} {outcome}"))
        .collect();
    let heading = title.plain(format!(
        ": {} ({})",
        plural(finished.len(), "finished", "finished"),
        counts.join(", ")
    ));
    let mut groups: BTreeMap<(&str, &str), Vec<&DeployRow>> = BTreeMap::new();
    for d in &finished {
        groups
            .entry((d.service.as_str(), d.environment.as_str()))
            .or_default()
            .push(d);
    }
    let mut items = Vec::new();
    for ((service, environment), deploys) in &groups {
        let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
        for d in deploys {
            *outcomes.entry(outcome_word(d)).or_default() += 1;
        }
        let counts: Vec<String> = outcomes.iter().map(|(o, n)| format!("{n} {o}")).collect();
        let mut leads: Vec<chrono::Duration> = deploys
            .iter()
            .filter(|d| d.state == "succeeded")
            .filter_map(|d| d.finished_at.map(|at| at - d.requested_at))
            .collect();
        leads.sort();
        let mut line = Text::new()
            .code(service.to_string())
            .plain(format!(" {environment}: {}", counts.join(", ")));
        if let (Some(median), Some(max)) = (leads.get(leads.len() / 2), leads.last()) {
            line = line.plain(format!(
                "; lead time median {}, max {}",
                human(*median),
                human(*max)
            ));
        }
        items.push(line);
    }
    for d in finished
        .iter()
        .filter(|d| d.state == "failed" || d.is_rollback)
    {
        let what = if d.is_rollback {
            "rolled back"
        } else {
            "failed"
        };
        let verb = if d.is_rollback && d.state == "succeeded" {
            format!("{what} to")
        } else if d.is_rollback {
            format!("rollback {} to", d.state)
        } else {
            what.to_owned()
        };
        items.push(
            Text::new()
                .code(d.service.clone())
                .plain(format!(" {} {verb} ", d.environment))
                .code(cut(&d.version))
                .plain(format!(" (#{}, by {})", d.id, cut(&d.requested_by_name))),
        );
    }
    (heading, items, false)
}

fn outcome_word(d: &DeployRow) -> &'static str {
    match (d.is_rollback, d.state.as_str()) {
        (true, _) => "rolled back",
        (_, "succeeded") => "succeeded",
        (_, "failed") => "failed",
        (_, "cancelled") => "cancelled",
        (_, "rejected") => "rejected",
        (_, "expired") => "expired",
        _ => "other",
    }
}

fn incidents(rows: &[IncidentRow], window: Window) -> (Text, Vec<Text>, bool) {
    let title = Text::new().strong("Incidents");
    let opened: Vec<&IncidentRow> = rows
        .iter()
        .filter(|i| in_window(i.started_at, window))
        .collect();
    let resolved: Vec<&IncidentRow> = rows
        .iter()
        .filter(|i| i.status == "resolved" && i.resolved_at.is_some_and(|at| in_window(at, window)))
        .collect();
    let open: Vec<&IncidentRow> = rows
        .iter()
        .filter(|i| i.status != "resolved" && i.started_at <= window.end)
        .collect();
    if opened.is_empty() && resolved.is_empty() && open.is_empty() {
        return (title.plain(": none"), Vec::new(), true);
    }
    let heading = title.plain(format!(
        ": {} opened, {} resolved, {} still open",
        opened.len(),
        resolved.len(),
        open.len()
    ));
    let name = |i: &IncidentRow| {
        Text::new().strong(format!("#{}", i.id)).plain(format!(
            " {} ({})",
            cut(&i.title),
            i.severity
        ))
    };
    let mut items = Vec::new();
    for i in &opened {
        items.push(
            Text::new()
                .plain("opened ")
                .append(name(i))
                .plain(" at ")
                .time(i.started_at, TimeStyle::DateTime),
        );
    }
    for i in &resolved {
        let took = i
            .resolved_at
            .map(|at| at - i.started_at)
            .unwrap_or_default();
        items.push(
            Text::new()
                .plain("resolved ")
                .append(name(i))
                .plain(format!(" after {}", human(took))),
        );
    }
    for i in &open {
        let commander = i.commander.as_deref().map_or_else(
            || "no commander".to_owned(),
            |c| format!("commander {}", cut(c)),
        );
        items.push(
            Text::new()
                .plain("still open ")
                .append(name(i))
                .plain(format!(
                    ": {}, {commander}, open {}",
                    i.status,
                    human(window.end - i.started_at)
                )),
        );
    }
    (heading, items, false)
}

/// An alert's name and service, the section's grouping.
type AlertKey<'a> = (&'a str, &'a str);

/// How many of the noisiest alert names the section lists.
pub const NOISIEST: usize = 5;

fn alerts(rows: &[AlertRow], window: Window) -> (Text, Vec<Text>, bool) {
    let title = Text::new().strong("Alerts");
    let fired: Vec<&AlertRow> = rows
        .iter()
        .filter(|a| in_window(a.first_seen_at, window))
        .collect();
    let resolved: Vec<&AlertRow> = rows
        .iter()
        .filter(|a| a.resolved_at.is_some_and(|at| in_window(at, window)))
        .collect();
    if fired.is_empty() && resolved.is_empty() {
        return (title.plain(": none fired or resolved"), Vec::new(), true);
    }
    let held = fired.iter().filter(|a| a.held).count();
    let held = if held > 0 {
        format!(" ({held} held for digests)")
    } else {
        String::new()
    };
    let heading = title.plain(format!(
        ": {} fired{held}, {} resolved",
        fired.len(),
        resolved.len()
    ));
    // (alertname, service) → (fired, resolved)
    let mut groups: BTreeMap<AlertKey<'_>, (usize, usize)> = BTreeMap::new();
    for a in &fired {
        groups.entry((&a.alertname, &a.service)).or_default().0 += 1;
    }
    for a in &resolved {
        groups.entry((&a.alertname, &a.service)).or_default().1 += 1;
    }
    let mut noisiest: Vec<(AlertKey<'_>, (usize, usize))> = groups.into_iter().collect();
    noisiest.sort_by(|a, b| (b.1.0 + b.1.1).cmp(&(a.1.0 + a.1.1)).then(a.0.cmp(&b.0)));
    let mut items = Vec::new();
    for ((alertname, service), (f, r)) in noisiest.iter().take(NOISIEST) {
        items.push(
            Text::new()
                .code(cut(alertname))
                .plain(format!(" · {}: fired {f}×, resolved {r}×", label(service))),
        );
    }
    if noisiest.len() > NOISIEST {
        items.push(Text::from(format!(
            "{} more alert names",
            noisiest.len() - NOISIEST
        )));
    }
    let longest = rows
        .iter()
        .filter(|a| a.first_seen_at <= window.end)
        .max_by_key(|a| a.resolved_at.unwrap_or(window.end) - a.first_seen_at);
    if let Some(a) = longest {
        let still = if a.resolved_at.is_none() {
            ", still firing"
        } else {
            ""
        };
        items.push(
            Text::new()
                .plain("longest firing: ")
                .code(cut(&a.alertname))
                .plain(format!(
                    " · {}, {}{still}",
                    label(&a.service),
                    human(a.resolved_at.unwrap_or(window.end) - a.first_seen_at)
                )),
        );
    }
    let mut acked: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut silenced: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for a in rows {
        if let Some(who) = a.acked_by_name.as_deref() {
            acked.entry(who).or_default().push(&a.alertname);
        }
        if let Some(who) = a.silenced_by_name.as_deref() {
            silenced.entry(who).or_default().push(&a.alertname);
        }
    }
    for (what, people) in [("acked", acked), ("silenced", silenced)] {
        for (who, mut names) in people {
            names.sort_unstable();
            names.dedup();
            items.push(Text::from(cut(&format!(
                "{what} by {who}: {}",
                names.join(", ")
            ))));
        }
    }
    (heading, items, false)
}

fn label(service: &str) -> &str {
    if service.is_empty() {
        "no service"
    } else {
        service
    }
}

fn audit(denials: &[DenialRow], deploys: &[DeployRow], window: Window) -> (Text, Vec<Text>, bool) {
    let title = Text::new().strong("Audit");
    let denials: Vec<&DenialRow> = denials.iter().filter(|d| in_window(d.at, window)).collect();
    let overrides: Vec<&DeployRow> = deploys
        .iter()
        .filter(|d| d.freeze_overridden && in_window(d.requested_at, window))
        .collect();
    if denials.is_empty() && overrides.is_empty() {
        return (title.plain(": no denials, no overrides"), Vec::new(), true);
    }
    let heading = title.plain(format!(
        ": {}, {}",
        plural(denials.len(), "denial", "denials"),
        plural(overrides.len(), "freeze override", "freeze overrides")
    ));
    // (actor, command, what was missing) → (count, last at)
    let mut tried: BTreeMap<(&str, &str, String), (usize, DateTime<Utc>)> = BTreeMap::new();
    for d in &denials {
        let entry = tried
            .entry((&d.actor_name, &d.command, missing(&d.detail)))
            .or_insert((0, d.at));
        entry.0 += 1;
        entry.1 = entry.1.max(d.at);
    }
    let mut tried: Vec<_> = tried.into_iter().collect();
    tried.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
    let mut items = Vec::new();
    for ((actor, command, why), (count, last)) in tried {
        let times = if count > 1 {
            format!(" {count}×, last at ")
        } else {
            " at ".to_owned()
        };
        items.push(
            Text::new()
                .plain(format!("{} tried ", cut(actor)))
                .code(cut(command))
                .plain(format!(" {why}{times}"))
                .time(last, TimeStyle::DateTime),
        );
    }
    for d in overrides {
        items.push(
            Text::new()
                .plain(format!("{} overrode a freeze: ", cut(&d.requested_by_name)))
                .code(d.service.clone())
                .plain(format!(" {} ", d.environment))
                .code(cut(&d.version))
                .plain(format!(" (#{})", d.id)),
        );
    }
    (heading, items, false)
}

/// "without `deploy:production`" from a denial's detail ("you need the `P` permission to …"),
/// else the detail itself.
fn missing(detail: &str) -> String {
    let permission = detail
        .strip_prefix("you need the `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(permission, _)| permission);
    match permission {
        Some(p) => format!("without {p}"),
        None => format!("({})", cut(detail)),
    }
}

#[cfg(test)]
#[path = "sections_tests.rs"]
mod tests;
