//! Channel messages: create, read, edit, pin, and the checks Discord applies to a body.

use super::*;

/// Creates a message in `channel_id` and returns its JSON and event.
pub(super) fn new_message(
    state: &mut EmulatorState,
    channel_id: u64,
    body: &Value,
    interaction_id: Option<u64>,
) -> (Value, Message) {
    let guild = &mut state.guild;
    let id = guild.ids.issue();
    let message = Message {
        id,
        channel_id,
        author_id: guild.bot_user_id,
        content: body["content"].as_str().unwrap_or_default().to_owned(),
        embeds: array(&body["embeds"]),
        components: array(&body["components"]),
        attachments: attachments(body, &mut guild.ids),
        files: uploaded_files(body),
        flags: body["flags"].as_u64().unwrap_or(0),
        pinned: false,
        edited: false,
        nonce: body["nonce"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| body["nonce"].as_i64().map(|n| n.to_string())),
        interaction_id,
        visible_to: None,
        created_at: chrono::Utc::now(),
    };
    guild.messages.insert(id, message.clone());
    (guild.message_json(&message), message)
}

pub(super) fn array(value: &Value) -> Vec<Value> {
    value.as_array().cloned().unwrap_or_default()
}

/// The attachment objects of the files in `body`, each with a snowflake id of its own (a
/// client such as serenity refuses an id of 0).
pub(super) fn attachments(body: &Value, ids: &mut super::super::guild::Snowflakes) -> Vec<Value> {
    array(&body["__files"])
        .into_iter()
        .map(|f| json!({ "id": ids.issue().to_string(), "filename": f["filename"], "size": f["size"], "url": "", "proxy_url": "" }))
        .collect()
}

/// The event for `message`, created or edited by a request with `body` (its
/// `allowed_mentions` decide who the content pings).
pub(super) fn event_for(
    state: &EmulatorState,
    kind: &'static str,
    message: &Message,
    ephemeral: bool,
    body: &Value,
    sent: Sent,
) -> EmulatorEvent {
    let allowed_mentions = body.get("allowed_mentions").cloned();
    EmulatorEvent {
        event: kind,
        interaction_id: message.interaction_id,
        channel_id: message.channel_id,
        channel: state
            .guild
            .channel(message.channel_id)
            .map(|c| c.name.clone())
            .unwrap_or_default(),
        message_id: Some(message.id),
        content: message.content.clone(),
        embeds: message.embeds.clone(),
        components: message.components.clone(),
        attachments: message.attachments.clone(),
        files: message.files.clone(),
        ephemeral,
        pings: mentions::pings(&message.content, allowed_mentions.as_ref(), sent),
        allowed_mentions,
    }
}

/// Refuses a message body the way Discord does: content over 2000 characters, or an
/// `allowed_mentions` that mixes `parse` with a list of the same kind. The refusal is also an
/// event (`refused`), so the shell can say why no answer came.
#[expect(
    clippy::result_large_err,
    reason = "the refusal is the HTTP response, answered as is"
)]
pub(super) fn check_message_body(
    shared: &Shared,
    body: &Value,
    interaction_id: Option<u64>,
) -> Result<(), Response> {
    let length = body["content"].as_str().map_or(0, |c| c.chars().count());
    let problem = if length > CONTENT_MAX {
        Some(format!(
            "content: Must be {CONTENT_MAX} or fewer in length (got {length})."
        ))
    } else {
        mentions::validate(body.get("allowed_mentions")).err()
    };
    let Some(problem) = problem else {
        return Ok(());
    };
    shared.emit(EmulatorEvent {
        event: "refused",
        interaction_id,
        channel_id: 0,
        channel: String::new(),
        message_id: None,
        content: format!("Discord refused the bot's message: {problem}"),
        embeds: Vec::new(),
        components: Vec::new(),
        attachments: Vec::new(),
        files: Vec::new(),
        ephemeral: false,
        allowed_mentions: None,
        pings: mentions::Pings::default(),
    });
    Err((
        StatusCode::BAD_REQUEST,
        Json(json!({
            "message": "Invalid Form Body",
            "code": 50035,
            "errors": { "_errors": [{ "code": "BASE_TYPE_INVALID", "message": problem }] },
        })),
    )
        .into_response())
}

