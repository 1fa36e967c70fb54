//! The audit API of the web dashboard (behind its authentication layer):
//!
//! - `GET /api/audit?actor=alice&outcome=denied&limit=100` answers
//!   `{"events": [...], "next_cursor": "123"}`; ask again with `cursor=123` for the next page
//!   (`next_cursor` is `null` on the last one). Each event has exactly the fields of
//!   `opsbot audit tail --json`.
//! - `GET /api/audit.csv?...` and `GET /api/audit.jsonl?...` download every matching event,
//!   newest first, streamed page by page in constant memory. JSONL is lossless; CSV is for
//!   spreadsheets (see `push_csv_cell` about the `'` in front of some cells).
//!
//! Filters (all optional, all narrowing): `actor` (a name, case-insensitive, or a numeric
//! id), `command` (`deploy run`, or a group: `deploy`), `outcome`, `source`, `since`/`until`
//! (RFC 3339; `until` exclusive), `q` (text in the arguments, the detail or the command).
//! An empty value means "any", as an unused HTML form field sends it. An unknown or repeated
//! parameter is refused: a typo must not silently widen a filter.

use std::borrow::Cow;

use axum::Extension;
use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{SecondsFormat, Utc};
use opsbot_commands::audit::{AuditEvent, QUERY_MAX_LIMIT};
use opsbot_commands::{CommandError, Invocation};
use serde::Serialize;

use super::WebState;
pub use super::audit_filters::{DEFAULT_LIMIT, PARAMETERS, parse_filters, query_pairs};
use super::auth::Principal;

/// Events per database round trip of an export: the largest page the query allows, so a
/// 100,000-event export is 200 queries while memory stays at one page.
const EXPORT_PAGE: i64 = QUERY_MAX_LIMIT;

/// Parameters of `/api/audit` that the exports refuse, and why.
const NOT_FOR_EXPORTS: [(&str, &str); 2] = [
    (
        "cursor",
        "an export always starts from the newest matching event; narrow it with until",
    ),
    (
        "limit",
        "an export holds every matching event; narrow it with since and until",
    ),
];

/// The CSV columns: the fields of [`AuditEvent`], in order.
const CSV_HEADER: &str = "id,at,actor_id,actor_name,source,guild_id,channel_id,interaction_id,\
                          command,args,outcome,detail,correlation_id,position,hash\r\n";

/// `/api/audit`, `/api/audit.csv` and `/api/audit.jsonl`, for `.merge`-ing into the router.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/api/audit", get(list))
        .route("/api/audit.csv", get(export_csv))
        .route("/api/audit.jsonl", get(export_jsonl))
}

/// A request the API refuses (400), written for the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    /// What is wrong and what is accepted, e.g. `limit: 0 is out of range; give 1 to 500`.
    #[serde(rename = "error")]
    pub message: String,
    /// The query parameter at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

impl ApiError {
    pub(super) fn new(parameter: &str, message: String) -> ApiError {
        ApiError {
            parameter: Some(parameter.to_owned()),
            message,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, Json(self)).into_response()
    }
}

/// A domain error as the API's JSON answer, with its status.
fn domain_failure(error: &CommandError) -> Response {
    (
        super::status_of(error),
        Json(serde_json::json!({ "error": error.to_string() })),
    )
        .into_response()
}

/// The request's parameters as the audit event's arguments.
fn args_of(params: &[(String, String)]) -> serde_json::Value {
    serde_json::Value::Object(
        params
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
            .collect(),
    )
}

/// Refuses a query the API cannot read, recorded like any invalid command (after the
/// permission check, so an outsider learns nothing from the parameters).
async fn refuse(state: &WebState, inv: &Invocation, error: ApiError) -> Response {
    if let Err(denied) = state.desk.dashboard_view(inv).await {
        return domain_failure(&denied);
    }
    match state
        .desk
        .refuse(inv, CommandError::Invalid(error.message.clone()))
        .await
    {
        CommandError::Invalid(_) => error.into_response(),
        not_recorded => domain_failure(&not_recorded),
    }
}

