//! Alert messages in Discord (posted by the outbox from `POST /webhooks/alertmanager`) and
//! `/alerts`:
//! - **Ack** (`alerts:ack`): the message then shows who acked it; a second press (by anyone)
//!   says who already has it. **Ack + silence until resolved** (`alerts:ack` and
//!   `alerts:silence`) also silences the group until it resolves.
//! - **Silence for…** (a select menu: 30m, 1h, 4h, 24h, until resolved) and **Unsilence**
//!   (`alerts:silence`): a real silence in Alertmanager; the message shows "silenced by @x
//!   until …".
//! - **Declare incident**: the declare form pre-filled from the group (`incident:declare`);
//!   the incident links the group (see `incident_form`).
//! - **Rollback** (on a group correlated with a deploy): `/rollback` of that service and
//!   environment, under the same policy (`deploy:<env>`, locks, freezes, approvals).
//! - `/alerts active [service] [severity]`, `/alerts silences` (each with an **Expire**
//!   button), `/alerts silence matchers duration reason`.

use opsbot_commands::alerts::silencing::SilenceLength;
use opsbot_commands::alerts::view;
use poise::serenity_prelude as serenity;
use serde_json::json;

use super::invocation::component_invocation;
use super::{Context, Data, Error, invocation, render};

/// The custom-id prefixes of alert messages' buttons and picker (and `/alerts silences`'
/// Expire buttons).
pub const COMPONENTS: [&str; 7] = [
    view::ACK_BUTTON,
    view::ACK_SILENCE_BUTTON,
    view::SILENCE_PICKER,
    view::UNSILENCE_BUTTON,
    view::EXPIRE_BUTTON,
    view::ROLLBACK_BUTTON,
    view::DECLARE_INCIDENT_BUTTON,
];

/// Whether a custom id belongs to an alert message's button or picker.
pub fn is_alert_button(custom_id: &str) -> bool {
    COMPONENTS
        .iter()
        .any(|prefix| custom_id.starts_with(prefix))
}

/// A press (or a pick) on an alert message: the domain acts; the message is updated in place
/// (an Expire under `/alerts silences` answers with a line of its own).
pub async fn button_pressed(
    ctx: &serenity::Context,
    data: &Data,
    press: &serenity::ComponentInteraction,
) -> Result<(), Error> {
    let id = press.data.custom_id.as_str();
    let stale = || Error::Invalid("this button is out of date".to_owned());
    let desk = &data.desk;
    let message = if let Some(silence_id) = id.strip_prefix(view::EXPIRE_BUTTON) {
        let inv = component_invocation(
            ctx,
            press,
            "alerts expire",
            json!({ "silence_id": silence_id }),
        )
        .await;
        let text = desk.alert_expire_silence(&inv, silence_id).await?;
        return press
            .create_response(
                ctx,
                serenity::CreateInteractionResponse::Message(render::update(&text)),
            )
            .await
            .map_err(Error::internal);
    } else if let Some(group_id) = view::parse_group(id, view::DECLARE_INCIDENT_BUTTON) {
        return super::incident_form::declare_from_alert(ctx, data, press, group_id).await;
    } else if let Some(group_id) = view::parse_group(id, view::ROLLBACK_BUTTON) {
        let inv =
            component_invocation(ctx, press, "rollback", json!({ "group_id": group_id })).await;
        let outcome = desk.alert_rollback(&inv, group_id).await?;
        // The rollback's status message is a message of its own, kept up to date like the
        // one /rollback posts.
        return super::deploy::answer_press_with_status(ctx, data, press, &outcome).await;
    } else if let Some(group_id) = view::parse_group(id, view::ACK_SILENCE_BUTTON) {
        let args = json!({ "group_id": group_id, "silence": "until resolved" });
        let inv = component_invocation(ctx, press, "alerts ack", args).await;
        desk.alert_ack_and_silence(&inv, group_id).await?.message
    } else if let Some(group_id) = view::parse_group(id, view::ACK_BUTTON) {
        let inv =
            component_invocation(ctx, press, "alerts ack", json!({ "group_id": group_id })).await;
        desk.alert_ack(&inv, group_id).await?.message
    } else if let Some(group_id) = view::parse_group(id, view::SILENCE_PICKER) {
        let picked = match &press.data.kind {
            serenity::ComponentInteractionDataKind::StringSelect { values } => {
                values.first().cloned()
            }
            _ => None,
        };
        let args = json!({ "group_id": group_id, "duration": picked });
        let inv = component_invocation(ctx, press, "alerts silence", args).await;
        let Some(length) = picked.as_deref().and_then(SilenceLength::from_choice) else {
            let e = Error::Invalid(format!(
                "pick a length from the menu ({}, {})",
                view::SILENCE_CHOICES
                    .iter()
                    .map(|(l, _)| *l)
                    .collect::<Vec<_>>()
                    .join(", "),
                view::UNTIL_RESOLVED
            ));
            return Err(desk.refuse(&inv, e).await);
        };
        desk.alert_silence(&inv, group_id, length).await?.message
    } else if let Some(group_id) = view::parse_group(id, view::UNSILENCE_BUTTON) {
        let args = json!({ "group_id": group_id });
        let inv = component_invocation(ctx, press, "alerts unsilence", args).await;
        desk.alert_unsilence(&inv, group_id).await?.message
    } else {
        return Err(stale());
    };
    press
        .create_response(
            ctx,
            serenity::CreateInteractionResponse::UpdateMessage(render::update(&message)),
        )
        .await
        .map_err(Error::internal)
}