/// Edits message `id`; the `edit` event names `answering` (the interaction whose response this
/// is) or else the interaction that created the message.
pub(super) fn edit_stored(
    shared: &Shared,
    state: &mut EmulatorState,
    id: u64,
    body: &Value,
    ephemeral: bool,
    answering: Option<u64>,
    sent: Sent,
) -> Response {
    let attached = body
        .get("__files")
        .map(|_| attachments(body, &mut state.guild.ids));
    let Some(message) = state.guild.messages.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, 10008, "Unknown Message");
    };
    if let Some(content) = body.get("content") {
        message.content = content.as_str().unwrap_or_default().to_owned();
    }
    if body.get("embeds").is_some() {
        message.embeds = array(&body["embeds"]);
    }
    if body.get("components").is_some() {
        message.components = array(&body["components"]);
    }
    if let Some(attached) = attached {
        message.attachments = attached;
        message.files = uploaded_files(body);
    }
    message.edited = true;
    let message = message.clone();
    let mut event = event_for(state, "edit", &message, ephemeral, body, sent);
    if answering.is_some() {
        event.interaction_id = answering;
    }
    shared.emit(event);
    Json(state.guild.message_json(&message)).into_response()
}

pub(super) async fn create_message(
    State(shared): Shared_,
    Path(channel): Path<u64>,
    DiscordBody(body): DiscordBody,
) -> Response {
    if let Err(refused) = check_message_body(&shared, &body, None) {
        return refused;
    }
    let mut state = shared.state();
    if state.guild.channel(channel).is_none() {
        return error(StatusCode::NOT_FOUND, 10003, "Unknown Channel");
    }
    let content_empty = body["content"].as_str().is_none_or(str::is_empty);
    if content_empty
        && array(&body["embeds"]).is_empty()
        && array(&body["components"]).is_empty()
        && body.get("__files").is_none()
    {
        return error(
            StatusCode::BAD_REQUEST,
            50006,
            "Cannot send an empty message",
        );
    }
    // With `enforce_nonce`, a repeated nonce returns the message it already created.
    let nonce = body["nonce"].as_str().map(str::to_owned);
    if body["enforce_nonce"].as_bool() == Some(true)
        && let Some(nonce) = &nonce
        && let Some(existing) = state
            .guild
            .messages
            .values()
            .find(|m| m.channel_id == channel && m.nonce.as_deref() == Some(nonce))
    {
        return Json(state.guild.message_json(existing)).into_response();
    }
    let (json, message) = new_message(&mut state, channel, &body, None);
    let event = event_for(&state, "post", &message, false, &body, Sent::Message);
    shared.emit(event);
    Json(json).into_response()
}

pub(super) async fn get_message(
    State(shared): Shared_,
    Path((channel, message)): Path<(u64, u64)>,
) -> Response {
    let state = shared.state();
    match state
        .guild
        .messages
        .get(&message)
        .filter(|m| m.channel_id == channel)
    {
        Some(m) => Json(state.guild.message_json(m)).into_response(),
        None => error(StatusCode::NOT_FOUND, 10008, "Unknown Message"),
    }
}

pub(super) async fn edit_message(
    State(shared): Shared_,
    Path((channel, message)): Path<(u64, u64)>,
    DiscordBody(body): DiscordBody,
) -> Response {
    let mut state = shared.state();
    if state
        .guild
        .messages
        .get(&message)
        .is_none_or(|m| m.channel_id != channel)
    {
        return error(StatusCode::NOT_FOUND, 10008, "Unknown Message");
    }
    if let Err(refused) = check_message_body(&shared, &body, None) {
        return refused;
    }
    edit_stored(
        &shared,
        &mut state,
        message,
        &body,
        false,
        None,
        Sent::Message,
    )
}

pub(super) async fn pin_message(
    State(shared): Shared_,
    Path((channel, message)): Path<(u64, u64)>,
) -> Response {
    let mut state = shared.state();
    match state
        .guild
        .messages
        .get_mut(&message)
        .filter(|m| m.channel_id == channel)
    {
        Some(m) => {
            m.pinned = true;
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(StatusCode::NOT_FOUND, 10008, "Unknown Message"),
    }
}
