//! The dashboard's pages: the audit log (`/`, filters, full-text search, keyset pages, a live
//! tail), one event (`/events/{id}`: arguments, chain hash, the whole story by correlation id),
//! the chain status (`/chain`), and deploys (`/deploys`, `/deploys/{id}`). All output goes
//! through askama's HTML escaping; the only script is `/static/app.js` (no inline scripts, so
//! the Content-Security-Policy forbids them all).

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::stream::Stream;
use opsbot_commands::CommandError;
use opsbot_commands::audit::{AuditEvent, DashboardView};
use opsbot_commands::deploy::{self, Deploy};
use serde::Deserialize;

use super::api::{parse_filters, query_pairs};
use super::auth::Principal;
use super::{WebState, status_of};

/// The live tail looks for new events this often.
const TAIL_POLL: Duration = Duration::from_secs(1);
/// Events of one story per page; "Later events" pages on.
const STORY_MAX: i64 = 200;
/// Deploys on `/deploys`.
const DEPLOYS_MAX: i64 = 100;

/// Renders a template, or a plain 500 that names no internals.
pub fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

pub use crate::html::escape;

/// Checks that `who` may read the dashboard (`audit:read`; a denial is audited), or the page
/// that says why not.
pub async fn view_of(
    state: &WebState,
    who: &Principal,
    page: &str,
) -> Result<DashboardView, Response> {
    let inv = who.invocation("dashboard", serde_json::json!({ "page": page }));
    state
        .desk
        .dashboard_view(&inv)
        .await
        .map_err(|e| error_page(&e))
}

/// A domain error as a page: its status, and its text (escaped) for the person who asked.
pub fn error_page(error: &CommandError) -> Response {
    (
        status_of(error),
        Html(format!(
            "<!doctype html><title>opsbot</title><p>{}. <a href=\"/\">Back to the audit log</a></p>",
            escape(&error.to_string())
        )),
    )
        .into_response()
}

/// An event as a table row shows it.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: i64,
    pub at_iso: String,
    pub at_utc: String,
    pub actor: String,
    pub source: String,
    pub command: String,
    pub args: String,
    pub outcome: String,
    pub detail: String,
}

fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn utc(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

impl From<&AuditEvent> for Row {
    fn from(e: &AuditEvent) -> Row {
        Row {
            id: e.id,
            at_iso: iso(e.at),
            at_utc: utc(e.at),
            actor: e.actor_name.clone(),
            source: e.source.clone(),
            command: e.command.clone(),
            args: if e.args == serde_json::json!({}) {
                String::new()
            } else {
                e.args.to_string()
            },
            outcome: e.outcome.clone(),
            detail: e.detail.clone(),
        }
    }
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
    pub newest_id: i64,
    pub live: bool,
    /// The filters, for the CSV and JSONL links (exports take no cursor or limit).
    pub export_query: String,
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
    let mut page = AuditPage {
        who: who.name.clone(),
        csrf: who.csrf.clone(),
        rows: Vec::new(),
        filters: params.clone(),
        error: String::new(),
        older: None,
        newest_id: 0,
        live: !params.iter().any(|(k, v)| k != "limit" && !v.is_empty()),
        export_query: url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                params
                    .iter()
                    .filter(|(k, v)| k != "cursor" && k != "limit" && !v.is_empty()),
            )
            .finish(),
    };
    let mut status = StatusCode::OK;
    match parse_filters(&params) {
        Err(e) => {
            status = StatusCode::BAD_REQUEST;
            page.error = e.to_string();
        }
        Ok(filter) => match state.desk.audit_page(&view, &filter).await {
            Ok(result) => {
                page.newest_id = result.events.first().map_or(0, |e| e.id);
                page.rows = result.events.iter().map(Row::from).collect();
                page.older = result.next_cursor.map(|cursor| {
                    let mut pairs: Vec<(String, String)> = params
                        .iter()
                        .filter(|(k, _)| k != "cursor")
                        .cloned()
                        .collect();
                    pairs.push(("cursor".to_owned(), cursor.to_string()));
                    url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(pairs)
                        .finish()
                });
                page.live &= params.iter().all(|(k, _)| k != "cursor");
            }
            Err(e) => {
                tracing::warn!(error = %e, "audit page query failed");
                status = status_of(&e);
                page.error = e.to_string();
            }
        },
    }
    let mut response = render(&page);
    if response.status() == StatusCode::OK {
        *response.status_mut() = status;
    }
    response
}

