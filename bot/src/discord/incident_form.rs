//! The quick ways to declare an incident, from a phone or from the message that shows the
//! problem:
//!
//! - `/incident declare` with no options opens a form (title, severity, services,
//!   description);
//! - right-click a message → Apps → **Declare incident** opens the same form, its title and
//!   description pre-filled from the message.
//!
//! - right-click a message in an incident's channel → Apps → **Add to incident timeline**
//!   copies it, with its author and time, into the timeline (a note, `incident:update`).
//!
//! - **Declare incident** under an alert message opens the form pre-filled from the alert
//!   group; the incident then links the group (its message names the incident).
//!
//! Submitting the form declares the incident exactly as `/incident declare title:… severity:…`
//! does (same permission, same audit record under `incident declare`, args as filled in).

use opsbot_commands::incident::{DeclareRequest, IncidentChange, Target};
use poise::serenity_prelude as serenity;
use serde_json::json;

use super::invocation::component_invocation;
use super::{Context, Data, Error, invocation, render};

/// How long the form waits for a submit: Discord's interaction token lives 15 minutes, after
/// which the bot could not answer anyway.
const FORM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The form's limits match the slash command's options (title 100, description 1000).
const TITLE_MAX: usize = 100;
const DESCRIPTION_MAX: usize = 1000;

/// The declare form (a Discord modal); field names are the text inputs' custom ids.
#[derive(Debug, Default, poise::Modal)]
#[name = "Declare an incident"]
pub struct DeclareForm {
    #[name = "Title"]
    #[placeholder = "What is broken, in a few words"]
    #[max_length = 100]
    title: String,
    #[name = "Severity"]
    #[placeholder = "e.g. sev1"]
    #[max_length = 32]
    severity: String,
    #[name = "Services"]
    #[placeholder = "Affected services, comma-separated"]
    #[max_length = 200]
    services: Option<String>,
    #[name = "Description"]
    #[placeholder = "What is known so far"]
    #[paragraph]
    #[max_length = 1000]
    description: Option<String>,
}

/// Opens the form (pre-filled with `defaults`), waits for the submit and declares.
pub async fn declare_with_form(
    ctx: Context<'_>,
    defaults: Option<DeclareForm>,
    from_message: Option<u64>,
) -> Result<(), Error> {
    let poise::Context::Application(app) = ctx else {
        return Err(Error::Invalid(
            "the declare form opens only from a slash command or the Apps menu".to_owned(),
        ));
    };
    let mut asked = invocation(ctx).await;
    asked.command = "incident declare".to_owned();
    asked.args = json!({
        "form": true,
        "from_message": from_message.map(|id| id.to_string()),
    });
    ctx.data().desk.incident_declare_form(&asked).await?;
    let Some(form) = poise::execute_modal(app, defaults, Some(FORM_TIMEOUT))
        .await
        .map_err(Error::internal)?
    else {
        // Dismissed or left open past the token's life: nothing was declared.
        return Ok(());
    };
    let mut inv = invocation(ctx).await;
    inv.command = "incident declare".to_owned();
    inv.args = json!({
        "title": form.title,
        "severity": form.severity,
        "services": form.services,
        "description": form.description,
        "form": true,
        "from_message": from_message.map(|id| id.to_string()),
    });
    let request = DeclareRequest {
        title: form.title,
        severity: form.severity.trim().to_owned(),
        services: form.services.unwrap_or_default(),
        commander: None,
        description: form.description.unwrap_or_default(),
        alert_group: None,
    };
    let outcome = ctx.data().desk.incident_declare(&inv, request).await?;
    ctx.send(render::reply(&outcome.message))
        .await
        .map_err(Error::internal)?;
    Ok(())
}

