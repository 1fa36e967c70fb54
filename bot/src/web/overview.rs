//! The dashboard's overview: `/overview?window=30&environment=production` (the four DORA
//! keys with their trends, per service, charts of deploys and of refusals per day with their
//! numbers in tables, open incidents and firing alerts) and the same figures as JSON at
//! `GET /api/overview` (same parameters, behind the API's authentication, audited one event
//! per request). The figures come from the domain ([`opsbot_commands::overview`]); this
//! module only renders them. `window` is 7, 30 or 90 (days; default 30), `environment` one
//! configured environment (default all).

use askama::Template;
use axum::Extension;
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use opsbot_commands::overview::{Figure, Keys, Overview, OverviewQuery, WINDOWS};

use super::api::{ApiError, query_pairs};
use super::auth::Principal;
use super::chart::{self, Chart, Column, Layout, Series};
use super::errors;
use super::pages::{render, view_of};
use super::{WebState, status_of};

/// Every parameter the overview understands.
const PARAMETERS: [&str; 2] = ["window", "environment"];

const DEPLOY_SERIES: [Series; 6] = [
    Series {
        class: "succeeded",
        label: "succeeded",
    },
    Series {
        class: "failed",
        label: "failed",
    },
    Series {
        class: "cancelled",
        label: "cancelled",
    },
    Series {
        class: "rejected",
        label: "rejected",
    },
    Series {
        class: "expired",
        label: "expired",
    },
    Series {
        class: "active",
        label: "in progress",
    },
];

const REFUSAL_SERIES: [Series; 2] = [
    Series {
        class: "denied",
        label: "denials",
    },
    Series {
        class: "override",
        label: "freeze overrides",
    },
];

fn refused(parameter: &str, message: String) -> ApiError {
    ApiError {
        message,
        parameter: Some(parameter.to_owned()),
    }
}

/// The query string's window and environment, validated (an empty value means the default).
pub fn parse_query(params: &[(String, String)]) -> Result<OverviewQuery, ApiError> {
    let mut query = OverviewQuery::default();
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in params {
        let name = name.as_str();
        if !PARAMETERS.contains(&name) {
            let shown: String = opsbot_commands::desk::clean(name)
                .chars()
                .take(100)
                .collect();
            return Err(refused(
                &shown,
                format!(
                    "unknown parameter \"{shown}\"; known parameters: {}",
                    PARAMETERS.join(", ")
                ),
            ));
        }
        if seen.contains(&name) {
            return Err(refused(
                name,
                format!("{name} is given twice; it takes one value"),
            ));
        }
        seen.push(name);
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match name {
            "window" => {
                query.window_days =
                    OverviewQuery::parse_window(value).map_err(|why| refused(name, why))?;
            }
            _ => query.environment = Some(value.chars().take(100).collect()),
        }
    }
    Ok(query)
}

/// `GET /api/overview`: the figures as JSON.
pub async fn overview_api(
    State(state): State<WebState>,
    Extension(who): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = query_pairs(raw.as_deref());
    let args = serde_json::Value::Object(
        params
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
            .collect(),
    );
    let inv = who.invocation("overview api", args);
    let query = match parse_query(&params) {
        Ok(query) => query,
        Err(e) => {
            if let Err(denied) = state.desk.dashboard_view(&inv).await {
                return json_failure(&denied);
            }
            let recorded = state
                .desk
                .refuse(
                    &inv,
                    opsbot_commands::CommandError::Invalid(e.message.clone()),
                )
                .await;
            return match recorded {
                opsbot_commands::CommandError::Invalid(_) => e.into_response(),
                other => json_failure(&other),
            };
        }
    };
    match state.desk.overview_api(&inv, &query, Utc::now()).await {
        Ok(overview) => {
            let mut response = Json(overview).into_response();
            response.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            response
        }
        Err(e) => json_failure(&e),
    }
}

fn json_failure(error: &opsbot_commands::CommandError) -> Response {
    (
        status_of(error),
        Json(serde_json::json!({ "error": error.to_string() })),
    )
        .into_response()
}

