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

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, Utc};
use opsbot_commands::audit::{self, AuditEvent, AuditQuery, Outcome, Page, QUERY_MAX_LIMIT};
use opsbot_commands::{CommandError, Source};
use serde::Serialize;
use sqlx::PgPool;

use super::WebState;

/// Events per `/api/audit` page when `limit` is not given: a screenful.
pub const DEFAULT_LIMIT: i64 = 50;

/// Events per database round trip of an export: the largest page the query allows, so a
/// 100,000-event export is 200 queries while memory stays at one page.
const EXPORT_PAGE: i64 = QUERY_MAX_LIMIT;

/// Every parameter `/api/audit` understands.
const PARAMETERS: [&str; 9] = [
    "actor", "command", "outcome", "source", "since", "until", "q", "cursor", "limit",
];

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

/// The example shown when a time does not parse.
const TIME_EXAMPLE: &str = "2026-11-28T09:00:00Z";

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
    fn new(parameter: &str, message: String) -> ApiError {
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

/// The filters (and `cursor`, `limit`) of a query string, validated; `limit` defaults to
/// [`DEFAULT_LIMIT`]. Takes the decoded pairs, e.g. from [`query_pairs`].
pub fn parse_filters(params: &[(String, String)]) -> Result<AuditQuery, ApiError> {
    let mut query = AuditQuery {
        limit: DEFAULT_LIMIT,
        ..AuditQuery::default()
    };
    let mut seen: Vec<&str> = Vec::with_capacity(params.len());
    for (name, value) in params {
        let name = name.as_str();
        if name.contains('\0') || value.contains('\0') {
            let shown = opsbot_commands::desk::clean(name);
            return Err(ApiError::new(
                &shown,
                format!(
                    "{shown}: contains a NUL byte (%00), which opsbot does not accept; remove it"
                ),
            ));
        }
        if !PARAMETERS.contains(&name) {
            return Err(unknown_parameter(name));
        }
        if seen.contains(&name) {
            return Err(ApiError::new(
                name,
                format!("{name} is given twice; each filter takes one value"),
            ));
        }
        seen.push(name);
        let trimmed = value.trim();
        if trimmed.is_empty() {
            continue;
        }
        match name {
            "actor" => query.actor = Some(trimmed.to_owned()),
            "command" => query.command = Some(trimmed.to_owned()),
            "outcome" => query.outcome = Some(parse_outcome(trimmed)?),
            "source" => query.source = Some(parse_source(trimmed)?),
            "since" => query.since = Some(parse_time(name, trimmed)?),
            "until" => query.until = Some(parse_time(name, trimmed)?),
            // Not trimmed: a search for " run" means what it says.
            "q" => query.text = Some(value.clone()),
            "cursor" => query.before_id = Some(parse_cursor(trimmed)?),
            "limit" => query.limit = parse_limit(trimmed)?,
            _ => return Err(unknown_parameter(name)),
        }
    }
    if let (Some(since), Some(until)) = (query.since, query.until)
        && until <= since
    {
        return Err(ApiError::new(
            "until",
            format!(
                "until: {} is not after since ({}); the range would be empty",
                until.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                since.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            ),
        ));
    }
    Ok(query)
}

fn unknown_parameter(name: &str) -> ApiError {
    ApiError::new(
        name,
        format!(
            "unknown parameter \"{name}\"; known parameters: {}",
            PARAMETERS.join(", ")
        ),
    )
}

/// The decoded `name=value` pairs of a raw query string, in order.
pub fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn parse_outcome(text: &str) -> Result<String, ApiError> {
    Outcome::parse_filter(text)
        .map(|o| o.as_str().to_owned())
        .map_err(|why| ApiError::new("outcome", why))
}

fn parse_source(text: &str) -> Result<String, ApiError> {
    Source::parse_filter(text)
        .map(|s| s.as_str().to_owned())
        .map_err(|why| ApiError::new("source", why))
}

fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    // `?since=2026-11-28T09:00:00+01:00` reaches us with a space: `+` means space in a URL.
    let hint = if DateTime::parse_from_rfc3339(&text.replace(' ', "+")).is_ok() {
        " (a + in a URL must be written %2B)"
    } else {
        ""
    };
    Err(ApiError::new(
        name,
        format!("{name}: \"{text}\" is not an RFC 3339 time, e.g. {TIME_EXAMPLE}{hint}"),
    ))
}

