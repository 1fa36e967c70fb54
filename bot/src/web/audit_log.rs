//! The audit log (`/?actor=ana&command=deploy&outcome=denied&since=2026-11-28`): pickers of
//! the known outcomes, sources and commands (groups included), quick time ranges beside the
//! RFC 3339 fields, how many events match (exact up to 10,000), keyset pages with "Older"
//! and "Newer" links, and a live tail (`/events/stream`) that keeps the filters and can be
//! paused. One event (`/events/{id}`) shows its arguments, its chain position and the whole
//! story of its correlation id, itself marked.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{SecondsFormat, Utc};
use futures_util::stream::Stream;
use opsbot_commands::audit::browse::COUNT_BOUND;
use opsbot_commands::audit::{AuditEvent, AuditQuery, DashboardView, Outcome};
use opsbot_commands::{CommandError, Source};

use super::WebState;
use super::api::{parse_filters, query_pairs};
use super::auth::Principal;
use super::errors;
use super::event_row::{Row, discord_link};
use super::pages::{StoryPage, StoryQuery, render, story_page, view_of};

/// The live tail looks for new events this often.
const TAIL_POLL: Duration = Duration::from_secs(1);
/// The quick time ranges beside the fields: label and length.
const QUICK_RANGES: [(&str, i64); 4] = [
    ("1 h", 3600),
    ("24 h", 86_400),
    ("7 d", 7 * 86_400),
    ("30 d", 30 * 86_400),
];