/// Audit data is sensitive: no shared cache keeps it, no browser sniffs it into HTML.
fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[derive(Debug, Serialize)]
struct PageBody {
    events: Vec<AuditEvent>,
    /// A string: the cursor is opaque to clients.
    next_cursor: Option<String>,
}

/// `GET /api/audit`: one page of matching events, newest first.
/// Recorded as one `audit api` event: who, the parameters, how many events it returned.
pub async fn list(
    State(state): State<WebState>,
    Extension(who): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = query_pairs(raw.as_deref());
    let inv = who.invocation("audit api", args_of(&params));
    let filters = match parse_filters(&params) {
        Ok(filters) => filters,
        Err(e) => return harden(refuse(&state, &inv, e).await),
    };
    let response = match state.desk.audit_api_query(&inv, &filters).await {
        Ok(page) => Json(PageBody {
            next_cursor: page.next_cursor.map(|id| id.to_string()),
            events: page.events,
        })
        .into_response(),
        Err(e) => domain_failure(&e),
    };
    harden(response)
}

/// `GET /api/audit.csv`: every matching event, newest first.
pub async fn export_csv(
    State(state): State<WebState>,
    Extension(who): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> Response {
    export(state, who, raw.as_deref(), ExportFormat::Csv).await
}

/// `GET /api/audit.jsonl`: every matching event, newest first, one JSON object a line.
pub async fn export_jsonl(
    State(state): State<WebState>,
    Extension(who): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> Response {
    export(state, who, raw.as_deref(), ExportFormat::Jsonl).await
}

#[derive(Debug, Clone, Copy)]
enum ExportFormat {
    Csv,
    Jsonl,
}

impl ExportFormat {
    fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Jsonl => "application/x-ndjson",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Jsonl => "jsonl",
        }
    }

    /// One page of events as bytes of the file, `first` page led by the CSV header.
    fn render(self, events: &[AuditEvent], first: bool) -> Result<Bytes, serde_json::Error> {
        let mut out = String::with_capacity(events.len() * 256 + CSV_HEADER.len());
        match self {
            ExportFormat::Csv => {
                if first {
                    out.push_str(CSV_HEADER);
                }
                for event in events {
                    push_csv_row(&mut out, event)?;
                }
            }
            ExportFormat::Jsonl => {
                for event in events {
                    out.push_str(&serde_json::to_string(event)?);
                    out.push('\n');
                }
            }
        }
        Ok(Bytes::from(out))
    }
}

/// Where an export stream stands between two chunks.
enum ExportStep {
    /// A page fetched, to be sent (`true`: the first, led by the CSV header).
    Ready(Vec<AuditEvent>, bool),
    /// The next page is to be fetched.
    Fetch,
    Done,
}