/// Alerts from Alertmanager: what fires, silences
#[poise::command(
    slash_command,
    guild_only,
    subcommands("active", "silences", "silence"),
    subcommand_required
)]
pub async fn alerts(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// What is firing now (from opsbot's store), newest first
#[poise::command(slash_command, guild_only)]
pub async fn active(
    ctx: Context<'_>,
    #[description = "Only this service"]
    #[max_length = 100]
    service: Option<String>,
    #[description = "Only this severity (e.g. critical, warning)"]
    #[max_length = 100]
    severity: Option<String>,
) -> Result<(), Error> {
    let inv = invocation(ctx).await;
    let message = ctx
        .data()
        .desk
        .alerts_active(&inv, service.as_deref(), severity.as_deref())
        .await?;
    ctx.send(render::reply(&message).ephemeral(true))
        .await
        .map_err(Error::internal)?;
    Ok(())
}

/// Active silences in Alertmanager, each with an Expire button (needs alerts:silence)
#[poise::command(slash_command, guild_only)]
pub async fn silences(ctx: Context<'_>) -> Result<(), Error> {
    let inv = invocation(ctx).await;
    let message = ctx.data().desk.alerts_silences(&inv).await?;
    ctx.send(render::reply(&message).ephemeral(true))
        .await
        .map_err(Error::internal)?;
    Ok(())
}

/// Silence alerts in Alertmanager by matchers (needs alerts:silence)
#[poise::command(slash_command, guild_only)]
pub async fn silence(
    ctx: Context<'_>,
    #[description = "Matchers in Alertmanager's syntax, e.g. service=\"api\", severity=~\"warn.*\""]
    #[max_length = 1000]
    matchers: String,
    #[description = "How long, e.g. 90m, 2h, 3d"]
    #[max_length = 32]
    duration: String,
    #[description = "Why (Alertmanager keeps it as the comment)"]
    #[max_length = 500]
    reason: String,
) -> Result<(), Error> {
    let inv = invocation(ctx).await;
    let message = ctx
        .data()
        .desk
        .alerts_silence_matchers(&inv, &matchers, &duration, &reason)
        .await?;
    ctx.send(render::reply(&message))
        .await
        .map_err(Error::internal)?;
    Ok(())
}
