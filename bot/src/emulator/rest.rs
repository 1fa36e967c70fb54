//! The emulator's REST API: the subset of Discord's v10 routes opsbot uses, answering in the
//! shapes of Discord's OpenAPI spec. Requests must carry the bot token; routes can be
//! scripted to fail (429 with `retry_after`, 5xx) to test retries.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::guild::{CHANNEL_PUBLIC_THREAD, CHANNEL_TEXT, Message};
use super::mentions::{self, Sent};
use super::{EmulatorEvent, Shared, State as EmulatorState};

/// Discord's `MESSAGE_FLAGS.EPHEMERAL`.
const EPHEMERAL: u64 = 1 << 6;
/// Discord's limit on a message's content, in characters.
const CONTENT_MAX: usize = 2000;

type Shared_ = State<Arc<Shared>>;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v10/gateway", get(gateway))
        .route("/api/v10/gateway/bot", get(gateway_bot))
        .route("/api/v10/users/@me", get(current_user))
        .route("/api/v10/oauth2/applications/@me", get(current_application))
        .route(
            "/api/v10/applications/{app}/commands",
            put(register_commands).get(list_commands),
        )
        .route(
            "/api/v10/applications/{app}/guilds/{guild}/commands",
            put(register_guild_commands).get(list_commands_in_guild),
        )
        .route(
            "/api/v10/interactions/{id}/{token}/callback",
            post(interaction_callback),
        )
        .route(
            "/api/v10/webhooks/{app}/{token}/messages/@original",
            get(get_original)
                .patch(edit_original)
                .delete(delete_original),
        )
        .route("/api/v10/webhooks/{app}/{token}", post(create_followup))
        .route(
            "/api/v10/webhooks/{app}/{token}/messages/{message}",
            patch(edit_followup),
        )
        .route(
            "/api/v10/channels/{channel}",
            get(get_channel).patch(modify_channel),
        )
        .route("/api/v10/channels/{channel}/messages", post(create_message))
        .route(
            "/api/v10/channels/{channel}/messages/{message}",
            get(get_message).patch(edit_message),
        )
        .route(
            "/api/v10/channels/{channel}/pins/{message}",
            put(pin_message),
        )
        .route(
            "/api/v10/channels/{channel}/messages/pins/{message}",
            put(pin_message),
        )
        .route(
            "/api/v10/channels/{channel}/messages/{message}/threads",
            post(start_thread_from_message),
        )
        .route("/api/v10/channels/{channel}/threads", post(start_thread))
        .route("/api/v10/guilds/{guild}", get(get_guild))
        .route(
            "/api/v10/guilds/{guild}/channels",
            post(create_channel).get(list_channels),
        )
        .route("/api/v10/guilds/{guild}/roles", get(list_roles))
        .route("/api/v10/guilds/{guild}/members/{user}", get(get_member))
        .fallback(unknown_route)
        .with_state(shared)
}

/// Discord's JSON error body.
fn error(status: StatusCode, code: u32, message: &str) -> Response {
    (status, Json(json!({ "message": message, "code": code }))).into_response()
}

/// Records the request, checks the bot token, and plays scripted failures.
pub(super) async fn gatekeeper(State(shared): Shared_, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let scripted = {
        let mut state = shared.state();
        state.requests.push(format!("{method} {path}"));
        let failure = state.failures.iter_mut().find(|f| {
            f.remaining > 0
                && path.contains(&f.path)
                && f.method.as_deref().is_none_or(|m| m == method.as_str())
        });
        failure.map(|f| {
            f.remaining -= 1;
            (f.status, f.retry_after)
        })
    };
    // Interaction callbacks and webhooks authenticate with the interaction token, OAuth2
    // routes with client credentials or a bearer token (checked by their handlers).
    let bearer = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer "));
    let needs_token = !bearer
        && path.starts_with("/api/")
        && !path.starts_with("/api/v10/interactions/")
        && !path.starts_with("/api/v10/webhooks/")
        && !path.ends_with("/oauth2/token");
    if needs_token {
        let expected = format!("Bot {}", shared.token);
        let given = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if given != Some(expected.as_str()) {
            return error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized");
        }
    }
    if let Some((status, retry_after)) = scripted {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status == StatusCode::TOO_MANY_REQUESTS {
            let mut response = (
                status,
                Json(json!({ "message": "You are being rate limited.", "retry_after": retry_after, "global": false, "code": 0 })),
            )
                .into_response();
            let headers = response.headers_mut();
            headers.insert("retry-after", header_value(&retry_after.ceil().to_string()));
            headers.insert("x-ratelimit-scope", HeaderValue::from_static("user"));
            headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
            headers.insert(
                "x-ratelimit-reset-after",
                header_value(&retry_after.to_string()),
            );
            return response;
        }
        return error(status, 0, "scripted failure");
    }
    next.run(request).await
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("1"))
}