#[derive(Debug, Template)]
#[template(path = "event.html")]
pub struct EventPage {
    pub who: String,
    pub csrf: String,
    pub row: Row,
    pub args_pretty: String,
    pub actor_id: i64,
    pub interaction_id: String,
    pub channel_id: String,
    pub correlation_id: String,
    pub position: String,
    pub hash: String,
    pub story: StoryPage,
}

pub async fn event_page(
    State(state): State<WebState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<i64>,
    Query(at): Query<StoryQuery>,
) -> Response {
    let view = match view_of(&state, &who, "event").await {
        Ok(view) => view,
        Err(refused) => return refused,
    };
    let event = match state.desk.audit_event(&view, id).await {
        Ok(Some(event)) => event,
        Ok(None) => return (StatusCode::NOT_FOUND, Html(format!("<!doctype html><title>opsbot</title><p>There is no event {id}. <a href=\"/\">Back to the audit log</a></p>"))).into_response(),
        Err(e) => return unavailable(e),
    };
    let story = match event.correlation_id {
        Some(correlation) => match story_page(&state, &view, correlation, &at).await {
            Ok(story) => story,
            Err(e) => return unavailable(e),
        },
        None => StoryPage::default(),
    };
    render(&EventPage {
        who: who.name.clone(),
        csrf: who.csrf.clone(),
        row: Row::from(&event),
        args_pretty: serde_json::to_string_pretty(&event.args).unwrap_or_default(),
        actor_id: event.actor_id,
        interaction_id: event
            .interaction_id
            .map(|i| i.to_string())
            .unwrap_or_default(),
        channel_id: event.channel_id.map(|i| i.to_string()).unwrap_or_default(),
        correlation_id: event
            .correlation_id
            .map(|c| c.to_string())
            .unwrap_or_default(),
        position: event.position.map(|p| p.to_string()).unwrap_or_default(),
        hash: event.hash.clone().unwrap_or_default(),
        story,
    })
}

/// Where a story page starts: after event `story_after` (the first page without it).
#[derive(Debug, Default, Deserialize)]
pub struct StoryQuery {
    story_after: Option<i64>,
}

/// One page of a story: every event is reachable, however many there are.
#[derive(Debug, Clone, Default)]
pub struct StoryPage {
    pub rows: Vec<Row>,
    /// Not the first page: offer a way back to the start.
    pub paged: bool,
    /// The `story_after` of the next page, when there is one.
    pub next_after: Option<i64>,
}

async fn story_page(
    state: &WebState,
    view: &DashboardView,
    correlation: uuid::Uuid,
    at: &StoryQuery,
) -> Result<StoryPage, CommandError> {
    let after = at.story_after.unwrap_or(0).max(0);
    let mut events = state
        .desk
        .audit_story(view, correlation, after, STORY_MAX + 1)
        .await?;
    let more = events.len() as i64 > STORY_MAX;
    events.truncate(STORY_MAX as usize);
    Ok(StoryPage {
        next_after: if more {
            events.last().map(|e| e.id)
        } else {
            None
        },
        rows: events.iter().map(Row::from).collect(),
        paged: after > 0,
    })
}

fn unavailable(e: CommandError) -> Response {
    tracing::warn!(error = %e, "dashboard query failed");
    error_page(&e)
}

#[derive(Debug, Template)]
#[template(path = "chain.html")]
pub struct ChainPage {
    pub who: String,
    pub csrf: String,
    pub ok: bool,
    pub summary: String,
    pub head_position: String,
    pub head_event: String,
    pub head_hash: String,
    pub broken_event: String,
    pub warning: String,
}

pub async fn chain_page(
    State(state): State<WebState>,
    Extension(who): Extension<Principal>,
) -> Response {
    // The same check, the same record as `/audit verify`: it needs `audit:verify`.
    let inv = who.invocation("audit verify", serde_json::json!({ "page": "/chain" }));
    let report = match state.desk.audit_verify(&inv).await {
        Ok(report) => report,
        Err(e) => return unavailable(e),
    };
    render(&ChainPage {
        who: who.name.clone(),
        csrf: who.csrf.clone(),
        ok: report.is_ok(),
        summary: report.summary(),
        head_position: report
            .head
            .as_ref()
            .map(|h| h.position.to_string())
            .unwrap_or_default(),
        head_event: report
            .head
            .as_ref()
            .map(|h| h.event_id.to_string())
            .unwrap_or_default(),
        head_hash: report
            .head
            .as_ref()
            .map(|h| h.hash.clone())
            .unwrap_or_default(),
        broken_event: report
            .problem
            .as_ref()
            .map(|p| p.event_id.to_string())
            .unwrap_or_default(),
        warning: report.unsealed_warning().unwrap_or_default(),
    })
}

