//! The incident channel's list of recent deploys of the incident's services, posted once when
//! the channel is set up, with a **Rollback** button per service and environment. Pressing it
//! is `/rollback service env` under the same policy (permission, lock, approvals), audited
//! under `rollback` with the incident and the deploy the button was on.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use super::model::Incident;
use crate::chat::{Button, ButtonStyle, Message, Text, TimeStyle};
use crate::deploy::DeployOutcome;
use crate::desk::{Desk, Invocation};
use crate::error::CommandError;

/// Custom-id prefix of the Rollback buttons: `incident-rollback:<incident>:<deploy>`.
pub const ROLLBACK_BUTTON: &str = "incident-rollback:";

/// How far back a deploy counts as recent: a day covers yesterday's release that only now
/// shows its fault, and not last week's.
const RECENT_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// Deploys listed: enough for a busy service's day; one button row holds five.
const RECENT_MAX: i64 = 5;

#[derive(Debug, Clone, sqlx::FromRow)]
struct RecentDeploy {
    id: i64,
    service: String,
    environment: String,
    version: String,
    state: String,
    is_rollback: bool,
    requested_by_name: String,
    requested_at: DateTime<Utc>,
}

async fn recent(
    db: impl PgExecutor<'_>,
    services: &[String],
    since: DateTime<Utc>,
) -> Result<Vec<RecentDeploy>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, service, environment, version, state, is_rollback, requested_by_name, requested_at
         FROM deploys WHERE service = ANY($1) AND requested_at >= $2
         ORDER BY requested_at DESC, id DESC LIMIT $3",
    )
    .bind(services)
    .bind(since)
    .bind(RECENT_MAX)
    .fetch_all(db)
    .await
}

/// The message listing the recent deploys of `incident`'s services, or `None` when it names
/// no services or none was deployed recently.
pub(super) async fn recent_deploys_message(
    db: impl PgExecutor<'_>,
    incident: &Incident,
    now: DateTime<Utc>,
) -> Result<Option<Message>, sqlx::Error> {
    if incident.services.is_empty() {
        return Ok(None);
    }
    let deploys = recent(db, &incident.services, now - RECENT_WINDOW).await?;
    if deploys.is_empty() {
        return Ok(None);
    }
    let mut text = Text::new().strong("Recent deploys of the affected services");
    let mut buttons: Vec<Button> = Vec::new();
    for d in &deploys {
        text = text
            .plain("\n")
            .time(d.requested_at, TimeStyle::Relative)
            .plain(format!(
                " · #{} {} {} → {} ({}{}) by {}",
                d.id,
                if d.is_rollback {
                    "rollback of"
                } else {
                    "deploy of"
                },
                d.service,
                d.environment,
                d.version,
                if d.state == "succeeded" {
                    String::new()
                } else {
                    format!(", {}", d.state)
                },
                d.requested_by_name
            ));
        let seen = buttons
            .iter()
            .any(|b| b.label == rollback_label(&d.service, &d.environment));
        if !seen {
            buttons.push(Button {
                label: rollback_label(&d.service, &d.environment),
                custom_id: format!("{ROLLBACK_BUTTON}{}:{}", incident.id, d.id),
                style: ButtonStyle::Danger,
            });
        }
    }
    text = text.plain("\nRollback goes back to the previous succeeded version, as /rollback does.");
    Ok(Some(Message {
        buttons,
        ..Message::text(text)
    }))
}

fn rollback_label(service: &str, environment: &str) -> String {
    format!("Rollback {service} in {environment}")
}

/// `(incident, deploy)` of a Rollback button's custom id.
pub fn parse_rollback_button(custom_id: &str) -> Option<(i64, i64)> {
    let (incident, deploy) = custom_id.strip_prefix(ROLLBACK_BUTTON)?.split_once(':')?;
    Some((incident.parse().ok()?, deploy.parse().ok()?))
}

impl Desk {
    /// Rollback pressed under the incident channel's list of deploys: `/rollback` of that
    /// deploy's service and environment, under the same policy.
    pub async fn incident_rollback(
        &self,
        inv: &Invocation,
        deploy_id: i64,
    ) -> Result<DeployOutcome, CommandError> {
        let Some(deploy) = crate::deploy::deploy_by_id(&self.pool, deploy_id).await? else {
            let e = CommandError::NotFound(format!("deploy #{deploy_id} does not exist"));
            return Err(self.refuse(inv, e).await);
        };
        self.rollback(inv, &deploy.service, &deploy.environment, None)
            .await
    }
}
