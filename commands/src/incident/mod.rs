//! Incident channels that run themselves.
//!
//! ```text
//! /incident declare title severity [services] [commander] [description]
//! /incident status state [text]     /incident severity level     /incident role role member
//! /incident note text               /incident resolve summary    /incident reopen
//! /incident list                  /incident postmortem
//! ```
//!
//! Declaring creates the incident's row, its first timeline event, the audit event and the
//! announcement (outbox) in one transaction; the channel `inc-<n>-<slug>` under
//! `[channels] incident_category` is then created through [`crate::chat::Chat`], and if opsbot
//! dies before Discord answers, the [reconciler](Desk::incident_reconcile) finishes the job,
//! finding a channel Discord did create by its name instead of making a second one. Inside an
//! incident's channel the incident is implied; elsewhere commands take `id:`. Changing an
//! incident needs `incident:declare`, `incident:update` or `incident:resolve`; reading needs
//! nothing. Open incidents at a severity with `freeze_deploys` block deploys of their
//! services to `[incidents] freeze_environments` ([`deploy_freeze`]).

mod channel;
mod commands;
pub mod dashboard;
pub mod deploys;
mod from_alert;
mod model;
pub mod postmortem;
pub mod reminders;
mod store;
pub mod timeline;
pub mod view;

pub use channel::RECONCILE_INTERVAL;
pub use commands::{ChangeOutcome, DeclareOutcome, DeclareRequest, IncidentChange, Target};
pub use from_alert::DeclareDefaults;
pub use model::{Incident, IncidentRole, Status, channel_name};
pub use timeline::{Entry, EntryKind};

use std::collections::BTreeMap;
use std::time::Duration;

use crate::desk::Desk;
use crate::error::CommandError;

/// One configured severity (`[incidents.severities.<name>]`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Severity {
    pub name: String,
    pub description: String,
    /// 0xRRGGBB.
    pub color: Option<u32>,
    /// No status update for this long: the commander is reminded.
    pub reminder: Option<Duration>,
    /// Discord role names pinged when an incident at this severity is declared.
    pub responders: Vec<String>,
    /// Open incidents at this severity block deploys of their services.
    pub freeze_deploys: bool,
}

/// What happens to an incident's channel after resolve.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Archive {
    /// Moved under `[channels] incident_archive_category`.
    Move,
    /// Members may read it but no longer write.
    ReadOnly,
    /// Left as it is.
    #[default]
    Keep,
}

/// A role people take in an incident, and what it means (told to whoever gets it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSpec {
    pub name: String,
    pub duty: String,
}

/// The default roles: commander, comms and scribe.
pub fn default_roles() -> Vec<RoleSpec> {
    ["commander", "comms", "scribe"]
        .into_iter()
        .map(role_spec)
        .collect()
}

/// The role named `name`, with the duty of the well-known ones.
pub fn role_spec(name: &str) -> RoleSpec {
    let duty = match name {
        "commander" => {
            "runs the response: decides, delegates, and posts a status update at least as often as the severity asks"
        }
        "comms" => "keeps stakeholders and customers informed, through the announcement channel",
        "scribe" => "keeps the timeline: notes what was seen, tried and decided, and when",
        _ => "helps run the response as the commander asks",
    };
    RoleSpec {
        name: name.to_owned(),
        duty: duty.to_owned(),
    }
}

/// Everything the incident feature knows from the config.
#[derive(Debug, Clone, Default)]
pub struct IncidentCatalog {
    /// By name, sorted.
    pub severities: BTreeMap<String, Severity>,
    pub roles: Vec<RoleSpec>,
    /// Environments an incident that freezes deploys freezes (default `production`).
    pub freeze_environments: Vec<String>,
    /// `[channels] incidents`: where incidents are announced.
    pub announce_channel: Option<i64>,
    /// `[channels] incident_category`: where incident channels are created.
    pub category: Option<i64>,
    /// `[channels] incident_archive_category`.
    pub archive_category: Option<i64>,
    pub archive: Archive,
    /// The guild incident channels are created in when the invocation names none.
    pub guild_id: Option<i64>,
    /// `[http] public_url`: summaries link to the incident's dashboard page there.
    pub public_url: Option<String>,
    /// `[incidents.github]`: postmortems also become GitHub issues.
    pub github: Option<postmortem::GithubIssues>,
}

