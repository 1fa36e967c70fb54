//! `/audit recent [count] [actor] [command] [outcome]` and `/audit verify`. Text filters have
//! a `max_length` (actor and command 100, outcome 32).

use opsbot_commands::CommandError;
use opsbot_commands::audit::{AuditQuery, Outcome, Page, RECENT_DEFAULT_LIMIT};
use poise::serenity_prelude as serenity;
use serde_json::json;

use super::invocation::component_invocation;
use super::{Context, Data, Error, invocation, render};

/// Prefix of the custom id of the "Older" button under `/audit recent`.
pub const OLDER_BUTTON: &str = "audit-older";

/// Read and check the audit trail
#[poise::command(
    slash_command,
    guild_only,
    subcommands("recent", "verify"),
    subcommand_required
)]
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
    #[description = "Only events by this person (name or user id)"]
    #[max_length = 100]
    actor: Option<String>,
    #[description = "Only this command or group, e.g. `deploy` or `deploy run`"]
    #[max_length = 100]
    command: Option<String>,
    #[description = "Only this outcome, e.g. denied"]
    #[autocomplete = "complete_outcome"]
    #[max_length = 32]
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
    let page = ctx.data().desk.audit_recent(&inv, filter.clone()).await?;
    ctx.send(
        poise::CreateReply::default()
            .embed(render::recent_embed(&page.events, None))
            .components(older_button(&page, &filter))
            .ephemeral(true),
    )
    .await
    .map_err(Error::internal)?;
    Ok(())
}

/// An "Older" button when there is a next page and the filter fits a custom id.
fn older_button(page: &Page, filter: &AuditQuery) -> Vec<serenity::CreateActionRow> {
    let Some(cursor) = page.next_cursor else {
        return Vec::new();
    };
    let fields = [
        cursor.to_string(),
        filter.limit.to_string(),
        filter.outcome.clone().unwrap_or_default(),
        filter.actor.clone().unwrap_or_default(),
        filter.command.clone().unwrap_or_default(),
    ];
    if fields.iter().any(|f| f.contains('|')) {
        return Vec::new();
    }
    let custom_id = format!("{OLDER_BUTTON}|{}", fields.join("|"));
    // Discord's limit on a custom id.
    if custom_id.len() > 100 {
        return Vec::new();
    }
    vec![serenity::CreateActionRow::Buttons(vec![
        serenity::CreateButton::new(custom_id)
            .label("Older")
            .style(serenity::ButtonStyle::Secondary),
    ])]
}

/// The filter encoded in an "Older" button's custom id.
fn parse_older(custom_id: &str) -> Option<AuditQuery> {
    let mut fields = custom_id
        .strip_prefix(OLDER_BUTTON)?
        .strip_prefix('|')?
        .split('|');
    let before = fields.next()?.parse().ok()?;
    let limit = fields.next()?.parse().ok()?;
    let text = |f: Option<&str>| f.filter(|s| !s.is_empty()).map(str::to_owned);
    Some(AuditQuery {
        before_id: Some(before),
        limit,
        outcome: text(fields.next()),
        actor: text(fields.next()),
        command: text(fields.next()),
        ..AuditQuery::default()
    })
}

/// "Older" pressed: the next page replaces the message, audited as `audit recent`.
pub async fn older_pressed(
    ctx: &serenity::Context,
    data: &Data,
    press: &serenity::ComponentInteraction,
) -> Result<(), Error> {
    let Some(filter) = parse_older(&press.data.custom_id) else {
        return Err(CommandError::Invalid(
            "this button is out of date; run /audit recent again".to_owned(),
        ));
    };
    let args = json!({
        "before": filter.before_id,
        "count": filter.limit,
        "outcome": filter.outcome,
        "actor": filter.actor,
        "command": filter.command,
    });
    let inv = component_invocation(ctx, press, "audit recent", args).await;
    let page = data.desk.audit_recent(&inv, filter.clone()).await?;
    let update = serenity::CreateInteractionResponseMessage::new()
        .embed(render::recent_embed(&page.events, filter.before_id))
        .components(older_button(&page, &filter))
        .allowed_mentions(render::no_pings());
    press
        .create_response(
            ctx,
            serenity::CreateInteractionResponse::UpdateMessage(update),
        )
        .await
        .map_err(Error::internal)
}

/// Check that no audit event was altered, removed or re-ordered (needs audit:verify)
#[poise::command(slash_command, guild_only)]
pub async fn verify(ctx: Context<'_>) -> Result<(), Error> {
    // A walk of a long chain takes a while: defer, privately, so that a refusal stays private.
    ctx.defer_ephemeral().await.map_err(Error::internal)?;
    let inv = invocation(ctx).await;
    let report = ctx.data().desk.audit_verify(&inv).await?;
    ctx.send(poise::CreateReply::default().content(render::verify(&report)))
        .await
        .map_err(Error::internal)?;
    Ok(())
}

async fn complete_outcome(
    _ctx: Context<'_>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let choices = Outcome::ALL
        .iter()
        .map(|o| o.as_str())
        .filter(|o| o.starts_with(partial))
        .map(serenity::AutocompleteChoice::from)
        .collect();
    serenity::CreateAutocompleteResponse::new().set_choices(choices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_button_round_trips_its_filter() {
        let filter = AuditQuery {
            limit: 5,
            outcome: Some("denied".into()),
            actor: Some("ana".into()),
            ..AuditQuery::default()
        };
        let page = Page {
            events: Vec::new(),
            next_cursor: Some(42),
        };
        let rows = older_button(&page, &filter);
        assert_eq!(rows.len(), 1);
        let parsed = parse_older("audit-older|42|5|denied|ana|").expect("parses");
        assert_eq!(parsed.before_id, Some(42));
        assert_eq!(
            (
                parsed.limit,
                parsed.outcome.as_deref(),
                parsed.actor.as_deref(),
                parsed.command
            ),
            (5, Some("denied"), Some("ana"), None)
        );
        assert!(parse_older("audit-older|x").is_none());
        assert!(
            older_button(
                &Page {
                    events: Vec::new(),
                    next_cursor: None
                },
                &filter
            )
            .is_empty()
        );
        let long = AuditQuery {
            command: Some("x".repeat(120)),
            ..filter
        };
        assert!(
            older_button(&page, &long).is_empty(),
            "custom ids are at most 100 characters"
        );
    }
}
