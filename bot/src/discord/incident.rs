//! `/incident declare|status|severity|role|note|resolve|reopen|list|postmortem`.
//!
//! Inside an incident's channel the incident is implied; elsewhere the commands take `id:`.
//! Every text option has a `max_length`, so no reply that quotes it exceeds Discord's limits.

use opsbot_commands::incident::{DeclareRequest, IncidentChange, Target};
use poise::serenity_prelude as serenity;

use super::autocomplete::choices;
use super::{Context, Error, invocation, render};

/// Declare and run incidents, each in its own channel
#[poise::command(
    slash_command,
    guild_only,
    subcommands(
        "declare",
        "status",
        "severity",
        "role",
        "note",
        "resolve",
        "reopen",
        "list",
        "postmortem"
    ),
    subcommand_required
)]
pub async fn incident(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// The statuses an update may set (`resolved` is /incident resolve).
#[derive(Debug, Clone, Copy, poise::ChoiceParameter)]
pub enum StatusChoice {
    #[name = "investigating"]
    Investigating,
    #[name = "identified"]
    Identified,
    #[name = "monitoring"]
    Monitoring,
}

impl StatusChoice {
    fn as_str(self) -> &'static str {
        match self {
            StatusChoice::Investigating => "investigating",
            StatusChoice::Identified => "identified",
            StatusChoice::Monitoring => "monitoring",
        }
    }
}

async fn complete_severity(
    ctx: Context<'_>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let names = ctx.data().desk.incidents().severities.keys().cloned();
    choices(names, partial)
}

async fn complete_role(ctx: Context<'_>, partial: &str) -> serenity::CreateAutocompleteResponse {
    let roles = &ctx.data().desk.incidents().roles;
    let names: Vec<String> = if roles.is_empty() {
        opsbot_commands::incident::default_roles()
            .into_iter()
            .map(|r| r.name)
            .collect()
    } else {
        roles.iter().map(|r| r.name.clone()).collect()
    };
    choices(names, partial)
}

/// Declare an incident: a channel, a pinned summary, responders paged (needs incident:declare)
///
/// With no options at all it opens a form instead (quick from a phone).
#[poise::command(slash_command, guild_only)]
pub async fn declare(
    ctx: Context<'_>,
    #[description = "What is broken, in a few words (leave every option out for a form)"]
    #[max_length = 100]
    title: Option<String>,
    #[description = "Severity"]
    #[autocomplete = "complete_severity"]
    #[max_length = 32]
    severity: Option<String>,
    #[description = "Affected services, comma-separated"]
    #[max_length = 200]
    services: Option<String>,
    #[description = "Who commands the response"] commander: Option<serenity::User>,
    #[description = "What is known so far"]
    #[max_length = 1000]
    description: Option<String>,
) -> Result<(), Error> {
    let nothing_given = title.is_none()
        && severity.is_none()
        && services.is_none()
        && commander.is_none()
        && description.is_none();
    if nothing_given {
        return super::incident_form::declare_with_form(ctx, None, None).await;
    }
    let inv = invocation(ctx).await;
    // A missing title or severity is refused (and audited) by the domain, naming what to give.
    let request = DeclareRequest {
        title: title.unwrap_or_default(),
        severity: severity.unwrap_or_default(),
        services: services.unwrap_or_default(),
        commander: commander.map(|u| (u.id.get() as i64, u.name.clone())),
        description: description.unwrap_or_default(),
        alert_group: None,
    };
    let outcome = ctx.data().desk.incident_declare(&inv, request).await?;
    ctx.send(render::reply(&outcome.message))
        .await
        .map_err(Error::internal)?;
    Ok(())
}

async fn change(ctx: Context<'_>, id: Option<i64>, change: IncidentChange) -> Result<(), Error> {
    let inv = invocation(ctx).await;
    let outcome = ctx
        .data()
        .desk
        .incident_change(&inv, Target { id }, change)
        .await?;
    ctx.send(render::reply(&outcome.message))
        .await
        .map_err(Error::internal)?;
    Ok(())
}

/// Post a status update here and to the announcement channel (needs incident:update)
#[poise::command(slash_command, guild_only)]
pub async fn status(
    ctx: Context<'_>,
    #[description = "The new status"] state: StatusChoice,
    #[description = "What changed"]
    #[max_length = 1000]
    text: Option<String>,
    #[description = "Incident number (implied inside its channel)"]
    #[min = 1]
    id: Option<i64>,
) -> Result<(), Error> {
    let update = IncidentChange::Status {
        status: state.as_str().to_owned(),
        text: text.unwrap_or_default(),
    };
    change(ctx, id, update).await
}

