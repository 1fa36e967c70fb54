//! The Discord front door: poise slash commands that translate interactions into domain
//! [`Invocation`]s and domain results into replies. One file per command group; no rules here.

mod alerts;
mod audit;
mod autocomplete;
pub mod chat;
mod deploy;
mod digest;
mod gateway;
mod incident;
mod incident_form;
mod invocation;
pub mod leader;
mod metrics;
pub mod render;
mod whoami;

use std::time::Instant;

use opsbot_commands::{CommandError, Desk};
use poise::serenity_prelude as serenity;

pub use gateway::{GatewayState, GatewayStatus, run_gateway, supervise_gateway};
pub use invocation::{invocation, role_names_over_http};

/// What every command handler can reach.
#[derive(Debug)]
pub struct Data {
    pub desk: Desk,
    /// Updated from gateway events (READY, shard stage changes).
    pub gateway: std::sync::Arc<GatewayStatus>,
}

pub type Error = CommandError;
pub type Context<'a> = poise::Context<'a, Data, Error>;
pub type Command = poise::Command<Data, Error>;

/// Every command opsbot registers, in the order Discord lists them.
pub fn commands() -> Vec<Command> {
    vec![
        whoami::whoami(),
        deploy::deploy(),
        deploy::rollback(),
        incident::incident(),
        incident_form::declare_from_message(),
        incident_form::add_to_timeline(),
        alerts::alerts(),
        metrics::metrics(),
        audit::audit(),
        digest::digest(),
    ]
}

/// Every kind of button and select menu opsbot puts on messages, by custom-id prefix, as
/// [`on_event`] routes them: the access tests cover each (a new kind without a row fails).
pub fn component_kinds() -> Vec<&'static str> {
    let mut kinds = vec![audit::OLDER_BUTTON];
    kinds.extend(alerts::COMPONENTS);
    kinds.extend(deploy::COMPONENTS);
    kinds.extend(incident::COMPONENTS);
    kinds
}

/// The JSON registered with Discord (`opsbot commands export`).
pub fn registration_json() -> serde_json::Value {
    let commands = commands();
    let create = poise::builtins::create_application_commands(&commands);
    serde_json::to_value(&create).unwrap_or_default()
}

/// Where the bot connects: Discord itself, or a stand-in (the emulator, a proxy).
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub token: String,
    pub guild_ids: Vec<u64>,
    /// `https://discord.com`, or the base URL of a stand-in.
    pub api_base: String,
    /// The door the audit trail names for what arrives here: `discord`, or `shell` when
    /// `opsbot shell` drives the bot through its emulator.
    pub source: opsbot_commands::Source,
}

/// The official API host: anything else is a stand-in reached through serenity's proxy mode.
pub const DISCORD_API_BASE: &str = "https://discord.com";

/// serenity's REST client for `settings`: Discord itself, or a stand-in through the proxy.
pub fn http_client(settings: &GatewaySettings) -> serenity::Http {
    let mut builder = serenity::HttpBuilder::new(&settings.token);
    if settings.api_base.trim_end_matches('/') != DISCORD_API_BASE {
        // serenity only honours the proxy with its ratelimiter off: its ratelimiter builds
        // its own requests to discord.com.
        builder = builder
            .proxy(settings.api_base.trim_end_matches('/'))
            .ratelimiter_disabled(true);
    }
    builder.build()
}

fn framework_options() -> poise::FrameworkOptions<Data, Error> {
    poise::FrameworkOptions {
        commands: commands(),
        on_error: |error| Box::pin(on_error(error)),

        post_command: |ctx| Box::pin(observe_latency(ctx)),
        // Input no command accepts (a NUL byte) is refused and audited before any command runs.
        command_check: Some(|ctx| Box::pin(admit(ctx))),
        // Every ctx.send / say / edit: no pings, whatever the reply echoes (poise's default
        // parses user mentions and pings the replied-to user).
        allowed_mentions: Some(render::no_pings()),
        event_handler: |framework, event| {
            Box::pin(on_event(
                framework.serenity_context,
                event,
                framework.user_data,
            ))
        },
        ..Default::default()
    }
}

/// Runs before every command: the domain admits the invocation or refuses (and audits) it.
/// The options are checked first, so that the full invocation (member, role names) is built
/// only for a refusal, not twice for every command.
async fn admit(ctx: Context<'_>) -> Result<bool, Error> {
    let started = Instant::now();
    let poise::Context::Application(app) = ctx else {
        return Ok(true);
    };
    // A place among the commands in flight, held until the command ends; none: "busy".
    // (poise runs this check once per command level: `/metrics query` asks twice.)
    if ctx.invocation_data::<InFlight>().await.is_some() {
        return Ok(true);
    }
    let entry = ctx
        .data()
        .desk
        .enter(
            &ctx.command().qualified_name,
            invocation::door_of(ctx.serenity_context()).await,
        )
        .await?;
    ctx.set_invocation_data(InFlight {
        started,
        _entry: entry,
    })
    .await;
    if opsbot_commands::desk::nul_option_in(&invocation::options_json(app.args)).is_none() {
        return Ok(true);
    }
    let inv = invocation(ctx).await;
    ctx.data().desk.admit(&inv).await.map(|()| true)
}