/// `pairs` as a query string.
fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The given filters, without `skip`ped names and empty values.
fn kept<'a>(params: &'a [(String, String)], skip: &[&str]) -> Vec<(&'a str, &'a str)> {
    params
        .iter()
        .filter(|(k, v)| !skip.contains(&k.as_str()) && !v.is_empty())
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Rows of `events` with their deploy and incident links.
async fn rows(
    state: &WebState,
    view: &DashboardView,
    events: &[AuditEvent],
) -> Result<Vec<Row>, CommandError> {
    let mut ids: Vec<uuid::Uuid> = events.iter().filter_map(|e| e.correlation_id).collect();
    ids.sort();
    ids.dedup();
    let references = if ids.is_empty() {
        BTreeMap::new()
    } else {
        state.desk.audit_references(view, &ids).await?
    };
    Ok(events.iter().map(|e| Row::of(e, &references)).collect())
}

#[derive(Debug, Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub who: String,
    pub csrf: String,
    pub rows: Vec<Row>,
    pub filters: Vec<(String, String)>,
    pub error: String,
    pub older: Option<String>,
    /// The query of the newer page (empty: the first page), when this is an older one.
    pub newer: Option<String>,
    pub newest_id: i64,
    pub live: bool,
    /// The filters, for the CSV and JSONL links and the live tail (no cursor or limit).
    pub export_query: String,
    /// "42 events match", "10,000+ events match".
    pub count: String,
    pub outcomes: Vec<(&'static str, bool)>,
    pub sources: Vec<(&'static str, bool)>,
    /// `(command, is a group, selected)`.
    pub commands: Vec<(String, bool, bool)>,
    /// `(label, query)` of each quick time range.
    pub ranges: Vec<(&'static str, String)>,
}

impl AuditPage {
    pub fn filter(&self, name: &str) -> String {
        self.filters
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

fn count_text(count: i64) -> String {
    match count {
        c if c > COUNT_BOUND => format!("{}+ events match", thousands(COUNT_BOUND)),
        1 => "1 event matches".to_owned(),
        c => format!("{} events match", thousands(c)),
    }
}

/// `10000` as `10,000`.
fn thousands(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub async fn audit_log(
    State(state): State<WebState>,
    Extension(who): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> Response {
    let view = match view_of(&state, &who, "/").await {
        Ok(view) => view,
        Err(refused) => return refused,
    };
    let params = query_pairs(raw.as_deref());
    let given = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let paged = params.iter().any(|(k, v)| k == "cursor" && !v.is_empty());
    let now = Utc::now();
    let mut page = AuditPage {
        who: who.name.clone(),
        csrf: who.csrf.clone(),
        rows: Vec::new(),
        filters: params.clone(),
        error: String::new(),
        older: None,
        newer: None,
        newest_id: 0,
        live: !paged,
        export_query: query_string(kept(&params, &["cursor", "limit"])),
        count: String::new(),
        outcomes: Outcome::ALL
            .iter()
            .map(|o| (o.as_str(), o.as_str() == given("outcome")))
            .collect(),
        sources: Source::ALL
            .iter()
            .map(|s| (s.as_str(), s.as_str() == given("source")))
            .collect(),
        commands: Vec::new(),
        ranges: QUICK_RANGES
            .iter()
            .map(|(label, secs)| {
                let since = (now - chrono::Duration::seconds(*secs))
                    .to_rfc3339_opts(SecondsFormat::Secs, true);
                let mut pairs = kept(&params, &["cursor", "since", "until"]);
                pairs.push(("since", &since));
                (*label, query_string(pairs))
            })
            .collect(),
    };
    let mut status = StatusCode::OK;
    match state.desk.audit_commands(&view).await {
        Ok(commands) => {
            let chosen = given("command");
            page.commands = commands
                .into_iter()
                .map(|(c, group)| {
                    let selected = c == chosen;
                    (c, group, selected)
                })
                .collect();
            if !chosen.is_empty() && !page.commands.iter().any(|(c, _, _)| *c == chosen) {
                page.commands.push((chosen, false, true));
            }
        }
        Err(e) => return errors::domain(Some(&who), &e),
    }
    match parse_filters(&params) {
        Err(e) => {
            status = StatusCode::BAD_REQUEST;
            page.error = e.to_string();
            page.live = false;
        }
        Ok(filter) => {
            let (result, count) = tokio::join!(
                state.desk.audit_page(&view, &filter),
                state.desk.audit_count(&view, &filter)
            );
            let listed = match result {
                Ok(result) => rows(&state, &view, &result.events)
                    .await
                    .map(|rows| (result, rows)),
                Err(e) => Err(e),
            };
            match (listed, count) {
                (Ok((result, rows)), Ok(count)) => {
                    page.count = count_text(count);
                    page.newest_id = result.events.first().map_or(0, |e| e.id);
                    page.rows = rows;
                    page.older = result.next_cursor.map(|cursor| {
                        let cursor = cursor.to_string();
                        let mut pairs = kept(&params, &["cursor"]);
                        pairs.push(("cursor", &cursor));
                        query_string(pairs)
                    });
                    if paged {
                        match newer_page(&state, &view, &filter, &params, page.newest_id).await {
                            Ok(newer) => page.newer = Some(newer),
                            Err(e) => return errors::domain(Some(&who), &e),
                        }
                    }
                }
                (Err(e), _) | (_, Err(e)) => {
                    return errors::domain(Some(&who), &e);
                }
            }
        }
    }
    let mut response = render(&page);
    if response.status() == StatusCode::OK {
        *response.status_mut() = status;
    }
    response
}

/// The query of the page just newer than one whose newest event is `newest_id`: the first
/// page when fewer than a page of events are newer.
async fn newer_page(
    state: &WebState,
    view: &DashboardView,
    filter: &AuditQuery,
    params: &[(String, String)],
    newest_id: i64,
) -> Result<String, CommandError> {
    // One more than a page: if that many are newer, the newer page is not the first one.
    let newer = state
        .desk
        .audit_newer_matching(view, filter, newest_id, filter.limit + 1)
        .await?;
    let mut pairs = kept(params, &["cursor"]);
    let cursor;
    if newer.len() as i64 > filter.limit
        && let Some(last) = newer.get(filter.limit as usize - 1)
    {
        cursor = (last.id + 1).to_string();
        pairs.push(("cursor", &cursor));
    }
    Ok(query_string(pairs))
}

#[derive(Debug, Template)]
#[template(path = "event.html")]
pub struct EventPage {
    pub who: String,
    pub csrf: String,
    pub row: Row,
    pub actor_id: i64,
    pub interaction_id: String,
    pub channel_id: String,
    pub channel_href: String,
    pub correlation_id: String,
    pub position: String,
    pub hash: String,
    pub story: StoryPage,
}

pub async fn event_page(
    State(state): State<WebState>,
    Extension(who): Extension<Principal>,
    super::errors::PagePath(id): super::errors::PagePath<String>,
    errors::PageQuery(at): errors::PageQuery<StoryQuery>,
) -> Response {
    let view = match view_of(&state, &who, "event").await {
        Ok(view) => view,
        Err(refused) => return refused,
    };
    let Some(id) = errors::id_of(&id) else {
        return errors::not_an_id(&who, &id, "an event");
    };
    let event = match state.desk.audit_event(&view, id).await {
        Ok(Some(event)) => event,
        Ok(None) => {
            return errors::no_such(
                &who,
                &format!("event {id}"),
                "The audit log lists every event.",
            );
        }
        Err(e) => return errors::domain(Some(&who), &e),
    };
    let story = match event.correlation_id {
        Some(correlation) => match story_page(&state, &view, correlation, &at, Some(id)).await {
            Ok(story) => story,
            Err(e) => return errors::domain(Some(&who), &e),
        },
        None => StoryPage::default(),
    };
    let row = match rows(&state, &view, std::slice::from_ref(&event)).await {
        Ok(mut rows) => rows.remove(0),
        Err(e) => return errors::domain(Some(&who), &e),
    };
    render(&EventPage {
        who: who.name.clone(),
        csrf: who.csrf.clone(),
        row,
        actor_id: event.actor_id,
        interaction_id: event
            .interaction_id
            .map(|i| i.to_string())
            .unwrap_or_default(),
        channel_id: event.channel_id.map(|i| i.to_string()).unwrap_or_default(),
        channel_href: discord_link(event.guild_id, event.channel_id, None),
        correlation_id: event
            .correlation_id
            .map(|c| c.to_string())
            .unwrap_or_default(),
        position: event.position.map(|p| p.to_string()).unwrap_or_default(),
        hash: event.hash.clone().unwrap_or_default(),
        story,
    })
}

/// Server-sent events: each new audit event that matches the page's filters (the same
/// parameters as `/`, plus `after`: the newest id the page shows), as JSON rows.
pub async fn live_tail(
    State(state): State<WebState>,
    Extension(who): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Response> {
    let view = view_of(&state, &who, "live tail").await?;
    let params = query_pairs(raw.as_deref());
    let mut start = 0;
    let mut filters = Vec::new();
    for (name, value) in params {
        if name == "after" {
            start = value.trim().parse::<i64>().map_err(|_| {
                errors::page(
                    Some(&who),
                    StatusCode::BAD_REQUEST,
                    &value,
                    "is not an event id (after= takes the newest id the page shows)",
                )
            })?;
        } else {
            filters.push((name, value));
        }
    }
    let filter = parse_filters(&filters)
        .map_err(|e| errors::page(Some(&who), StatusCode::BAD_REQUEST, "", &e.message))?;
    let stream = futures_util::stream::unfold(
        (state, view, filter, start),
        |(state, view, filter, mut after)| async move {
            loop {
                tokio::time::sleep(TAIL_POLL).await;
                let found = state
                    .desk
                    .audit_newer_matching(&view, &filter, after, 100)
                    .await;
                let events = match found {
                    Ok(events) if !events.is_empty() => events,
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::debug!(error = %e, "live tail query failed; retrying");
                        continue;
                    }
                };
                after = events.last().map_or(after, |e| e.id);
                let Ok(rows) = rows(&state, &view, &events).await else {
                    continue;
                };
                let data = serde_json::to_string(&rows).unwrap_or_else(|_| "[]".to_owned());
                let event = Event::default().event("events").data(data);
                return Some((Ok(event), (state, view, filter, after)));
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_read_with_separators_and_a_bound() {
        assert_eq!(super::count_text(0), "0 events match");
        assert_eq!(super::count_text(1), "1 event matches");
        assert_eq!(super::count_text(1234), "1,234 events match");
        assert_eq!(super::count_text(10_001), "10,000+ events match");
    }
}