/// Every matching event, one page in memory at a time, recorded as one `audit export`
/// event when it ends (or is cut short).
async fn export(
    state: WebState,
    who: Principal,
    raw: Option<&str>,
    format: ExportFormat,
) -> Response {
    let params = query_pairs(raw);
    let inv = who.invocation(
        &format!("audit export {}", format.extension()),
        args_of(&params),
    );
    if let Some((name, why)) = NOT_FOR_EXPORTS
        .iter()
        .find(|(name, _)| params.iter().any(|(given, _)| given == name))
    {
        let error = ApiError::new(name, format!("{name} is not accepted here: {why}"));
        return harden(refuse(&state, &inv, error).await);
    }
    let mut filters = match parse_filters(&params) {
        Ok(filters) => filters,
        Err(e) => return harden(refuse(&state, &inv, e).await),
    };
    filters.limit = EXPORT_PAGE;
    let mut export = match state.desk.audit_export(&inv, filters).await {
        Ok(export) => export,
        Err(e) => return harden(domain_failure(&e)),
    };
    // The first page is fetched before answering, so that its failure gets a status code.
    let first = match export.next_page().await {
        Ok(page) => page.unwrap_or_default(),
        Err(e) => return harden(domain_failure(&e)),
    };

    // The next page is fetched only when hyper wants more bytes.
    let chunks = futures_util::stream::unfold(
        (ExportStep::Ready(first, true), export),
        move |(step, mut export)| async move {
            let (events, first) = match step {
                ExportStep::Done => return None,
                ExportStep::Ready(events, first) => (events, first),
                ExportStep::Fetch => match export.next_page().await {
                    Ok(Some(events)) => (events, false),
                    Ok(None) => return None,
                    Err(e) => {
                        let sent = export.sent();
                        return Some((Err(cut_short(e, sent)), (ExportStep::Done, export)));
                    }
                },
            };
            let chunk = format
                .render(&events, first)
                .map_err(|e| cut_short(CommandError::internal(e), export.sent()));
            let next = if chunk.is_ok() {
                ExportStep::Fetch
            } else {
                ExportStep::Done
            };
            Some((chunk, (next, export)))
        },
    );

    let filename = format!(
        "opsbot-audit-{}.{}",
        Utc::now().format("%Y%m%dT%H%M%SZ"),
        format.extension()
    );
    let response = (
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        Body::from_stream(chunks),
    )
        .into_response();
    harden(response)
}

/// Logs an export that fails after its first byte, and returns the error that makes hyper
/// abort the response: the client sees a broken transfer, never a complete-looking file.
fn cut_short(error: CommandError, sent: usize) -> CommandError {
    tracing::error!(error = %error, events_sent = sent, "audit export cut short");
    error
}

fn push_csv_row(out: &mut String, event: &AuditEvent) -> Result<(), serde_json::Error> {
    fn opt<T: ToString>(value: Option<T>) -> Cow<'static, str> {
        value.map_or(Cow::Borrowed(""), |v| Cow::Owned(v.to_string()))
    }
    let cells: [Cow<'_, str>; 15] = [
        event.id.to_string().into(),
        event.at.to_rfc3339_opts(SecondsFormat::AutoSi, true).into(),
        event.actor_id.to_string().into(),
        event.actor_name.as_str().into(),
        event.source.as_str().into(),
        opt(event.guild_id),
        opt(event.channel_id),
        opt(event.interaction_id),
        event.command.as_str().into(),
        serde_json::to_string(&event.args)?.into(),
        event.outcome.as_str().into(),
        event.detail.as_str().into(),
        opt(event.correlation_id),
        opt(event.position),
        event.hash.as_deref().unwrap_or_default().into(),
    ];
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_csv_cell(out, cell);
    }
    out.push_str("\r\n");
    Ok(())
}

/// One RFC 4180 cell: quoted when it holds a comma, a quote or a line break, quotes doubled.
///
/// Formula injection: a cell starting with `=`, `+`, `-`, `@` or `|` (DDE), their
/// full-width forms (`＝` is read as `=` by Japanese and Chinese spreadsheets), or any
/// whitespace or control character (tab, CR, LF, space, no-break space: spreadsheets skip
/// them and read the formula behind) would run as a formula (OWASP "CSV Injection"), and
/// audit cells hold whatever users typed. Such a cell gets a leading `'`, which spreadsheets
/// read as "text" and hide. The CSV is thus not byte-exact for those cells: programs should
/// read the JSONL. This defends spreadsheets that open the file; it does not make cells
/// safe to paste into a formula by hand.
fn push_csv_cell(out: &mut String, cell: &str) {
    let defused = cell.chars().next().is_some_and(|first| {
        matches!(
            first,
            '=' | '+' | '-' | '@' | '|' | '＝' | '＋' | '－' | '＠' | '｜'
        ) || first.is_whitespace()
            || first.is_control()
    });
    let quoted = cell.contains([',', '"', '\r', '\n']);
    if quoted {
        out.push('"');
    }
    if defused {
        out.push('\'');
    }
    if quoted {
        out.push_str(&cell.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(cell);
    }
}
