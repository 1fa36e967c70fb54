//! The dashboard's deploys: `/deploys` (newest first; filters `service`, `environment`,
//! `state`, `who`, `since`, `until`; durations, approvers, rollbacks and freeze overrides
//! marked), `/deploys/{id}` (its state, approvers, detail and every event of its story) and
//! `/deploys/matrix` (each service × environment: what runs now, since when, by whom, the
//! previous good version, what is on its way).

use askama::Template;
use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use opsbot_commands::deploy::dashboard::{DeployFilter, MatrixCell, MatrixDeploy};
use opsbot_commands::deploy::{self, Deploy, DeployState};

use super::WebState;
use super::api::query_pairs;
use super::audit_filters::parse_time;
use super::auth::Principal;
use super::errors;
use super::event_row::{encode, iso, utc};
use super::overview::human_secs;
use super::pages::{StoryPage, StoryQuery, render, story_page, view_of};

/// Every parameter `/deploys` understands.
const PARAMETERS: [&str; 7] = [
    "service",
    "environment",
    "state",
    "who",
    "since",
    "until",
    "cursor",
];

const STATES: [DeployState; 8] = [
    DeployState::Requested,
    DeployState::Approved,
    DeployState::Running,
    DeployState::Succeeded,
    DeployState::Failed,
    DeployState::Cancelled,
    DeployState::Rejected,
    DeployState::Expired,
];

/// A deploy as the list shows it.
#[derive(Debug, Clone)]
pub struct DeployRow {
    pub id: i64,
    pub title: String,
    pub state: String,
    pub requested_by: String,
    pub who_href: String,
    pub at_iso: String,
    pub at_utc: String,
    pub reason: String,
    pub approvers: String,
    /// "took 12 min", "running for 3 min", or empty.
    pub duration: String,
    pub is_rollback: bool,
    pub rollback_of: Option<i64>,
    pub freeze_overridden: bool,
}

impl From<&Deploy> for DeployRow {
    fn from(d: &Deploy) -> DeployRow {
        let duration = match (d.started_at, d.finished_at) {
            (Some(start), Some(end)) => format!(
                "took {}",
                human_secs((end - start).num_milliseconds() as f64 / 1000.0)
            ),
            (Some(start), None) if d.state.is_active() => format!(
                "running for {}",
                human_secs((Utc::now() - start).num_milliseconds() as f64 / 1000.0)
            ),
            _ => String::new(),
        };
        DeployRow {
            id: d.id,
            title: deploy::view::headline(d),
            state: d.state.to_string(),
            who_href: format!("/deploys?who={}", encode(&d.requested_by_name)),
            requested_by: d.requested_by_name.clone(),
            at_iso: iso(d.requested_at),
            at_utc: utc(d.requested_at),
            reason: d.reason.clone(),
            approvers: d.approved_by.join(", "),
            duration,
            is_rollback: d.is_rollback,
            rollback_of: d.rollback_of,
            freeze_overridden: d.freeze_overridden,
        }
    }
}