/// A key as a card shows it.
#[derive(Debug, Clone)]
pub struct KeyCard {
    pub id: &'static str,
    pub name: &'static str,
    pub explain: &'static str,
    pub value: String,
    pub previous: String,
    pub trend: &'static str,
    /// `▲`, `▼` or `=`: which way the number moved.
    pub arrow: &'static str,
}

/// One key of one service, in the per-service table.
#[derive(Debug, Clone)]
pub struct KeyCell {
    pub value: String,
    pub trend: &'static str,
    pub arrow: &'static str,
    pub previous: String,
}

#[derive(Debug, Clone)]
pub struct ServiceRow {
    pub service: String,
    pub changes: i64,
    pub cells: Vec<KeyCell>,
}

#[derive(Debug, Clone)]
pub struct IncidentLine {
    pub id: i64,
    pub title: String,
    pub severity: String,
    pub status: String,
    pub at_iso: String,
    pub at_utc: String,
}

#[derive(Debug, Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    pub who: String,
    pub csrf: String,
    pub window_days: u32,
    pub windows: Vec<(u32, bool)>,
    pub environment: String,
    pub environments: Vec<(String, bool)>,
    pub from_day: String,
    pub cards: Vec<KeyCard>,
    pub services: Vec<ServiceRow>,
    pub deploys_chart: Chart,
    pub deploy_days: Vec<(String, Vec<i64>)>,
    pub refusals_chart: Chart,
    pub refusal_days: Vec<(String, Vec<i64>)>,
    pub incidents: Vec<IncidentLine>,
    pub firing_alerts: i64,
    pub change_failure_window: String,
}