/// Button presses: routed by the prefix of their custom id. Errors reply ephemerally, like
/// command errors.
async fn on_event(
    ctx: &serenity::Context,
    event: &serenity::FullEvent,
    data: &Data,
) -> Result<(), Error> {
    gateway::observe(&data.gateway, event);
    let serenity::FullEvent::InteractionCreate {
        interaction: serenity::Interaction::Component(press),
    } = event
    else {
        return Ok(());
    };
    // A place among the commands in flight, held while the press is handled; none: "busy".
    let result = match data
        .desk
        .enter("button press", invocation::door_of(ctx).await)
        .await
    {
        Err(busy) => Err(busy),
        Ok(_place) => route_press(ctx, data, press).await,
    };
    if let Err(error) = result {
        let reply = serenity::CreateInteractionResponseMessage::new()
            .content(render::error_text(&error))
            .allowed_mentions(render::no_pings())
            .ephemeral(true);
        if let Err(e) = press
            .create_response(ctx, serenity::CreateInteractionResponse::Message(reply))
            .await
        {
            tracing::warn!(error = %e, "could not answer a button press");
        }
    }
    Ok(())
}

/// What a running command holds: when it was admitted, and its place among the commands in
/// flight (freed when poise drops the invocation's data).
struct InFlight {
    started: Instant,
    _entry: opsbot_commands::admission::Entry,
}

/// The feature a press belongs to, by the prefix of its custom id.
async fn route_press(
    ctx: &serenity::Context,
    data: &Data,
    press: &serenity::ComponentInteraction,
) -> Result<(), Error> {
    if press.data.custom_id.starts_with(audit::OLDER_BUTTON) {
        audit::older_pressed(ctx, data, press).await
    } else if alerts::is_alert_button(&press.data.custom_id) {
        alerts::button_pressed(ctx, data, press).await
    } else if deploy::is_decision_button(&press.data.custom_id) {
        deploy::decision_pressed(ctx, data, press).await
    } else if incident::is_incident_button(&press.data.custom_id) {
        incident::button_pressed(ctx, data, press).await
    } else {
        Err(CommandError::Invalid(
            "this button belongs to nothing opsbot knows (any more)".to_owned(),
        ))
    }
}

async fn observe_latency(ctx: Context<'_>) {
    if let Some(in_flight) = ctx.invocation_data::<InFlight>().await {
        ::metrics::histogram!(
            "opsbot_command_duration_seconds",
            "command" => ctx.command().qualified_name.clone()
        )
        .record(in_flight.started.elapsed().as_secs_f64());
    }
}

/// Users see what went wrong in words meant for them, ephemerally; internal errors show only
/// a reference that is also in the log. Options Discord let through but we cannot parse are
/// audited as `invalid`.
async fn on_error(error: poise::FrameworkError<'_, Data, Error>) {
    match error {
        // Another replica (or an earlier delivery) handled this interaction and answered it:
        // answering again would only show an "already handled" error to someone who was served.
        poise::FrameworkError::Command {
            error: CommandError::Replayed(why),
            ctx,
            ..
        } => {
            tracing::info!(command = %ctx.command().qualified_name, reason = %why, "replayed interaction left unanswered");
        }
        poise::FrameworkError::Command { error, ctx, .. } => {
            observe_latency(ctx).await;
            reply_error(ctx, &render::error_text(&error)).await;
        }
        poise::FrameworkError::CommandCheckFailed {
            error: Some(error),
            ctx,
            ..
        } => {
            reply_error(ctx, &render::error_text(&error)).await;
        }
        poise::FrameworkError::ArgumentParse {
            error, input, ctx, ..
        } => {
            let inv = invocation(ctx).await;
            let text = format!(
                "invalid option{}: {error}",
                input.map(|i| format!(" `{i}`")).unwrap_or_default()
            );
            let recorded = ctx
                .data()
                .desk
                .record(&inv, opsbot_commands::audit::Outcome::Invalid, &text)
                .await;
            let reply = match recorded {
                Ok(_) => text,
                Err(e) => render::error_text(&e),
            };
            reply_error(ctx, &reply).await;
        }
        other => {
            if let Err(e) = poise::builtins::on_error(other).await {
                tracing::error!(error = %e, "could not report a framework error");
            }
        }
    }
}

async fn reply_error(ctx: Context<'_>, text: &str) {
    let reply = poise::CreateReply::default()
        .content(render::content(text))
        .allowed_mentions(render::no_pings())
        .ephemeral(true);
    if let Err(e) = ctx.send(reply).await {
        tracing::warn!(error = %e, "could not send an error reply");
    }
}
