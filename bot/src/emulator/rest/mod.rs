//! The emulator's REST API: the subset of Discord's v10 routes opsbot uses, answering in the
//! shapes of Discord's OpenAPI spec. Requests must carry the bot token; routes can be
//! scripted to fail (429 with `retry_after`, 5xx) to test retries.

mod body;
mod commands;
mod guild;
mod interactions;
mod messages;

use body::*;
use commands::*;
use guild::*;
use interactions::*;
use messages::*;

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
        // Files up to Discord's limit: axum's default of 2 MB would refuse them first.
        .layer(axum::extract::DefaultBodyLimit::max(BODY_MAX_BYTES))
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
            (f.status, f.retry_after, f.after)
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
    if let Some((status, retry_after, after)) = scripted {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if after {
            let _served = next.run(request).await;
            return error(status, 0, "scripted failure: the answer was lost");
        }
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
