//! `/deploy run|status|history|lock|unlock`, `/rollback`, and the Approve/Reject buttons.
//!
//! Every text option has a `max_length` (names 100, versions 200, reasons 4000, durations
//! 50), so Discord's client refuses an over-long value before it reaches opsbot. A reason may
//! be long (context pasted from an incident): every message that shows it goes through the
//! one renderer, which cuts it to Discord's limits and lets nothing in it ping.

use opsbot_commands::deploy::{Deploy, DeployRequest, StatusReport, parse_button, view};
use poise::serenity_prelude as serenity;
use serde_json::json;

use super::autocomplete::{CHOICES_MAX, choices};
use super::invocation::component_invocation;
use super::{Context, Data, Error, invocation, render};
use crate::discord::render::message::truncate;

/// Ship a version of a service to an environment
#[poise::command(
    slash_command,
    guild_only,
    subcommands("run", "status", "history", "lock", "unlock"),
    subcommand_required
)]
pub async fn deploy(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Deploy a version (needs deploy:<env>; override:true also needs deploy:override)
#[poise::command(slash_command, guild_only)]
pub async fn run(
    ctx: Context<'_>,
    #[description = "Service to deploy"]
    #[autocomplete = "complete_service"]
    #[max_length = 100]
    service: String,
    #[description = "Version, tag or commit"]
    #[autocomplete = "complete_version"]
    #[max_length = 200]
    version: String,
    #[description = "Environment"]
    #[autocomplete = "complete_environment"]
    #[max_length = 100]
    env: String,
    #[description = "Why (shown to approvers and in the audit log)"]
    #[max_length = 4000]
    reason: Option<String>,
    #[description = "Deploy during a freeze window (needs deploy:override; announced loudly)"]
    #[rename = "override"]
    override_freeze: Option<bool>,
) -> Result<(), Error> {
    let inv = invocation(ctx).await;
    let request = DeployRequest {
        service,
        version,
        environment: env,
        reason: reason.unwrap_or_default(),
        override_freeze: override_freeze.unwrap_or(false),
    };
    let outcome = ctx.data().desk.deploy_run(&inv, request).await?;
    post_status(ctx, &outcome.deploy, &outcome.message).await
}

/// Roll back to the previous succeeded version, or to a given one (same policy as a deploy)
#[poise::command(slash_command, guild_only)]
pub async fn rollback(
    ctx: Context<'_>,
    #[description = "Service to roll back"]
    #[autocomplete = "complete_service"]
    #[max_length = 100]
    service: String,
    #[description = "Environment"]
    #[autocomplete = "complete_environment"]
    #[max_length = 100]
    env: String,
    #[description = "Version to go back to (default: the previous succeeded one)"]
    #[autocomplete = "complete_version"]
    #[max_length = 200]
    to: Option<String>,
) -> Result<(), Error> {
    let inv = invocation(ctx).await;
    let outcome = ctx.data().desk.rollback(&inv, &service, &env, to).await?;
    post_status(ctx, &outcome.deploy, &outcome.message).await
}

/// The status message is a public reply, so others can press its buttons; opsbot keeps its
/// id to edit it as the deploy progresses.
async fn post_status(
    ctx: Context<'_>,
    deploy: &Deploy,
    message: &opsbot_commands::chat::Message,
) -> Result<(), Error> {
    let handle = ctx
        .send(render::reply(message))
        .await
        .map_err(Error::internal)?;
    match handle.message().await {
        Ok(posted) => {
            ctx.data()
                .desk
                .deploy_attach_message(
                    deploy.id,
                    posted.channel_id.get() as i64,
                    posted.id.get() as i64,
                )
                .await?;
        }
        Err(e) => {
            tracing::warn!(deploy = deploy.id, error = %e, "could not read back the status message; it will not be edited live")
        }
    }
    Ok(())
}

/// Answers a button press (a Rollback under an alert or in an incident channel) with the
/// deploy's status message, then attaches that message to the deploy so the tracker keeps it
/// up to date, as [`post_status`] does for a command.
pub async fn answer_press_with_status(
    ctx: &serenity::Context,
    data: &Data,
    press: &serenity::ComponentInteraction,
    outcome: &opsbot_commands::deploy::DeployOutcome,
) -> Result<(), Error> {
    press
        .create_response(
            ctx,
            serenity::CreateInteractionResponse::Message(render::update(&outcome.message)),
        )
        .await
        .map_err(Error::internal)?;
    match press.get_response(ctx).await {
        Ok(posted) => {
            data.desk
                .deploy_attach_message(
                    outcome.deploy.id,
                    posted.channel_id.get() as i64,
                    posted.id.get() as i64,
                )
                .await?;
        }
        Err(e) => {
            tracing::warn!(deploy = outcome.deploy.id, error = %e, "could not read back the rollback's status message; it will not be edited live")
        }
    }
    Ok(())
}

/// Active deploys, the latest of each service and environment, and locks
#[poise::command(slash_command, guild_only)]
pub async fn status(
    ctx: Context<'_>,
    #[description = "Only this service"]
    #[autocomplete = "complete_service"]
    #[max_length = 100]
    service: Option<String>,
) -> Result<(), Error> {
    let inv = invocation(ctx).await;
    // Reading Kubernetes Deployments live can take up to the domain's limit: defer, privately.
    let desk = &ctx.data().desk;
    let reads_live = desk.deploys().services.values().any(|s| {
        s.backend.kind() == "kubernetes" && service.as_deref().is_none_or(|name| name == s.name)
    });
    if reads_live {
        ctx.defer_ephemeral().await.map_err(Error::internal)?;
    }
    let report = desk.deploy_status(&inv, service.as_deref()).await?;
    ctx.send(
        poise::CreateReply::default()
            .embed(status_embed(&report))
            .ephemeral(true),
    )
    .await
    .map_err(Error::internal)?;
    Ok(())
}

/// The latest deploys of a service
#[poise::command(slash_command, guild_only)]
pub async fn history(
    ctx: Context<'_>,
    #[description = "Service"]
    #[autocomplete = "complete_service"]
    #[max_length = 100]
    service: String,
    #[description = "Only this environment"]
    #[autocomplete = "complete_environment"]
    #[max_length = 100]
    env: Option<String>,
) -> Result<(), Error> {
    let inv = invocation(ctx).await;
    let deploys = ctx
        .data()
        .desk
        .deploy_history(&inv, &service, env.as_deref())
        .await?;
    let lines: Vec<String> = deploys.iter().map(deploy_line).collect();
    let description = if lines.is_empty() {
        "No deploys yet.".to_owned()
    } else {
        lines.join("\n")
    };
    let embed = serenity::CreateEmbed::new()
        .title(format!(
            "Deploys of {service}{}",
            env.map(|e| format!(" to {e}")).unwrap_or_default()
        ))
        .description(truncate(&description, render::EMBED_DESCRIPTION_MAX));
    ctx.send(poise::CreateReply::default().embed(embed).ephemeral(true))
        .await
        .map_err(Error::internal)?;
    Ok(())
}

/// Stop deploys of a service to an environment (needs deploy:lock:<env>)
#[poise::command(slash_command, guild_only)]
pub async fn lock(
    ctx: Context<'_>,
    #[description = "Service"]
    #[autocomplete = "complete_service"]
    #[max_length = 100]
    service: String,
    #[description = "Environment"]
    #[autocomplete = "complete_environment"]
    #[max_length = 100]
    env: String,
    #[description = "Why (shown to whoever tries to deploy)"]
    #[max_length = 4000]
    reason: String,
    #[description = "For how long, e.g. 2h or 30m (default: until unlocked)"]
    #[max_length = 50]
    duration: Option<String>,
) -> Result<(), Error> {
    let inv = invocation(ctx).await;
    let outcome = ctx
        .data()
        .desk
        .deploy_lock(&inv, &service, &env, &reason, duration.as_deref())
        .await?;
    let until = outcome
        .lock
        .until
        .map(|u| format!(" until <t:{}:f>", u.timestamp()))
        .unwrap_or_else(|| " until unlocked".to_owned());
    ctx.say(render::content(&format!(
        "🔒 locked **{service}** in **{env}**{until}: {}",
        outcome.lock.reason
    )))
    .await
    .map_err(Error::internal)?;
    Ok(())
}

/// Lift a lock (needs deploy:lock:<env>)
#[poise::command(slash_command, guild_only)]
pub async fn unlock(
    ctx: Context<'_>,
    #[description = "Service"]
    #[autocomplete = "complete_service"]
    #[max_length = 100]
    service: String,
    #[description = "Environment"]
    #[autocomplete = "complete_environment"]
    #[max_length = 100]
    env: String,
) -> Result<(), Error> {
    let inv = invocation(ctx).await;
    let outcome = ctx.data().desk.deploy_unlock(&inv, &service, &env).await?;
    ctx.say(render::content(&format!(
        "🔓 unlocked **{service}** in **{env}** (it was locked by {}: {})",
        outcome.lock.locked_by_name, outcome.lock.reason
    )))
    .await
    .map_err(Error::internal)?;
    Ok(())
}

/// Approve or Reject pressed on a status message: the message is replaced by the new status.
pub async fn decision_pressed(
    ctx: &serenity::Context,
    data: &Data,
    press: &serenity::ComponentInteraction,
) -> Result<(), Error> {
    let Some(binding) = parse_button(&press.data.custom_id) else {
        return Err(Error::Invalid("this button is out of date".to_owned()));
    };
    let command = if binding.approve {
        "deploy approve"
    } else {
        "deploy reject"
    };
    let inv = component_invocation(
        ctx,
        press,
        command,
        json!({ "deploy_id": binding.deploy_id }),
    )
    .await;
    let outcome = data.desk.deploy_decide(&inv, &binding).await?;
    press
        .create_response(
            ctx,
            serenity::CreateInteractionResponse::UpdateMessage(render::update(&outcome.message)),
        )
        .await
        .map_err(Error::internal)
}

/// The custom-id prefixes of a deploy's Approve and Reject buttons.
pub const COMPONENTS: [&str; 2] = [view::APPROVE_BUTTON, view::REJECT_BUTTON];

/// Whether a custom id belongs to an Approve/Reject button.
pub fn is_decision_button(custom_id: &str) -> bool {
    COMPONENTS
        .iter()
        .any(|prefix| custom_id.starts_with(prefix))
}

fn deploy_line(d: &Deploy) -> String {
    format!(
        "`#{}` {} **{}** {} → {} by {}{}",
        d.id,
        d.requested_at.format("%Y-%m-%d %H:%M"),
        d.state,
        d.version,
        d.environment,
        d.requested_by_name,
        if d.is_rollback { " (rollback)" } else { "" }
    )
}

fn status_embed(report: &StatusReport) -> serenity::CreateEmbed {
    let mut lines: Vec<String> = report
        .deploys
        .iter()
        .map(|d| {
            format!(
                "**{}** {} → {}: **{}** (`#{}`, by {})",
                d.service, d.version, d.environment, d.state, d.id, d.requested_by_name
            )
        })
        .collect();
    for lock in &report.locks {
        lines.push(format!(
            "🔒 **{}** locked in {} by {}: {}",
            lock.service, lock.environment, lock.locked_by_name, lock.reason
        ));
    }
    for workload in &report.live {
        lines.push(live_line(workload));
    }
    if report.more_active > 0 {
        lines.push(format!(
            "…and {} more active deploys; `/deploy status service:` shows one service's",
            report.more_active
        ));
    } else if report.more_finished {
        lines.push(
            "…and the latest deploys of other services; `/deploy status service:` shows one service's"
                .to_owned(),
        );
    }
    let description = if lines.is_empty() {
        "No deploys yet.".to_owned()
    } else {
        lines.join("\n")
    };
    serenity::CreateEmbed::new()
        .title("Deploy status")
        .description(truncate(&description, render::EMBED_DESCRIPTION_MAX))
}

/// A Kubernetes Deployment as it runs now: replica counts and image.
fn live_line(w: &opsbot_commands::deploy::backends::kubernetes::LiveWorkload) -> String {
    let head = format!(
        "☸ **{}** in {} (`{}`)",
        w.service, w.environment, w.deployment
    );
    match &w.state {
        Ok(live) => {
            let mut line = format!(
                "{head}: {} ({} ready)",
                live.counts.line(),
                live.counts.ready
            );
            if let Some(image) = &live.image {
                line.push_str(&format!(" · `{image}`"));
            }
            if live.paused {
                line.push_str(" · **paused**");
            } else if !live.rolled_out {
                line.push_str(" · rolling out");
            }
            line
        }
        Err(reason) => format!("{head}: live state unavailable: {reason}"),
    }
}

async fn complete_service(ctx: Context<'_>, partial: &str) -> serenity::CreateAutocompleteResponse {
    choices(ctx.data().desk.deploys().services.keys().cloned(), partial)
}

/// The environments of the service already chosen in the same command, else all of them.
async fn complete_environment(
    ctx: Context<'_>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let deploys = ctx.data().desk.deploys();
    let names = match chosen_service(ctx).and_then(|name| deploys.services.get(&name)) {
        Some(service) => service.environments.clone(),
        None => deploys.environment_names(),
    };
    choices(names, partial)
}

/// The `service` option typed so far in the command being completed.
fn chosen_service(ctx: Context<'_>) -> Option<String> {
    let poise::Context::Application(app) = ctx else {
        return None;
    };
    app.args
        .iter()
        .find(|o| o.name == "service")
        .and_then(|o| match &o.value {
            serenity::ResolvedValue::String(s) => Some((*s).to_owned()),
            serenity::ResolvedValue::Autocomplete { value, .. } => Some((*value).to_owned()),
            _ => None,
        })
}

/// Versions deployed before, of the service already chosen if there is one.
async fn complete_version(ctx: Context<'_>, partial: &str) -> serenity::CreateAutocompleteResponse {
    let service = chosen_service(ctx);
    let versions = ctx
        .data()
        .desk
        .deploy_versions(service.as_deref(), partial, CHOICES_MAX as i64)
        .await
        .unwrap_or_default();
    choices(versions, partial)
}
