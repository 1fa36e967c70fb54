//! The audit log's filters, as `/api/audit`, its exports, the dashboard's log and its live
//! tail read them from a query string: `actor`, `command`, `outcome`, `source`, `since`,
//! `until` (RFC 3339, or a date alone: `since` from its start, `until` to its end), `q` (at
//! least 3 letters or digits in a row: the search index looks up runs of three),
//! `cursor`, `limit`. An empty value means "any"; an unknown or repeated parameter is
//! refused, so a typo never silently widens a filter.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use opsbot_commands::Source;
use opsbot_commands::audit::{AuditQuery, Outcome, QUERY_MAX_LIMIT, search_problem};

use super::api::ApiError;

/// Events per `/api/audit` page when `limit` is not given: a screenful.
pub const DEFAULT_LIMIT: i64 = 50;

/// Every parameter `/api/audit` understands.
pub const PARAMETERS: [&str; 9] = [
    "actor", "command", "outcome", "source", "since", "until", "q", "cursor", "limit",
];

/// The example shown when a time does not parse.
const TIME_EXAMPLE: &str = "2026-11-28T09:00:00Z";

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
            "q" => {
                if let Some(why) = search_problem(value) {
                    return Err(ApiError::new(name, why));
                }
                query.text = Some(value.clone());
            }
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

pub(super) fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    // A date alone: `since` from its first moment, `until` (exclusive) to its end, so that
    // `since=2026-11-28&until=2026-11-28` is that whole day (UTC).
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = if name == "until" {
            day.succ_opt()
        } else {
            Some(day)
        };
        if let Some(start) = day.and_then(|d| d.and_hms_opt(0, 0, 0)) {
            return Ok(start.and_utc());
        }
    }
    // `?since=2026-11-28T09:00:00+01:00` reaches us with a space: `+` means space in a URL.
    let hint = if DateTime::parse_from_rfc3339(&text.replace(' ', "+")).is_ok() {
        " (a + in a URL must be written %2B)"
    } else {
        ""
    };
    Err(ApiError::new(
        name,
        format!(
            "{name}: \"{text}\" is not an RFC 3339 time or a date, e.g. {TIME_EXAMPLE} or 2026-11-28{hint}"
        ),
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