/// `90 s`, `15 min`, `2 h 5 min`, `3 d 4 h`.
pub fn human_secs(secs: f64) -> String {
    let secs = secs.max(0.0).round() as i64;
    let (d, h, m) = (secs / 86_400, (secs % 86_400) / 3600, (secs % 3600) / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => format!("{d} d"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

fn show(value: Option<f64>, format: Format) -> String {
    value.map_or_else(|| "—".to_owned(), format)
}

fn per_day(v: f64) -> String {
    format!("{v:.2}/day")
}

fn percent(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

fn arrow(figure: &Figure) -> &'static str {
    match figure.change {
        Some(c) if c > 0.0 => "▲",
        Some(c) if c < 0.0 => "▼",
        Some(_) => "=",
        None => "",
    }
}

/// How a figure's value is written.
type Format = fn(f64) -> String;

/// The four figures of `keys`, each with its formatter.
fn figures(keys: &Keys) -> [(&Figure, Format); 4] {
    [
        (&keys.deployment_frequency, per_day),
        (&keys.lead_time_secs, human_secs),
        (&keys.change_failure_rate, percent),
        (&keys.time_to_restore_secs, human_secs),
    ]
}

const KEY_NAMES: [(&str, &str, &str); 4] = [
    (
        "frequency",
        "Deployment frequency",
        "succeeded deploys per day",
    ),
    (
        "lead-time",
        "Lead time for changes",
        "median, request to success",
    ),
    (
        "failure-rate",
        "Change failure rate",
        "failed, rolled back or followed by an incident",
    ),
    (
        "restore",
        "Time to restore",
        "median, incident declared to resolved",
    ),
];

fn cards(keys: &Keys) -> Vec<KeyCard> {
    figures(keys)
        .into_iter()
        .zip(KEY_NAMES)
        .map(|((figure, format), (id, name, explain))| KeyCard {
            id,
            name,
            explain,
            value: show(figure.current, format),
            previous: show(figure.previous, format),
            trend: figure.trend.as_str(),
            arrow: arrow(figure),
        })
        .collect()
}

fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl OverviewPage {
    fn of(who: &Principal, o: &Overview, environments: Vec<String>) -> OverviewPage {
        let environment = o.environment.clone().unwrap_or_default();
        let deploy_days: Vec<(String, Vec<i64>)> = o
            .deploys_per_day
            .iter()
            .map(|d| {
                (
                    d.day.to_string(),
                    vec![
                        d.succeeded,
                        d.failed,
                        d.cancelled,
                        d.rejected,
                        d.expired,
                        d.active,
                    ],
                )
            })
            .collect();
        let refusal_days: Vec<(String, Vec<i64>)> = o
            .refusals_per_day
            .iter()
            .map(|r| (r.day.to_string(), vec![r.denials, r.overrides]))
            .collect();
        let columns = |days: &[(String, Vec<i64>)]| -> Vec<Column> {
            days.iter()
                .map(|(label, values)| Column {
                    label: label.clone(),
                    values: values.clone(),
                })
                .collect()
        };
        OverviewPage {
            who: who.name.clone(),
            csrf: who.csrf.clone(),
            window_days: o.window_days,
            windows: WINDOWS.iter().map(|&w| (w, w == o.window_days)).collect(),
            environments: environments
                .into_iter()
                .map(|e| {
                    let selected = e == environment;
                    (e, selected)
                })
                .collect(),
            environment,
            from_day: o.from.date_naive().to_string(),
            cards: cards(&o.overall),
            services: o
                .services
                .iter()
                .map(|s| ServiceRow {
                    service: s.service.clone(),
                    changes: s.keys.changes,
                    cells: figures(&s.keys)
                        .into_iter()
                        .map(|(figure, format)| KeyCell {
                            value: show(figure.current, format),
                            previous: show(figure.previous, format),
                            trend: figure.trend.as_str(),
                            arrow: arrow(figure),
                        })
                        .collect(),
                })
                .collect(),
            deploys_chart: chart::bars(
                "deploys-chart",
                "Deploys per day by outcome",
                &DEPLOY_SERIES,
                &columns(&deploy_days),
                Layout::Stacked,
            ),
            deploy_days,
            refusals_chart: chart::bars(
                "refusals-chart",
                "Denials and freeze overrides per day",
                &REFUSAL_SERIES,
                &columns(&refusal_days),
                Layout::Grouped,
            ),
            refusal_days,
            incidents: o
                .open_incidents
                .iter()
                .map(|i| IncidentLine {
                    id: i.id,
                    title: i.title.clone(),
                    severity: i.severity.clone(),
                    status: i.status.clone(),
                    at_iso: iso(i.started_at),
                    at_utc: i.started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                })
                .collect(),
            firing_alerts: o.firing_alerts,
            change_failure_window: human_secs(o.change_failure_window_secs as f64),
        }
    }
}

/// `/overview`.
pub async fn overview_page(
    State(state): State<WebState>,
    Extension(who): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> Response {
    let view = match view_of(&state, &who, "/overview").await {
        Ok(view) => view,
        Err(refused) => return refused,
    };
    let params = query_pairs(raw.as_deref());
    let query = match parse_query(&params) {
        Ok(query) => query,
        Err(e) => return errors::page(Some(&who), StatusCode::BAD_REQUEST, "", &e.message),
    };
    match state.desk.overview(&view, &query, Utc::now()).await {
        Ok(overview) => render(&OverviewPage::of(
            &who,
            &overview,
            state.desk.deploys().environment_names(),
        )),
        Err(e) => errors::domain(Some(&who), &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human_secs(42.0), "42 s");
        assert_eq!(human_secs(900.0), "15 min");
        assert_eq!(human_secs(3600.0), "1 h");
        assert_eq!(human_secs(7500.0), "2 h 5 min");
        assert_eq!(human_secs(3.0 * 86_400.0 + 4.0 * 3600.0), "3 d 4 h");
    }

    #[test]
    fn the_query_takes_a_window_and_an_environment_and_nothing_else() {
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            parse_query(&pairs(&[("window", "7"), ("environment", "production")])),
            Ok(OverviewQuery {
                window_days: 7,
                environment: Some("production".to_owned())
            })
        );
        assert_eq!(
            parse_query(&pairs(&[("window", "")])),
            Ok(OverviewQuery::default())
        );
        assert_eq!(
            parse_query(&pairs(&[("window", "abc")])).map_err(|e| e.message),
            Err("window: `abc` is not a window; one of 7, 30, 90 (days)".to_owned())
        );
        assert_eq!(
            parse_query(&pairs(&[("windows", "7")])).map_err(|e| e.message),
            Err("unknown parameter \"windows\"; known parameters: window, environment".to_owned())
        );
    }
}