impl IncidentCatalog {
    pub fn severity(&self, name: &str) -> Result<&Severity, CommandError> {
        self.severities.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.severities.keys().map(String::as_str).collect();
            CommandError::Invalid(if known.is_empty() {
                "no incident severities are configured ([incidents.severities.<name>])".to_owned()
            } else {
                format!(
                    "unknown severity `{name}`; configured: {}",
                    known.join(", ")
                )
            })
        })
    }

    pub fn role(&self, name: &str) -> Result<&RoleSpec, CommandError> {
        self.roles.iter().find(|r| r.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.roles.iter().map(|r| r.name.as_str()).collect();
            CommandError::Invalid(format!(
                "unknown incident role `{name}`; roles: {}",
                known.join(", ")
            ))
        })
    }
}

/// The incident feature's state on the [`Desk`].
#[derive(Debug, Default)]
struct IncidentFeature {
    catalog: IncidentCatalog,
}

static NO_INCIDENTS: std::sync::LazyLock<IncidentFeature> =
    std::sync::LazyLock::new(IncidentFeature::default);

impl Desk {
    /// Registers what the config says about incidents.
    pub fn with_incidents(self, catalog: IncidentCatalog) -> Desk {
        self.with_feature(IncidentFeature { catalog })
    }

    /// What the config says about incidents (empty when nothing is configured).
    pub fn incidents(&self) -> &IncidentCatalog {
        &self
            .feature::<IncidentFeature>()
            .unwrap_or(&NO_INCIDENTS)
            .catalog
    }
}

/// An open incident that freezes deploys of a service to an environment.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployFreeze {
    pub incident: Incident,
}

impl DeployFreeze {
    /// The refusal: names the incident and where it is handled.
    pub fn refusal(&self, service: &str, environment: &str) -> String {
        format!(
            "{service} is frozen in {environment} by open incident #{} ({}, {}){}; deploying now needs override:true and the `deploy:override` permission",
            self.incident.id,
            self.incident.title,
            self.incident.severity,
            self.incident
                .channel_name()
                .map(|c| format!(", handled in #{c}"))
                .unwrap_or_default()
        )
    }
}

/// The open incident (oldest first) whose severity freezes deploys of `service` to
/// `environment`, if any: the deploy policy refuses such deploys without an override.
pub(crate) async fn deploy_freeze(
    desk: &Desk,
    service: &str,
    environment: &str,
) -> Result<Option<DeployFreeze>, CommandError> {
    let catalog = desk.incidents();
    if !catalog.freeze_environments.iter().any(|e| e == environment) {
        return Ok(None);
    }
    let freezing: Vec<String> = catalog
        .severities
        .values()
        .filter(|s| s.freeze_deploys)
        .map(|s| s.name.clone())
        .collect();
    if freezing.is_empty() {
        return Ok(None);
    }
    let found = store::open_freezing(&desk.pool, service, &freezing).await?;
    Ok(found.map(|incident| DeployFreeze { incident }))
}

/// Announces in the incident's channel that a deploy went ahead despite its freeze (inside the
/// deploy's transaction).
pub(crate) async fn announce_override(
    tx: &mut sqlx::PgConnection,
    freeze: &DeployFreeze,
    deploy_headline: &str,
    by: &str,
    audit_event_id: i64,
) -> Result<(), CommandError> {
    if let Some(channel) = freeze.incident.channel_id {
        let message = view::override_notice(&freeze.incident, deploy_headline, by);
        crate::outbox::enqueue(&mut *tx, channel, &message, Some(audit_event_id)).await?;
    }
    Ok(())
}

/// The incident whose channel is `channel_id` (its number and services), if it is one.
pub(crate) async fn in_channel(
    desk: &Desk,
    channel_id: i64,
) -> Result<Option<(i64, Vec<String>)>, CommandError> {
    let mut conn = desk.pool.acquire().await?;
    let Some(id) = store::by_channel(&mut conn, channel_id).await? else {
        return Ok(None);
    };
    Ok(store::by_id(&mut conn, id, false)
        .await?
        .map(|incident| (incident.id, incident.services)))
}

#[cfg(test)]
mod tests;