fn parse_cursor(text: &str) -> Result<i64, ApiError> {
    match text.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::new(
            "cursor",
            format!(
                "cursor: \"{text}\" is not a cursor; pass the next_cursor of the previous page"
            ),
        )),
    }
}

fn parse_limit(text: &str) -> Result<i64, ApiError> {
    let range = format!("give 1 to {QUERY_MAX_LIMIT} and follow next_cursor for more");
    match text.parse::<i64>() {
        Ok(n) if (1..=QUERY_MAX_LIMIT).contains(&n) => Ok(n),
        Ok(n) => Err(ApiError::new(
            "limit",
            format!("limit: {n} is out of range; {range}"),
        )),
        Err(_) => Err(ApiError::new(
            "limit",
            format!("limit: \"{text}\" is not a number; {range}"),
        )),
    }
}

/// The answer when the database fails: 503 if it is merely unreachable, else 500 with a
/// reference (`CommandError::from` logs either).
fn database_failure(error: sqlx::Error) -> Response {
    let (status, message) = match CommandError::from(error) {
        CommandError::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is not answering".to_owned(),
        ),
        other => (StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    };
    (status, Json(serde_json::json!({ "error": message }))).into_response()
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
pub async fn list(State(state): State<WebState>, RawQuery(raw): RawQuery) -> Response {
    let filters = match parse_filters(&query_pairs(raw.as_deref())) {
        Ok(filters) => filters,
        Err(e) => return harden(e.into_response()),
    };
    let response = match audit::query(&state.pool, &filters).await {
        Ok(page) => Json(PageBody {
            next_cursor: page.next_cursor.map(|id| id.to_string()),
            events: page.events,
        })
        .into_response(),
        Err(e) => database_failure(e),
    };
    harden(response)
}

/// `GET /api/audit.csv`: every matching event, newest first.
pub async fn export_csv(State(state): State<WebState>, RawQuery(raw): RawQuery) -> Response {
    export(state.pool, raw.as_deref(), ExportFormat::Csv).await
}

/// `GET /api/audit.jsonl`: every matching event, newest first, one JSON object a line.
pub async fn export_jsonl(State(state): State<WebState>, RawQuery(raw): RawQuery) -> Response {
    export(state.pool, raw.as_deref(), ExportFormat::Jsonl).await
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
#[derive(Debug)]
enum ExportStep {
    /// The first page, fetched before answering so that its failure gets a status code.
    First(Page),
    /// The next page starts below this event id.
    Before(i64),
    Done,
}

async fn export(pool: PgPool, raw: Option<&str>, format: ExportFormat) -> Response {
    let params = query_pairs(raw);
    if let Some((name, why)) = NOT_FOR_EXPORTS
        .iter()
        .find(|(name, _)| params.iter().any(|(given, _)| given == name))
    {
        return harden(
            ApiError::new(name, format!("{name} is not accepted here: {why}")).into_response(),
        );
    }
    let mut filters = match parse_filters(&params) {
        Ok(filters) => filters,
        Err(e) => return harden(e.into_response()),
    };
    filters.limit = EXPORT_PAGE;
    let first = match audit::query(&pool, &filters).await {
        Ok(page) => page,
        Err(e) => return harden(database_failure(e)),
    };

    // One page in memory at a time: the next is fetched only when hyper wants more bytes.
    let chunks = futures_util::stream::unfold(
        (ExportStep::First(first), pool, filters, 0_usize),
        move |(step, pool, mut filters, sent)| async move {
            let (page, first) = match step {
                ExportStep::Done => return None,
                ExportStep::First(page) => (page, true),
                ExportStep::Before(id) => {
                    filters.before_id = Some(id);
                    match audit::query(&pool, &filters).await {
                        Ok(page) => (page, false),
                        Err(e) => {
                            return Some((
                                Err(cut_short(e.into(), sent)),
                                (ExportStep::Done, pool, filters, sent),
                            ));
                        }
                    }
                }
            };
            let chunk = format
                .render(&page.events, first)
                .map_err(|e| cut_short(CommandError::internal(e), sent));
            let next = match (&chunk, page.next_cursor) {
                (Ok(_), Some(id)) => ExportStep::Before(id),
                _ => ExportStep::Done,
            };
            Some((chunk, (next, pool, filters, sent + page.events.len())))
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