/// Change the severity (needs incident:update)
#[poise::command(slash_command, guild_only)]
pub async fn severity(
    ctx: Context<'_>,
    #[description = "The new severity"]
    #[autocomplete = "complete_severity"]
    #[max_length = 32]
    level: String,
    #[description = "Incident number (implied inside its channel)"]
    #[min = 1]
    id: Option<i64>,
) -> Result<(), Error> {
    change(ctx, id, IncidentChange::Severity { level }).await
}

/// Give a member a role: commander, comms, scribe (needs incident:update)
#[poise::command(slash_command, guild_only)]
pub async fn role(
    ctx: Context<'_>,
    #[description = "The role"]
    #[autocomplete = "complete_role"]
    #[max_length = 32]
    role: String,
    #[description = "Who takes it"] member: serenity::User,
    #[description = "Incident number (implied inside its channel)"]
    #[min = 1]
    id: Option<i64>,
) -> Result<(), Error> {
    let assign = IncidentChange::Role {
        role,
        user_id: member.id.get() as i64,
        user_name: member.name.clone(),
    };
    change(ctx, id, assign).await
}

/// Add a note to the timeline (needs incident:update)
#[poise::command(slash_command, guild_only)]
pub async fn note(
    ctx: Context<'_>,
    #[description = "What was seen, tried or decided"]
    #[max_length = 1000]
    text: String,
    #[description = "Incident number (implied inside its channel)"]
    #[min = 1]
    id: Option<i64>,
) -> Result<(), Error> {
    change(ctx, id, IncidentChange::Note { text }).await
}

/// Resolve the incident with a summary (needs incident:resolve)
#[poise::command(slash_command, guild_only)]
pub async fn resolve(
    ctx: Context<'_>,
    #[description = "What happened and what fixed it"]
    #[max_length = 1000]
    summary: String,
    #[description = "Incident number (implied inside its channel)"]
    #[min = 1]
    id: Option<i64>,
) -> Result<(), Error> {
    change(ctx, id, IncidentChange::Resolve { summary }).await
}

/// Reopen a resolved incident (needs incident:resolve)
#[poise::command(slash_command, guild_only)]
pub async fn reopen(
    ctx: Context<'_>,
    #[description = "Incident number (implied inside its channel)"]
    #[min = 1]
    id: Option<i64>,
) -> Result<(), Error> {
    change(ctx, id, IncidentChange::Reopen).await
}

/// Open incidents
#[poise::command(slash_command, guild_only)]
pub async fn list(ctx: Context<'_>) -> Result<(), Error> {
    let inv = invocation(ctx).await;
    let message = ctx.data().desk.incident_list(&inv).await?;
    ctx.send(render::reply(&message).ephemeral(true))
        .await
        .map_err(Error::internal)?;
    Ok(())
}

/// Write the postmortem: a Markdown file, and a GitHub issue when configured (needs incident:update)
#[poise::command(slash_command, guild_only)]
pub async fn postmortem(
    ctx: Context<'_>,
    #[description = "Incident number (implied inside its channel)"]
    #[min = 1]
    id: Option<i64>,
) -> Result<(), Error> {
    // Opening or updating a GitHub issue can take longer than Discord's 3 seconds.
    if ctx.data().desk.incidents().github.is_some() {
        ctx.defer().await.map_err(Error::internal)?;
    }
    let inv = invocation(ctx).await;
    let written = ctx
        .data()
        .desk
        .incident_postmortem(&inv, Target { id })
        .await?;
    let message = opsbot_commands::incident::postmortem::reply(&written);
    let file = serenity::CreateAttachment::bytes(written.markdown.into_bytes(), written.file_name);
    ctx.send(render::reply(&message).attachment(file))
        .await
        .map_err(Error::internal)?;
    Ok(())
}

/// The custom-id prefixes of an incident channel's buttons (Rollback under its deploys).
pub const COMPONENTS: [&str; 1] = [opsbot_commands::incident::deploys::ROLLBACK_BUTTON];

/// Whether `custom_id` is a button of an incident channel (Rollback under its deploys).
pub fn is_incident_button(custom_id: &str) -> bool {
    COMPONENTS
        .iter()
        .any(|prefix| custom_id.starts_with(prefix))
}

/// Rollback pressed under an incident channel's recent deploys: `/rollback` of that service
/// and environment; the rollback's status message is kept up to date like /rollback's.
pub async fn button_pressed(
    ctx: &serenity::Context,
    data: &super::Data,
    press: &serenity::ComponentInteraction,
) -> Result<(), Error> {
    let Some((incident, deploy)) =
        opsbot_commands::incident::deploys::parse_rollback_button(&press.data.custom_id)
    else {
        return Err(Error::Invalid("this button is out of date".to_owned()));
    };
    let args = serde_json::json!({ "incident": incident, "deploy_id": deploy });
    let inv = super::invocation::component_invocation(ctx, press, "rollback", args).await;
    let desk = &data.desk;
    let outcome = desk.incident_rollback(&inv, deploy).await?;
    super::deploy::answer_press_with_status(ctx, data, press, &outcome).await
}
