//! The dashboard's incidents: `/incidents` (open and recent, filtered by `severity` and
//! `status` — `open` or one status) and `/incidents/{id}` (summary, roles, the whole
//! timeline with the deploys and alerts of its services, links to the Discord channel and the
//! postmortem issue). Both need `audit:read`, like every page.

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use opsbot_commands::incident::Incident;
use opsbot_commands::incident::dashboard::IncidentFilter;
use opsbot_commands::incident::timeline::EntryKind;
use opsbot_commands::incident::view::{duration_text, headline};
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

/// An incident as the list shows it.
#[derive(Debug, Clone)]
pub struct IncidentRow {
    pub id: i64,
    pub title: String,
    pub severity: String,
    pub status: String,
    pub commander: String,
    pub services: String,
    pub at_iso: String,
    pub at_utc: String,
    pub duration: String,
}

impl IncidentRow {
    fn of(incident: &Incident, now: DateTime<Utc>) -> IncidentRow {
        IncidentRow {
            id: incident.id,
            title: headline(incident),
            severity: incident.severity.clone(),
            status: incident.status.as_str().to_owned(),
            commander: incident
                .commander()
                .map(|c| c.user_name.clone())
                .unwrap_or_default(),
            services: incident.services.join(", "),
            at_iso: iso(incident.started_at),
            at_utc: utc(incident.started_at),
            duration: duration_text(incident.duration(now)),
        }
    }
}

#[derive(Debug, Template)]
#[template(path = "incidents.html")]
pub struct IncidentsPage {
    pub who: String,
    pub csrf: String,
    pub incidents: Vec<IncidentRow>,
    pub severity: String,
    pub status: String,
    /// Each known severity and whether it is the one filtered by.
    pub severities: Vec<(String, bool)>,
    pub statuses: Vec<(&'static str, bool)>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    severity: Option<String>,
    status: Option<String>,
}

pub async fn incidents_page(
    State(state): State<WebState>,
    Extension(who): Extension<Principal>,
    super::errors::PageQuery(q): super::errors::PageQuery<ListQuery>,
) -> Response {
    let view = match view_of(&state, &who, "/incidents").await {
        Ok(view) => view,
        Err(refused) => return refused,
    };
    let given = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let filter = IncidentFilter {
        severity: given(q.severity),
        status: given(q.status),
    };
    let incidents = match state.desk.dashboard_incidents(&view, &filter).await {
        Ok(incidents) => incidents,
        Err(e) => return super::errors::domain(Some(&who), &e),
    };
    let now = Utc::now();
    let severity = filter.severity.clone().unwrap_or_default();
    let status = filter.status.clone().unwrap_or_default();
    render(&IncidentsPage {
        who: who.name.clone(),
        csrf: who.csrf.clone(),
        incidents: incidents.iter().map(|i| IncidentRow::of(i, now)).collect(),
        severities: state
            .desk
            .incidents()
            .severities
            .keys()
            .map(|s| (s.clone(), *s == severity))
            .collect(),
        statuses: [
            "open",
            "investigating",
            "identified",
            "monitoring",
            "reopened",
            "resolved",
        ]
        .into_iter()
        .map(|s| (s, s == status))
        .collect(),
        severity,
        status,
    })
}

/// One line of the timeline.
#[derive(Debug, Clone)]
pub struct TimelineRow {
    pub at_iso: String,
    pub at_utc: String,
    pub kind: &'static str,
    pub what: String,
    pub who: String,
    pub text: String,
    pub deploy_id: Option<i64>,
}

#[derive(Debug, Template)]
#[template(path = "incident.html")]
pub struct IncidentDetailPage {
    pub who: String,
    pub csrf: String,
    pub incident: IncidentRow,
    pub description: String,
    pub resolution: String,
    pub declared_by: String,
    pub roles: Vec<(String, String)>,
    pub timeline: Vec<TimelineRow>,
    /// `https://discord.com/channels/{guild}/{channel}` when both are known.
    pub channel_url: String,
    pub issue_url: String,
    pub issue_number: String,
}

pub async fn incident_page(
    State(state): State<WebState>,
    Extension(who): Extension<Principal>,
    super::errors::PagePath(id): super::errors::PagePath<String>,
) -> Response {
    let view = match view_of(&state, &who, "incident").await {
        Ok(view) => view,
        Err(refused) => return refused,
    };
    let Some(id) = super::errors::id_of(&id) else {
        return super::errors::not_an_id(&who, &id, "an incident");
    };
    let page = match state.desk.dashboard_incident(&view, id).await {
        Ok(Some(page)) => page,
        Ok(None) => {
            return super::errors::no_such(
                &who,
                &format!("incident {id}"),
                "The incidents page lists them all.",
            );
        }
        Err(e) => return super::errors::domain(Some(&who), &e),
    };
    let incident = &page.incident;
    let channel_url = match (incident.guild_id, incident.channel_id) {
        (Some(guild), Some(channel)) => format!("https://discord.com/channels/{guild}/{channel}"),
        _ => String::new(),
    };
    let catalog = state.desk.incidents();
    render(&IncidentDetailPage {
        who: who.name.clone(),
        csrf: who.csrf.clone(),
        incident: IncidentRow::of(incident, Utc::now()),
        description: incident.description.clone(),
        resolution: incident.resolution.clone().unwrap_or_default(),
        declared_by: incident.declared_by_name.clone(),
        roles: catalog
            .roles
            .iter()
            .filter_map(|spec| {
                incident
                    .holder(&spec.name)
                    .map(|held| (spec.name.clone(), held.user_name.clone()))
            })
            .collect(),
        timeline: page
            .timeline
            .iter()
            .map(|e| TimelineRow {
                at_iso: iso(e.at),
                at_utc: utc(e.at),
                kind: match e.kind {
                    EntryKind::Incident => "incident",
                    EntryKind::Deploy => "deploy",
                    EntryKind::Rollback => "rollback",
                    EntryKind::Alert => "alert",
                },
                what: e.what.clone(),
                who: e.who.clone(),
                text: e.text.clone(),
                deploy_id: e.deploy_id,
            })
            .collect(),
        channel_url,
        issue_url: page
            .issue
            .as_ref()
            .map(|(_, url)| url.clone())
            .unwrap_or_default(),
        issue_number: page
            .issue
            .as_ref()
            .map(|(n, _)| n.to_string())
            .unwrap_or_default(),
    })
}