#[derive(Debug, Template)]
#[template(path = "deploys.html")]
pub struct DeploysPage {
    pub who: String,
    pub csrf: String,
    pub deploys: Vec<DeployRow>,
    pub filters: Vec<(String, String)>,
    pub services: Vec<(String, bool)>,
    pub environments: Vec<(String, bool)>,
    pub states: Vec<(&'static str, bool)>,
    pub older: Option<String>,
    pub filtered: bool,
}

impl DeploysPage {
    pub fn filter(&self, name: &str) -> String {
        self.filters
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

/// The filters of `/deploys`, or the message saying what is wrong.
fn parse_filter(params: &[(String, String)]) -> Result<DeployFilter, String> {
    let mut filter = DeployFilter::default();
    for (name, value) in params {
        if !PARAMETERS.contains(&name.as_str()) {
            let shown: String = name.chars().take(100).collect();
            return Err(format!(
                "unknown parameter \"{shown}\"; known parameters: {}",
                PARAMETERS.join(", ")
            ));
        }
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let text = Some(value.to_owned());
        match name.as_str() {
            "service" => filter.service = text,
            "environment" => filter.environment = text,
            "state" => filter.state = text,
            "who" => filter.who = text,
            "since" => filter.since = Some(parse_time(name, value).map_err(|e| e.message)?),
            "until" => filter.until = Some(parse_time(name, value).map_err(|e| e.message)?),
            _ => {
                filter.before_id = Some(errors::id_of(value).ok_or_else(|| {
                    format!("cursor: `{value}` is not a cursor; follow the Older link")
                })?);
            }
        }
    }
    Ok(filter)
}

pub async fn deploys_page(
    State(state): State<WebState>,
    Extension(who): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> Response {
    let view = match view_of(&state, &who, "/deploys").await {
        Ok(view) => view,
        Err(refused) => return refused,
    };
    let params = query_pairs(raw.as_deref());
    let filter = match parse_filter(&params) {
        Ok(filter) => filter,
        Err(message) => return errors::page(Some(&who), StatusCode::BAD_REQUEST, "", &message),
    };
    let page = match state.desk.dashboard_deploys_filtered(&view, &filter).await {
        Ok(page) => page,
        Err(e) => return errors::domain(Some(&who), &e),
    };
    let catalog = state.desk.deploys();
    let chosen = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut services: Vec<String> = catalog.services.keys().cloned().collect();
    let mut environments = catalog.environment_names();
    for (list, value) in [
        (&mut services, &filter.service),
        (&mut environments, &filter.environment),
    ] {
        if let Some(v) = value
            && !list.contains(v)
        {
            list.push(v.clone());
        }
    }
    let older = page.next_cursor.map(|cursor| {
        let cursor = cursor.to_string();
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                params
                    .iter()
                    .filter(|(k, v)| k != "cursor" && !v.is_empty())
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .append_pair("cursor", &cursor)
            .finish()
    });
    render(&DeploysPage {
        who: who.name.clone(),
        csrf: who.csrf.clone(),
        deploys: page.deploys.iter().map(DeployRow::from).collect(),
        filtered: filter != DeployFilter::default(),
        services: services
            .into_iter()
            .map(|s| {
                let selected = s == chosen(&filter.service);
                (s, selected)
            })
            .collect(),
        environments: environments
            .into_iter()
            .map(|e| {
                let selected = e == chosen(&filter.environment);
                (e, selected)
            })
            .collect(),
        states: STATES
            .iter()
            .map(|s| (s.as_str(), s.as_str() == chosen(&filter.state)))
            .collect(),
        filters: params,
        older,
    })
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
    pub link: String,
    /// The status message in Discord (or its channel, before the message is known), when
    /// the guild and channel are known.
    pub message_href: String,
    pub story: StoryPage,
}

pub async fn deploy_page(
    State(state): State<WebState>,
    Extension(who): Extension<Principal>,
    super::errors::PagePath(id): super::errors::PagePath<String>,
    errors::PageQuery(at): errors::PageQuery<StoryQuery>,
) -> Response {
    let view = match view_of(&state, &who, "deploy").await {
        Ok(view) => view,
        Err(refused) => return refused,
    };
    let Some(id) = errors::id_of(&id) else {
        return errors::not_an_id(&who, &id, "a deploy");
    };
    let deploy = match state.desk.dashboard_deploy(&view, id).await {
        Ok(Some(deploy)) => deploy,
        Ok(None) => {
            return errors::no_such(
                &who,
                &format!("deploy {id}"),
                "The deploys page lists them all.",
            );
        }
        Err(e) => return errors::domain(Some(&who), &e),
    };
    let story = match story_page(&state, &view, deploy.correlation_id, &at, None).await {
        Ok(story) => story,
        Err(e) => return errors::domain(Some(&who), &e),
    };
    render(&DeployPage {
        who: who.name.clone(),
        csrf: who.csrf.clone(),
        deploy: DeployRow::from(&deploy),
        version: deploy.version.clone(),
        backend: deploy.backend.clone(),
        detail: deploy.detail.clone(),
        link: deploy
            .link
            .clone()
            .filter(|l| l.starts_with("https://") || l.starts_with("http://"))
            .unwrap_or_default(),
        message_href: super::event_row::discord_link(
            deploy.guild_id,
            deploy.channel_id,
            deploy.status_message_id,
        ),
        story,
    })
}

/// One cell of the matrix, as shown.
#[derive(Debug, Clone, Default)]
pub struct MatrixEntry {
    pub current: Option<Shown>,
    pub previous: Option<Shown>,
    pub active: Option<Shown>,
}

#[derive(Debug, Clone)]
pub struct Shown {
    pub id: i64,
    pub version: String,
    pub by: String,
    pub state: String,
    pub at_iso: String,
    pub at_utc: String,
}

fn shown(d: &Option<MatrixDeploy>) -> Option<Shown> {
    d.as_ref().map(|d| Shown {
        id: d.id,
        version: d.version.clone(),
        by: d.by.clone(),
        state: d.state.clone(),
        at_iso: d.at.map(iso).unwrap_or_default(),
        at_utc: d.at.map(utc).unwrap_or_default(),
    })
}

#[derive(Debug, Template)]
#[template(path = "matrix.html")]
pub struct MatrixPage {
    pub who: String,
    pub csrf: String,
    pub environments: Vec<String>,
    pub rows: Vec<MatrixRow>,
}

/// A service with one entry per environment (`None`: it does not deploy there).
pub type MatrixRow = (String, Vec<Option<MatrixEntry>>);

fn matrix_rows(cells: &[MatrixCell]) -> (Vec<String>, Vec<MatrixRow>) {
    let mut environments: Vec<String> = cells.iter().map(|c| c.environment.clone()).collect();
    environments.sort();
    environments.dedup();
    let mut services: Vec<String> = cells.iter().map(|c| c.service.clone()).collect();
    services.sort();
    services.dedup();
    let rows = services
        .into_iter()
        .map(|service| {
            let entries = environments
                .iter()
                .map(|env| {
                    cells
                        .iter()
                        .find(|c| c.service == service && c.environment == *env)
                        .map(|c| MatrixEntry {
                            current: shown(&c.current),
                            previous: shown(&c.previous_good),
                            active: shown(&c.active),
                        })
                })
                .collect();
            (service, entries)
        })
        .collect();
    (environments, rows)
}

pub async fn matrix_page(
    State(state): State<WebState>,
    Extension(who): Extension<Principal>,
) -> Response {
    let view = match view_of(&state, &who, "/deploys/matrix").await {
        Ok(view) => view,
        Err(refused) => return refused,
    };
    match state.desk.deploy_matrix(&view).await {
        Ok(cells) => {
            let (environments, rows) = matrix_rows(&cells);
            render(&MatrixPage {
                who: who.name.clone(),
                csrf: who.csrf.clone(),
                environments,
                rows,
            })
        }
        Err(e) => errors::domain(Some(&who), &e),
    }
}
