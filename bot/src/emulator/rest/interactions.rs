//! Interaction responses: the callback, the original response, follow-ups.

use super::*;
use crate::emulator::forms;

pub(super) async fn interaction_callback(
    State(shared): Shared_,
    Path((id, token)): Path<(u64, String)>,
    DiscordBody(body): DiscordBody,
) -> Response {
    let mut state = shared.state();
    let Some((interaction_id, member_id, channel_id, acknowledged, clicked, interaction_kind)) =
        state
            .interactions
            .get(&token)
            .filter(|i| i.id == id)
            .map(|i| {
                (
                    i.id,
                    i.member_id,
                    i.channel_id,
                    i.acknowledged,
                    i.original_message_id,
                    i.kind,
                )
            })
    else {
        return error(StatusCode::NOT_FOUND, 10062, "Unknown interaction");
    };
    if acknowledged {
        return error(
            StatusCode::BAD_REQUEST,
            40060,
            "Interaction has already been acknowledged.",
        );
    }
    let kind = body["type"].as_u64().unwrap_or(0);
    let data = body.get("data").cloned().unwrap_or_else(|| json!({}));
    if let Err(refused) = check_message_body(&shared, &data, Some(interaction_id)) {
        return refused;
    }
    // Discord answers an autocomplete interaction only with choices, and choices only to one.
    if (interaction_kind == forms::AUTOCOMPLETE) != (kind == 8) {
        return error(
            StatusCode::BAD_REQUEST,
            40000,
            "Interaction response type not allowed for this interaction type",
        );
    }
    match kind {
        // CHANNEL_MESSAGE_WITH_SOURCE, DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
        4 | 5 => {
            let ephemeral = data["flags"].as_u64().unwrap_or(0) & EPHEMERAL != 0;
            let (_, mut message) = new_message(&mut state, channel_id, &data, Some(interaction_id));
            if ephemeral {
                message.visible_to = Some(member_id);
                state.guild.messages.insert(message.id, message.clone());
            }
            if let Some(i) = state.interactions.get_mut(&token) {
                i.original_message_id = Some(message.id);
                i.ephemeral = ephemeral;
                i.deferred = kind == 5;
            }
            if kind == 4 {
                let event = event_for(
                    &state,
                    "reply",
                    &message,
                    ephemeral,
                    &data,
                    Sent::Interaction,
                );
                shared.emit(event);
            }
        }
        // DEFERRED_UPDATE_MESSAGE: the bot edits the clicked message later (PATCH @original).
        // After a modal submit: closes the form.
        6 if clicked.is_some() || interaction_kind == forms::MODAL_SUBMIT => {}
        // UPDATE_MESSAGE: edits the message the pressed button is on.
        7 => {
            let Some(message_id) = clicked else {
                return error(
                    StatusCode::BAD_REQUEST,
                    40000,
                    "UPDATE_MESSAGE answers only component interactions",
                );
            };
            let ephemeral = state.interactions.get(&token).is_some_and(|i| i.ephemeral);
            if let Some(i) = state.interactions.get_mut(&token) {
                i.acknowledged = true;
            }
            edit_stored(
                &shared,
                &mut state,
                message_id,
                &data,
                ephemeral,
                Some(interaction_id),
                Sent::Interaction,
            );
        }
        // APPLICATION_COMMAND_AUTOCOMPLETE_RESULT: the client lists the choices.
        8 => {
            let choices = data["choices"].as_array().cloned().unwrap_or_default();
            if choices.len() > forms::CHOICES_MAX {
                return error(
                    StatusCode::BAD_REQUEST,
                    50035,
                    &format!(
                        "data.choices: Must be {} or fewer in length.",
                        forms::CHOICES_MAX
                    ),
                );
            }
            let names: Vec<&str> = choices.iter().filter_map(|c| c["name"].as_str()).collect();
            shared.emit(forms::event(
                "choices",
                interaction_id,
                names.join("\n"),
                choices.clone(),
            ));
        }
        // MODAL: a form pops up for the member; another interaction submits it.
        9 if interaction_kind != forms::MODAL_SUBMIT => {
            if let Err(problem) = forms::check_modal(&data) {
                return error(StatusCode::BAD_REQUEST, 50035, &problem);
            }
            state.modals.push(forms::OpenModal {
                interaction_id,
                member_id,
                channel_id,
                data: data.clone(),
            });
            shared.emit(forms::event(
                "modal",
                interaction_id,
                data["title"].as_str().unwrap_or_default().to_owned(),
                data["components"].as_array().cloned().unwrap_or_default(),
            ));
        }
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                50035,
                &format!("interaction response type {other} is not emulated"),
            );
        }
    }
    if let Some(i) = state.interactions.get_mut(&token) {
        i.acknowledged = true;
    }
    StatusCode::NO_CONTENT.into_response()
}

