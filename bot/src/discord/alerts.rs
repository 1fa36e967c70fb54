//! Alert messages in Discord: the **Ack** button on an alert group's message (posted by the
//! outbox from `POST /webhooks/alertmanager`). Pressing it needs `alerts:ack`; the message
//! then shows who acked it, and a second press (by anyone) says who already has it.

use opsbot_commands::alerts::view;
use poise::serenity_prelude as serenity;
use serde_json::json;

use super::invocation::component_invocation;
use super::{Data, Error, render};

/// Whether a custom id belongs to an alert message's button.
pub fn is_alert_button(custom_id: &str) -> bool {
    custom_id.starts_with(view::ACK_BUTTON)
}

/// Ack pressed: the domain records it; the message is updated in place.
pub async fn button_pressed(
    ctx: &serenity::Context,
    data: &Data,
    press: &serenity::ComponentInteraction,
) -> Result<(), Error> {
    let Some(group_id) = view::parse_ack(&press.data.custom_id) else {
        return Err(Error::Invalid("this button is out of date".to_owned()));
    };
    let inv = component_invocation(ctx, press, "alerts ack", json!({ "group_id": group_id })).await;
    let outcome = data.desk.alert_ack(&inv, group_id).await?;
    press
        .create_response(
            ctx,
            serenity::CreateInteractionResponse::UpdateMessage(render::update(&outcome.message)),
        )
        .await
        .map_err(Error::internal)
}
