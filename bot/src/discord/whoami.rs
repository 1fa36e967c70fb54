//! `/whoami`: your name, roles and the permissions they grant. Anyone may ask.

use super::{Context, Error, invocation, render};

/// Show your name, your roles and the permissions they grant you
#[poise::command(slash_command, guild_only)]
pub async fn whoami(ctx: Context<'_>) -> Result<(), Error> {
    let inv = invocation(ctx).await;
    let who = ctx.data().desk.whoami(&inv).await?;
    ctx.send(
        poise::CreateReply::default()
            .content(render::whoami(&who))
            .ephemeral(true),
    )
    .await
    .map_err(Error::internal)?;
    Ok(())
}
