//! `/digest preview name`: the digest as it would read if it fired now, shown only to you
//! (needs `digest:preview`). Scheduled posts need no command: see `[[digests]]`.

use poise::serenity_prelude as serenity;

use super::{Context, Error, invocation, render};

/// Scheduled digests
#[poise::command(slash_command, guild_only, subcommands("preview"), subcommand_required)]
pub async fn digest(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Show a digest now, only to you (needs digest:preview)
#[poise::command(slash_command, guild_only)]
pub async fn preview(
    ctx: Context<'_>,
    #[description = "The digest, as named in [[digests]]"]
    #[autocomplete = "complete_digest"]
    #[max_length = 32]
    name: String,
) -> Result<(), Error> {
    let inv = invocation(ctx).await;
    let message = ctx
        .data()
        .desk
        .digest_preview(&inv, &name, chrono::Utc::now())
        .await?;
    ctx.send(render::reply(&message).ephemeral(true))
        .await
        .map_err(Error::internal)?;
    Ok(())
}

async fn complete_digest(ctx: Context<'_>, partial: &str) -> serenity::CreateAutocompleteResponse {
    let names = ctx
        .data()
        .desk
        .digests()
        .digests
        .iter()
        .map(|d| d.name.clone());
    super::autocomplete::choices(names, partial)
}
