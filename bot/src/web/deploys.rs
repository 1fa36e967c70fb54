//! The dashboard's deploys: `/deploys` (newest first) and `/deploys/{id}` (its state,
//! approvers, detail and every event of its story).

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use opsbot_commands::deploy::{self, Deploy};

use super::WebState;
use super::auth::Principal;
use super::errors;
use super::event_row::{iso, utc};
use super::pages::{StoryPage, StoryQuery, render, story_page, view_of};

/// Deploys on `/deploys`.
const DEPLOYS_MAX: i64 = 100;

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
        Err(e) => errors::domain(Some(&who), &e),
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
    Path(id): Path<String>,
    Query(at): Query<StoryQuery>,
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
        approved_by: deploy.approved_by.join(", "),
        story,
    })
}