async fn unknown_route(method: Method, uri: axum::http::Uri) -> Response {
    tracing::warn!(%method, path = %uri.path(), "emulator: route not emulated");
    error(
        StatusCode::NOT_FOUND,
        0,
        "404: Not Found (this route is not emulated)",
    )
}

/// A request body as Discord takes it: JSON, or multipart with `payload_json` (files are kept
/// in `__files`). A body that is neither is refused the way Discord refuses it.
#[derive(Debug)]
struct DiscordBody(Value);

impl<S: Send + Sync> FromRequest<S> for DiscordBody {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let headers = request.headers().clone();
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        parse_json(&bytes, &headers).map(DiscordBody)
    }
}

#[expect(
    clippy::result_large_err,
    reason = "the refusal is the HTTP response, answered as is"
)]
fn parse_json(body: &Bytes, headers: &HeaderMap) -> Result<Value, Response> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("multipart/") {
        return multipart_payload(body, content_type).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                50109,
                "multipart body without payload_json",
            )
        });
    }
    serde_json::from_slice(body).map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            50109,
            "The request body contains invalid JSON.",
        )
    })
}

/// The `payload_json` part of a multipart body (files are kept as attachment names only).
fn multipart_payload(body: &Bytes, content_type: &str) -> Option<Value> {
    let boundary = content_type.split("boundary=").nth(1)?.trim_matches('"');
    let delimiter = format!("--{boundary}");
    let mut payload: Option<Value> = None;
    let mut files = Vec::new();
    for part in split_bytes(body, delimiter.as_bytes()) {
        let Some(split) = find(part, b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&part[..split]);
        let mut content = &part[split + 4..];
        if content.ends_with(b"\r\n") {
            content = &content[..content.len() - 2];
        }
        if head.contains("name=\"payload_json\"") {
            payload = serde_json::from_slice(content).ok();
        } else if let Some(filename) = head
            .split("filename=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
        {
            use base64::Engine as _;
            files.push(json!({
                "filename": filename,
                "size": content.len(),
                "data": base64::engine::general_purpose::STANDARD.encode(content),
            }));
        }
    }
    let mut payload = payload.unwrap_or_else(|| json!({}));
    if !files.is_empty() {
        payload["__files"] = Value::Array(files);
    }
    Some(payload)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The parts of a multipart body between `delimiter`s, as bytes (files may be binary).
fn split_bytes<'a>(body: &'a [u8], delimiter: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut rest = body;
    while let Some(at) = find(rest, delimiter) {
        parts.push(&rest[..at]);
        rest = &rest[at + delimiter.len()..];
    }
    parts.push(rest);
    parts
}

/// Uploaded files (name and bytes) of a [`DiscordBody`].
fn uploaded_files(body: &Value) -> Vec<(String, Vec<u8>)> {
    use base64::Engine as _;
    array(&body["__files"])
        .iter()
        .filter_map(|f| {
            let name = f["filename"].as_str()?.to_owned();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(f["data"].as_str()?)
                .ok()?;
            Some((name, bytes))
        })
        .collect()
}

async fn gateway(State(shared): Shared_) -> Json<Value> {
    Json(json!({ "url": ws_url(&shared) }))
}

fn ws_url(shared: &Shared) -> String {
    format!("{}/gateway", shared.base_url.replace("http://", "ws://"))
}

async fn gateway_bot(State(shared): Shared_) -> Json<Value> {
    Json(json!({
        "url": ws_url(&shared),
        "shards": 1,
        "session_start_limit": { "total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1 },
    }))
}

/// The bot user for the bot token; the member a bearer token (OAuth2 `identify`) was granted for.
async fn current_user(State(shared): Shared_, headers: HeaderMap) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer "));
    let user_id = if bearer {
        match super::oauth::bearer_member(&shared, &headers, "identify") {
            Ok(id) => id,
            Err(response) => return response,
        }
    } else {
        shared.state().guild.bot_user_id
    };
    let state = shared.state();
    let guild = &state.guild;
    let mut user = guild
        .member(user_id)
        .map(|m| guild.user_json(m))
        .unwrap_or(Value::Null);
    user["verified"] = json!(true);
    user["mfa_enabled"] = json!(false);
    user["flags"] = json!(0);
    user["locale"] = json!("en-US");
    Json(user).into_response()
}

async fn current_application(State(shared): Shared_) -> Json<Value> {
    let state = shared.state();
    let guild = &state.guild;
    let bot = guild
        .member(guild.bot_user_id)
        .map(|m| guild.user_json(m))
        .unwrap_or(Value::Null);
    Json(json!({
        "id": guild.application_id.to_string(),
        "name": "opsbot",
        "icon": null,
        "description": "opsbot (emulated)",
        "bot_public": false,
        "bot_require_code_grant": false,
        "verify_key": "0".repeat(64),
        "flags": 0,
        "team": null,
        "owner": bot,
        "bot": bot,
        "summary": "",
        "type": null,
        "flags_new": "0",
        "redirect_uris": [],
        "interactions_endpoint_url": null,
        "role_connections_verification_url": null,
        "approximate_guild_count": 1,
        "approximate_user_install_count": 0,
        "approximate_user_authorization_count": 0,
        "explicit_content_filter": 0,
        "eligible_oauth2_scopes": [],
    }))
}

fn store_commands(
    state: &mut EmulatorState,
    guild_id: Option<u64>,
    commands: Vec<Value>,
) -> Vec<Value> {
    let guild = &mut state.guild;
    let stored: Vec<Value> = commands
        .into_iter()
        .map(|mut command| {
            let id = guild.ids.issue();
            command["id"] = json!(id.to_string());
            command["application_id"] = json!(guild.application_id.to_string());
            command["version"] = json!(id.to_string());
            if command.get("type").is_none() {
                command["type"] = json!(1);
            }
            // Discord omits `guild_id` on global commands (it is never null).
            if let Some(g) = guild_id {
                command["guild_id"] = json!(g.to_string());
            }
            if let Some(options) = command.get_mut("options") {
                drop_unset_option_fields(options);
            }
            command["default_member_permissions"] = command
                .get("default_member_permissions")
                .cloned()
                .unwrap_or(Value::Null);
            command
        })
        .collect();
    guild.commands = stored.clone();
    stored
}

/// Discord does not echo option fields sent as `null` (poise sends `"min_value": null` and the
/// like); its answers leave them out.
fn drop_unset_option_fields(options: &mut Value) {
    for option in options.as_array_mut().into_iter().flatten() {
        if let Some(object) = option.as_object_mut() {
            object.retain(|_, value| !value.is_null());
            if let Some(nested) = object.get_mut("options") {
                drop_unset_option_fields(nested);
            }
        }
    }
}

async fn register_commands(State(shared): Shared_, DiscordBody(body): DiscordBody) -> Response {
    let Value::Array(commands) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            50035,
            "Invalid Form Body: expected an array of commands",
        );
    };
    let stored = store_commands(&mut shared.state(), None, commands);
    Json(Value::Array(stored)).into_response()
}