pub(super) fn original_message_id(state: &EmulatorState, token: &str) -> Option<(u64, bool)> {
    state
        .interactions
        .get(token)
        .and_then(|i| i.original_message_id.map(|m| (m, i.ephemeral)))
}

pub(super) async fn get_original(
    State(shared): Shared_,
    Path((_app, token)): Path<(u64, String)>,
) -> Response {
    let state = shared.state();
    match original_message_id(&state, &token).and_then(|(id, _)| state.guild.messages.get(&id)) {
        Some(message) => Json(state.guild.message_json(message)).into_response(),
        None => error(StatusCode::NOT_FOUND, 10008, "Unknown Message"),
    }
}

pub(super) async fn edit_original(
    State(shared): Shared_,
    Path((_app, token)): Path<(u64, String)>,
    DiscordBody(body): DiscordBody,
) -> Response {
    let mut state = shared.state();
    let Some((id, ephemeral)) = original_message_id(&state, &token) else {
        return error(StatusCode::NOT_FOUND, 10008, "Unknown Message");
    };
    let answering = state.interactions.get(&token).map(|i| i.id);
    if let Err(refused) = check_message_body(&shared, &body, answering) {
        return refused;
    }
    edit_stored(
        &shared,
        &mut state,
        id,
        &body,
        ephemeral,
        answering,
        Sent::Interaction,
    )
}

pub(super) async fn delete_original(
    State(shared): Shared_,
    Path((_app, token)): Path<(u64, String)>,
) -> Response {
    let mut state = shared.state();
    if let Some((id, _)) = original_message_id(&state, &token) {
        state.guild.messages.remove(&id);
    }
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn create_followup(
    State(shared): Shared_,
    Path((_app, token)): Path<(u64, String)>,
    DiscordBody(body): DiscordBody,
) -> Response {
    let mut state = shared.state();
    let Some((interaction_id, channel_id)) =
        state.interactions.get(&token).map(|i| (i.id, i.channel_id))
    else {
        return error(StatusCode::NOT_FOUND, 10015, "Unknown Webhook");
    };
    if let Err(refused) = check_message_body(&shared, &body, Some(interaction_id)) {
        return refused;
    }
    // The first follow-up after a deferral replaces the "thinking…" message.
    let deferred = state.interactions.get_mut(&token).and_then(|i| {
        let pending = i.deferred.then_some((i.original_message_id, i.ephemeral));
        i.deferred = false;
        pending
    });
    if let Some((Some(original), ephemeral)) = deferred {
        return edit_stored(
            &shared,
            &mut state,
            original,
            &body,
            ephemeral,
            Some(interaction_id),
            Sent::Interaction,
        );
    }
    let ephemeral = body["flags"].as_u64().unwrap_or(0) & EPHEMERAL != 0;
    let (json, message) = new_message(&mut state, channel_id, &body, Some(interaction_id));
    let event = event_for(
        &state,
        "reply",
        &message,
        ephemeral,
        &body,
        Sent::Interaction,
    );
    shared.emit(event);
    Json(json).into_response()
}

pub(super) async fn edit_followup(
    State(shared): Shared_,
    Path((_app, _token, message)): Path<(u64, String, u64)>,
    DiscordBody(body): DiscordBody,
) -> Response {
    if let Err(refused) = check_message_body(&shared, &body, None) {
        return refused;
    }
    let mut state = shared.state();
    edit_stored(
        &shared,
        &mut state,
        message,
        &body,
        false,
        None,
        Sent::Interaction,
    )
}
