//! The dashboard's `/alerts`: alert groups newest first with their alerts, status, who
//! acked and silenced them and the deploy they correlate with (a link to `/deploys/{id}`),
//! filtered by `status` (`firing`, `resolved`), `service` and `severity`. Needs
//! `audit:read`, like every page.

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use opsbot_commands::alerts::dashboard::AlertFilter;
use opsbot_commands::alerts::store::{AlertGroup, AlertInstance};
use opsbot_commands::incident::view::duration_text;
use serde::Deserialize;

use super::WebState;
use super::auth::Principal;
use super::pages::{render, view_of};

fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn utc(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// One alert of a group as the page shows it.
#[derive(Debug, Clone)]
pub struct AlertRow {
    pub name: String,
    pub status: String,
    pub summary: String,
    /// `k=v` pairs that differ from the group's common labels.
    pub labels: String,
    pub started_utc: String,
    pub started_iso: String,
    pub ended_utc: String,
    pub generator_url: String,
}

/// A group as the page shows it.
#[derive(Debug, Clone)]
pub struct GroupRow {
    pub id: i64,
    pub name: String,
    pub status: String,
    pub severity: String,
    pub service: String,
    pub labels: String,
    pub at_iso: String,
    pub at_utc: String,
    pub duration: String,
    pub acked: String,
    pub silenced: String,
    /// The correlated deploy: (id, "service version to env by who").
    pub deploy: Option<(i64, String)>,
    pub alerts: Vec<AlertRow>,
}

fn labels_text<'a>(labels: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    labels
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl GroupRow {
    fn of(group: &AlertGroup, alerts: &[AlertInstance], service_label: &str) -> GroupRow {
        let common = &group.common_labels.0;
        let label = |name: &str| {
            common
                .get(name)
                .or_else(|| alerts.iter().find_map(|a| a.labels.0.get(name)))
                .cloned()
                .unwrap_or_default()
        };
        let end = group.resolved_at.unwrap_or_else(Utc::now);
        let silenced = match (&group.silenced_by_name, group.silenced_until) {
            (Some(by), Some(until)) => format!("{by}, until {}", utc(until)),
            (Some(by), None) => format!("{by}, until resolved"),
            (None, _) if group.silence_id.is_some() => "yes".to_owned(),
            _ => String::new(),
        };
        GroupRow {
            id: group.id,
            name: label("alertname"),
            status: group.status.clone(),
            severity: label("severity"),
            service: label(service_label),
            labels: labels_text(
                common
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "alertname" | "severity")),
            ),
            at_iso: iso(group.first_seen_at),
            at_utc: utc(group.first_seen_at),
            duration: duration_text(end - group.first_seen_at),
            acked: group.acked_by_name.clone().unwrap_or_default(),
            silenced,
            deploy: group.correlated.as_ref().map(|d| {
                (
                    d.0.id,
                    format!(
                        "{} {} to {} by {}",
                        d.0.service, d.0.version, d.0.environment, d.0.by
                    ),
                )
            }),
            alerts: alerts
                .iter()
                .map(|a| AlertRow {
                    name: a.labels.0.get("alertname").cloned().unwrap_or_default(),
                    status: a.status.clone(),
                    summary: a.annotations.0.get("summary").cloned().unwrap_or_default(),
                    labels: labels_text(
                        a.labels
                            .0
                            .iter()
                            .filter(|(k, v)| common.get(*k) != Some(*v)),
                    ),
                    started_utc: utc(a.starts_at),
                    started_iso: iso(a.starts_at),
                    ended_utc: a
                        .ends_at
                        .filter(|_| !a.is_firing())
                        .map(utc)
                        .unwrap_or_default(),
                    generator_url: a.generator_url.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Template)]
#[template(path = "alerts.html")]
pub struct AlertsPage {
    pub who: String,
    pub csrf: String,
    pub groups: Vec<GroupRow>,
    pub filtered: bool,
    /// Each known value and whether it is the one filtered by.
    pub statuses: Vec<(String, bool)>,
    pub services: Vec<(String, bool)>,
    pub severities: Vec<(String, bool)>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    service: Option<String>,
    severity: Option<String>,
}

/// Known values as select options, the filtered one selected (and kept even when unknown).
fn options(known: Vec<String>, chosen: Option<&str>) -> Vec<(String, bool)> {
    let mut known = known;
    if let Some(chosen) = chosen
        && !known.iter().any(|k| k == chosen)
    {
        known.push(chosen.to_owned());
    }
    known
        .into_iter()
        .map(|k| {
            let selected = Some(k.as_str()) == chosen;
            (k, selected)
        })
        .collect()
}

pub async fn alerts_page(
    State(state): State<WebState>,
    Extension(who): Extension<Principal>,
    super::errors::PageQuery(q): super::errors::PageQuery<ListQuery>,
) -> Response {
    let view = match view_of(&state, &who, "/alerts").await {
        Ok(view) => view,
        Err(refused) => return refused,
    };
    let given = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let filter = AlertFilter {
        status: given(q.status),
        service: given(q.service),
        severity: given(q.severity),
    };
    let page = match state.desk.dashboard_alerts(&view, &filter).await {
        Ok(page) => page,
        Err(e) => return super::errors::domain(Some(&who), &e),
    };
    let service_label = state.desk.alerts().service_label.clone();
    render(&AlertsPage {
        who: who.name.clone(),
        csrf: who.csrf.clone(),
        groups: page
            .groups
            .iter()
            .map(|(g, a)| GroupRow::of(g, a, &service_label))
            .collect(),
        filtered: filter.status.is_some() || filter.service.is_some() || filter.severity.is_some(),
        statuses: options(
            vec!["firing".to_owned(), "resolved".to_owned()],
            filter.status.as_deref(),
        ),
        services: options(page.services, filter.service.as_deref()),
        severities: options(page.severities, filter.severity.as_deref()),
    })
}