/// The first `max` characters of `text`.
fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Declare an incident from this message (needs incident:declare)
#[poise::command(context_menu_command = "Declare incident", guild_only)]
pub async fn declare_from_message(
    ctx: Context<'_>,
    #[description = "The message that shows the problem"] message: serenity::Message,
) -> Result<(), Error> {
    let text = if message.content.trim().is_empty() {
        message
            .embeds
            .first()
            .and_then(|e| e.title.clone().or_else(|| e.description.clone()))
            .unwrap_or_default()
    } else {
        message.content.clone()
    };
    let first_line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    // A message in an interaction's `resolved` carries no guild id: the link takes the command's.
    let link = message.id.link(message.channel_id, ctx.guild_id());
    let description = format!("{} (from {link}, by {})", text.trim(), message.author.name);
    let defaults = DeclareForm {
        title: clip(first_line.trim(), TITLE_MAX),
        description: Some(clip(&description, DESCRIPTION_MAX)),
        ..DeclareForm::default()
    };
    declare_with_form(ctx, Some(defaults), Some(message.id.get())).await
}

/// Copy this message, with its author and time, into the incident's timeline (needs incident:update)
#[poise::command(context_menu_command = "Add to incident timeline", guild_only)]
pub async fn add_to_timeline(
    ctx: Context<'_>,
    #[description = "The message to copy"] message: serenity::Message,
) -> Result<(), Error> {
    let at = message.timestamp.format("%Y-%m-%d %H:%M UTC");
    let text = format!(
        "{} at {at}: {}",
        message.author.name,
        message.content.trim()
    );
    let mut inv = invocation(ctx).await;
    inv.command = "incident note".to_owned();
    inv.args = json!({
        "from_message": message.id.get().to_string(),
        "author": message.author.name,
    });
    let note = IncidentChange::Note {
        text: clip(&text, DESCRIPTION_MAX),
    };
    let outcome = ctx
        .data()
        .desk
        .incident_change(&inv, Target { id: None }, note)
        .await?;
    ctx.send(render::reply(&outcome.message))
        .await
        .map_err(Error::internal)?;
    Ok(())
}

/// The Declare incident button under an alert message: checks the permission and the group
/// before the form opens, then declares from the submitted form, linking the group. The
/// answer is a follow-up of the press (its first response is the form).
pub async fn declare_from_alert(
    ctx: &serenity::Context,
    data: &Data,
    press: &serenity::ComponentInteraction,
    group_id: i64,
) -> Result<(), Error> {
    let open = component_invocation(
        ctx,
        press,
        "incident declare",
        json!({ "alert_group": group_id, "form": true }),
    )
    .await;
    let defaults = data.desk.alert_declare_form(&open, group_id).await?;
    let form = DeclareForm {
        title: defaults.title,
        severity: defaults.severity,
        services: Some(defaults.services).filter(|s| !s.is_empty()),
        description: Some(defaults.description).filter(|s| !s.is_empty()),
    };
    let Some(form) = poise::execute_modal_on_component_interaction(
        ctx,
        press.clone(),
        Some(form),
        Some(FORM_TIMEOUT),
    )
    .await
    .map_err(Error::internal)?
    else {
        return Ok(());
    };
    let mut inv = open;
    inv.args = json!({
        "title": form.title,
        "severity": form.severity,
        "services": form.services,
        "description": form.description,
        "form": true,
        "alert_group": group_id,
    });
    let request = DeclareRequest {
        title: form.title,
        severity: form.severity.trim().to_owned(),
        services: form.services.unwrap_or_default(),
        commander: None,
        description: form.description.unwrap_or_default(),
        alert_group: Some(group_id),
    };
    let followup = match data.desk.incident_declare(&inv, request).await {
        Ok(outcome) => render::followup(&outcome.message),
        // Another replica answered it.
        Err(Error::Replayed(_)) => return Ok(()),
        // The press's first response was the form: a refusal is a follow-up too.
        Err(e) => serenity::CreateInteractionResponseFollowup::new()
            .content(render::error_text(&e))
            .allowed_mentions(render::no_pings())
            .ephemeral(true),
    };
    press
        .create_followup(ctx, followup)
        .await
        .map_err(Error::internal)?;
    Ok(())
}
