//! What every dashboard page shares: rendering, the access check, error pages, one page of a
//! story (the events of one correlation id), the chain status (`/chain`) and the static
//! files. All output goes through askama's HTML escaping; the only script is
//! `/static/app.js` (no inline scripts, so the Content-Security-Policy forbids them all).
//! The audit log is in [`super::audit_log`], deploys in [`super::deploys`].

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use opsbot_commands::CommandError;
use opsbot_commands::audit::DashboardView;
use serde::Deserialize;

use super::WebState;
use super::auth::Principal;
use super::event_row::Row;

/// Events of one story per page; "Later events" pages on.
const STORY_MAX: i64 = 200;

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
        .map_err(|e| super::errors::domain(Some(who), &e))
}

/// Where a story page starts: after event `story_after` (the first page without it).
#[derive(Debug, Default, Deserialize)]
pub struct StoryQuery {
    pub story_after: Option<i64>,
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

/// One page of the story of `correlation`, the event `current` marked.
pub async fn story_page(
    state: &WebState,
    view: &DashboardView,
    correlation: uuid::Uuid,
    at: &StoryQuery,
    current: Option<i64>,
) -> Result<StoryPage, CommandError> {
    let after = at.story_after.unwrap_or(0).max(0);
    let mut events = state
        .desk
        .audit_story(view, correlation, after, STORY_MAX + 1)
        .await?;
    let more = events.len() as i64 > STORY_MAX;
    events.truncate(STORY_MAX as usize);
    let references = state.desk.audit_references(view, &[correlation]).await?;
    Ok(StoryPage {
        next_after: if more {
            events.last().map(|e| e.id)
        } else {
            None
        },
        rows: events
            .iter()
            .map(|e| {
                let mut row = Row::of(e, &references);
                row.current = Some(e.id) == current;
                row
            })
            .collect(),
        paged: after > 0,
    })
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
        Err(e) => return super::errors::domain(Some(&who), &e),
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
