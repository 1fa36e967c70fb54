//! `/audit recent [count] [actor] [command] [outcome]` and `/audit verify`.

use opsbot_commands::audit::{AuditQuery, Outcome, RECENT_DEFAULT_LIMIT};
use poise::serenity_prelude as serenity;

use super::{Context, Error, invocation, render};

/// Read and check the audit trail
#[poise::command(slash_command, guild_only, subcommands("recent", "verify"), subcommand_required)]
pub async fn audit(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Show the newest audit events (needs audit:read)
#[poise::command(slash_command, guild_only)]
pub async fn recent(
    ctx: Context<'_>,
    #[description = "How many events (1-25, default 10)"]
    #[min = 1]
    #[max = 25]
    count: Option<i64>,
    #[description = "Only events by this person (name or user id)"] actor: Option<String>,
    #[description = "Only this command or group, e.g. `deploy` or `deploy run`"] command: Option<String>,
    #[description = "Only this outcome, e.g. denied"]
    #[autocomplete = "complete_outcome"]
    outcome: Option<String>,
) -> Result<(), Error> {
    let inv = invocation(ctx).await;
    let filter = AuditQuery {
        actor,
        command,
        outcome,
        limit: count.unwrap_or(RECENT_DEFAULT_LIMIT),
        ..AuditQuery::default()
    };
    let events = ctx.data().desk.audit_recent(&inv, filter).await?;
    ctx.send(
        poise::CreateReply::default()
            .embed(render::recent_embed(&events))
            .ephemeral(true),
    )
    .await
    .map_err(Error::internal)?;
    Ok(())
}

/// Check that no audit event was altered, removed or re-ordered (needs audit:verify)
#[poise::command(slash_command, guild_only)]
pub async fn verify(ctx: Context<'_>) -> Result<(), Error> {
    ctx.defer().await.map_err(Error::internal)?;
    let inv = invocation(ctx).await;
    let report = ctx.data().desk.audit_verify(&inv).await?;
    ctx.send(poise::CreateReply::default().content(render::verify(&report)))
        .await
        .map_err(Error::internal)?;
    Ok(())
}

async fn complete_outcome(_ctx: Context<'_>, partial: &str) -> serenity::CreateAutocompleteResponse {
    let choices = Outcome::ALL
        .iter()
        .map(|o| o.as_str())
        .filter(|o| o.starts_with(partial))
        .map(serenity::AutocompleteChoice::from)
        .collect();
    serenity::CreateAutocompleteResponse::new().set_choices(choices)
}