/// A deploy as the list shows it.
#[derive(Debug, Clone)]
pub struct DeployRow {
    pub id: i64,
    pub title: String,
    pub state: String,
    pub requested_by: String,
    pub at_iso: String,
    pub at_utc: String,
    pub reason: String,
}

impl From<&Deploy> for DeployRow {
    fn from(d: &Deploy) -> DeployRow {
        DeployRow {
            id: d.id,
            title: deploy::view::headline(d),
            state: d.state.to_string(),
            requested_by: d.requested_by_name.clone(),
            at_iso: iso(d.requested_at),
            at_utc: utc(d.requested_at),
            reason: d.reason.clone(),
        }
    }
}

#[derive(Debug, Template)]
#[template(path = "deploys.html")]
pub struct DeploysPage {
    pub who: String,
    pub csrf: String,
    pub deploys: Vec<DeployRow>,
}

pub async fn deploys_page(
    State(state): State<WebState>,
    Extension(who): Extension<Principal>,
) -> Response {
    let view = match view_of(&state, &who, "/deploys").await {
        Ok(view) => view,
        Err(refused) => return refused,
    };
    match state.desk.dashboard_deploys(&view, DEPLOYS_MAX).await {
        Ok(deploys) => render(&DeploysPage {
            who: who.name.clone(),
            csrf: who.csrf.clone(),
            deploys: deploys.iter().map(DeployRow::from).collect(),
        }),
        Err(e) => unavailable(e),
    }
}

#[derive(Debug, Template)]
#[template(path = "deploy.html")]
pub struct DeployPage {
    pub who: String,
    pub csrf: String,
    pub deploy: DeployRow,
    pub version: String,
    pub backend: String,
    pub detail: String,
    pub approved_by: String,
    pub story: StoryPage,
}

pub async fn deploy_page(
    State(state): State<WebState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<i64>,
    Query(at): Query<StoryQuery>,
) -> Response {
    let view = match view_of(&state, &who, "deploy").await {
        Ok(view) => view,
        Err(refused) => return refused,
    };
    let deploy = match state.desk.dashboard_deploy(&view, id).await {
        Ok(Some(deploy)) => deploy,
        Ok(None) => return (StatusCode::NOT_FOUND, Html(format!("<!doctype html><title>opsbot</title><p>There is no deploy {id}. <a href=\"/deploys\">All deploys</a></p>"))).into_response(),
        Err(e) => return unavailable(e),
    };
    let story = match story_page(&state, &view, deploy.correlation_id, &at).await {
        Ok(story) => story,
        Err(e) => return unavailable(e),
    };
    render(&DeployPage {
        who: who.name.clone(),
        csrf: who.csrf.clone(),
        deploy: DeployRow::from(&deploy),
        version: deploy.version.clone(),
        backend: deploy.backend.clone(),
        detail: deploy.detail.clone(),
        approved_by: deploy.approved_by.join(", "),
        story,
    })
}

#[derive(Debug, Deserialize)]
pub struct TailQuery {
    after: Option<i64>,
}

/// Server-sent events: each new audit event as JSON (the row's fields), as it is committed.
pub async fn live_tail(
    State(state): State<WebState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<TailQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Response> {
    let view = view_of(&state, &who, "live tail").await?;
    let start = q.after.unwrap_or(0);
    let stream = futures_util::stream::unfold(
        (state, view, start),
        |(state, view, mut after)| async move {
            loop {
                tokio::time::sleep(TAIL_POLL).await;
                match state.desk.audit_newer(&view, after, 100).await {
                    Ok(events) if !events.is_empty() => {
                        after = events.last().map_or(after, |e| e.id);
                        let rows: Vec<serde_json::Value> = events
                        .iter()
                        .map(|e| {
                            let row = Row::from(e);
                            serde_json::json!({
                                "id": row.id, "at_iso": row.at_iso, "at_utc": row.at_utc, "actor": row.actor,
                                "source": row.source, "command": row.command, "args": row.args,
                                "outcome": row.outcome, "detail": row.detail,
                            })
                        })
                        .collect();
                        let event = Event::default()
                            .event("events")
                            .data(serde_json::Value::Array(rows).to_string());
                        return Some((Ok(event), (state, view, after)));
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::debug!(error = %e, "live tail query failed; retrying");
                        continue;
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

pub async fn app_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../static/app.js"),
    )
}

pub async fn app_css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/app.css"),
    )
}

#[derive(Debug, Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub csrf: String,
    pub next: String,
    pub error: String,
    pub discord: bool,
    pub tokens: bool,
}