async fn register_guild_commands(
    State(shared): Shared_,
    Path((_app, guild)): Path<(u64, u64)>,
    DiscordBody(body): DiscordBody,
) -> Response {
    let Value::Array(commands) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            50035,
            "Invalid Form Body: expected an array of commands",
        );
    };
    let mut state = shared.state();
    if guild != state.guild.id {
        return error(StatusCode::NOT_FOUND, 10004, "Unknown Guild");
    }
    let stored = store_commands(&mut state, Some(guild), commands);
    Json(Value::Array(stored)).into_response()
}

async fn list_commands(State(shared): Shared_) -> Json<Value> {
    Json(Value::Array(shared.state().guild.commands.clone()))
}

async fn list_commands_in_guild(State(shared): Shared_) -> Json<Value> {
    Json(Value::Array(shared.state().guild.commands.clone()))
}

/// Creates a message in `channel_id` and returns its JSON and event.
fn new_message(
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
        attachments: attachments(body),
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

fn array(value: &Value) -> Vec<Value> {
    value.as_array().cloned().unwrap_or_default()
}

fn attachments(body: &Value) -> Vec<Value> {
    array(&body["__files"])
        .into_iter()
        .enumerate()
        .map(|(i, f)| json!({ "id": i.to_string(), "filename": f["filename"], "size": f["size"], "url": "", "proxy_url": "" }))
        .collect()
}

/// The event for `message`, created or edited by a request with `body` (its
/// `allowed_mentions` decide who the content pings).
fn event_for(
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
fn check_message_body(
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

async fn interaction_callback(
    State(shared): Shared_,
    Path((id, token)): Path<(u64, String)>,
    DiscordBody(body): DiscordBody,
) -> Response {
    let mut state = shared.state();
    let Some((interaction_id, member_id, channel_id, acknowledged, clicked)) = state
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
        6 if clicked.is_some() => {}
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
        // APPLICATION_COMMAND_AUTOCOMPLETE_RESULT: nothing visible.
        8 => {}
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

fn original_message_id(state: &EmulatorState, token: &str) -> Option<(u64, bool)> {
    state
        .interactions
        .get(token)
        .and_then(|i| i.original_message_id.map(|m| (m, i.ephemeral)))
}

async fn get_original(
    State(shared): Shared_,
    Path((_app, token)): Path<(u64, String)>,
) -> Response {
    let state = shared.state();
    match original_message_id(&state, &token).and_then(|(id, _)| state.guild.messages.get(&id)) {
        Some(message) => Json(state.guild.message_json(message)).into_response(),
        None => error(StatusCode::NOT_FOUND, 10008, "Unknown Message"),
    }
}

async fn edit_original(
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

async fn delete_original(
    State(shared): Shared_,
    Path((_app, token)): Path<(u64, String)>,
) -> Response {
    let mut state = shared.state();
    if let Some((id, _)) = original_message_id(&state, &token) {
        state.guild.messages.remove(&id);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Edits message `id`; the `edit` event names `answering` (the interaction whose response this
/// is) or else the interaction that created the message.
fn edit_stored(
    shared: &Shared,
    state: &mut EmulatorState,
    id: u64,
    body: &Value,
    ephemeral: bool,
    answering: Option<u64>,
    sent: Sent,
) -> Response {
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
    if body.get("__files").is_some() {
        message.attachments = attachments(body);
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

async fn create_followup(
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

async fn edit_followup(
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

async fn get_channel(State(shared): Shared_, Path(channel): Path<u64>) -> Response {
    let state = shared.state();
    match state.guild.channel(channel) {
        Some(c) => Json(state.guild.channel_json(c)).into_response(),
        None => error(StatusCode::NOT_FOUND, 10003, "Unknown Channel"),
    }
}

async fn modify_channel(
    State(shared): Shared_,
    Path(channel): Path<u64>,
    DiscordBody(body): DiscordBody,
) -> Response {
    let mut state = shared.state();
    let Some(c) = state.guild.channels.iter_mut().find(|c| c.id == channel) else {
        return error(StatusCode::NOT_FOUND, 10003, "Unknown Channel");
    };
    if let Some(name) = body["name"].as_str() {
        c.name = name.to_owned();
    }
    if let Some(topic) = body.get("topic") {
        c.topic = topic.as_str().map(str::to_owned);
    }
    let c = c.clone();
    Json(state.guild.channel_json(&c)).into_response()
}

async fn create_message(
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

async fn get_message(
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

async fn edit_message(
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

async fn pin_message(
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

fn create_thread(shared: &Shared, channel: u64, body: &Value) -> Response {
    let mut state = shared.state();
    if state.guild.channel(channel).is_none() {
        return error(StatusCode::NOT_FOUND, 10003, "Unknown Channel");
    }
    let Some(name) = body["name"].as_str().filter(|n| !n.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            50035,
            "Invalid Form Body: name is required",
        );
    };
    let id = state
        .guild
        .add_channel(None, name, CHANNEL_PUBLIC_THREAD, Some(channel));
    let json = state
        .guild
        .channel(id)
        .map(|c| state.guild.channel_json(c))
        .unwrap_or(Value::Null);
    announce_channel(shared, &state, id);
    (StatusCode::CREATED, Json(json)).into_response()
}

fn announce_channel(shared: &Shared, state: &EmulatorState, id: u64) {
    if let Some(c) = state.guild.channel(id) {
        shared.emit(EmulatorEvent {
            event: "channel_created",
            interaction_id: None,
            channel_id: c.id,
            channel: c.name.clone(),
            message_id: None,
            content: c.topic.clone().unwrap_or_default(),
            embeds: Vec::new(),
            components: Vec::new(),
            attachments: Vec::new(),
            files: Vec::new(),
            ephemeral: false,
            allowed_mentions: None,
            pings: mentions::Pings::default(),
        });
    }
}

async fn start_thread_from_message(
    State(shared): Shared_,
    Path((channel, _message)): Path<(u64, u64)>,
    DiscordBody(body): DiscordBody,
) -> Response {
    create_thread(&shared, channel, &body)
}

async fn start_thread(
    State(shared): Shared_,
    Path(channel): Path<u64>,
    DiscordBody(body): DiscordBody,
) -> Response {
    create_thread(&shared, channel, &body)
}

async fn get_guild(State(shared): Shared_, Path(guild): Path<u64>) -> Response {
    let state = shared.state();
    if guild != state.guild.id {
        return error(StatusCode::NOT_FOUND, 10004, "Unknown Guild");
    }
    let mut json = state.guild.guild_create_json();
    if let Some(object) = json.as_object_mut() {
        for key in [
            "members",
            "channels",
            "threads",
            "voice_states",
            "presences",
            "joined_at",
            "large",
            "unavailable",
            "member_count",
            "stage_instances",
            "guild_scheduled_events",
        ] {
            object.remove(key);
        }
        // Fields of GET /guilds/{id} that GUILD_CREATE does not carry.
        let fields = json!({
            "home_header": null,
            "region": "deprecated",
            "widget_enabled": false,
            "widget_channel_id": null,
            "max_presences": null,
            "max_members": 500_000,
            "max_stage_video_channel_users": 50,
            "max_video_channel_users": 25,
            "nsfw": false,
            "incidents_data": null,
        });
        object.extend(fields.as_object().cloned().unwrap_or_default());
    }
    Json(json).into_response()
}

async fn create_channel(
    State(shared): Shared_,
    Path(guild): Path<u64>,
    DiscordBody(body): DiscordBody,
) -> Response {
    let mut state = shared.state();
    if guild != state.guild.id {
        return error(StatusCode::NOT_FOUND, 10004, "Unknown Guild");
    }
    let Some(name) = body["name"].as_str().filter(|n| !n.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            50035,
            "Invalid Form Body: name is required",
        );
    };
    let kind = body["type"]
        .as_u64()
        .and_then(|k| u8::try_from(k).ok())
        .unwrap_or(CHANNEL_TEXT);
    let parent = body["parent_id"].as_str().and_then(|p| p.parse().ok());
    let id = state.guild.add_channel(None, name, kind, parent);
    if let Some(topic) = body["topic"].as_str()
        && let Some(c) = state.guild.channels.iter_mut().find(|c| c.id == id)
    {
        c.topic = Some(topic.to_owned());
    }
    let json = state
        .guild
        .channel(id)
        .map(|c| state.guild.channel_json(c))
        .unwrap_or(Value::Null);
    announce_channel(&shared, &state, id);
    (StatusCode::CREATED, Json(json)).into_response()
}

async fn list_channels(State(shared): Shared_) -> Json<Value> {
    let state = shared.state();
    // Discord's list leaves threads out (they have their own routes).
    let channels = state
        .guild
        .channels
        .iter()
        .filter(|c| c.kind != CHANNEL_PUBLIC_THREAD);
    Json(Value::Array(
        channels.map(|c| state.guild.channel_json(c)).collect(),
    ))
}

async fn list_roles(State(shared): Shared_) -> Json<Value> {
    let state = shared.state();
    Json(Value::Array(
        state
            .guild
            .roles
            .iter()
            .map(|r| state.guild.role_json(r))
            .collect(),
    ))
}

async fn get_member(State(shared): Shared_, Path((_guild, user)): Path<(u64, u64)>) -> Response {
    let state = shared.state();
    match state.guild.member(user) {
        Some(m) => Json(state.guild.member_json(m)).into_response(),
        None => error(StatusCode::NOT_FOUND, 10007, "Unknown Member"),
    }
}
