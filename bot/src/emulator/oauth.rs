//! The emulator's OAuth2: the authorization code grant a web login uses. `/oauth2/authorize`
//! shows a page to pick which member logs in (real Discord would ask the browser's user),
//! `/api/v10/oauth2/token` trades the code for a bearer token, and `/users/@me` and
//! `/users/@me/guilds/{guild}/member` answer for that token.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::Shared;
use crate::html::escape;

/// The client secret the emulator accepts (its client id is the application id).
pub const EMULATOR_CLIENT_SECRET: &str = "emulator-client-secret";

/// How long an emulated access token claims to live (Discord's is a week).
const TOKEN_LIFETIME_SECONDS: u64 = 604_800;

#[derive(Debug, Default)]
pub struct OAuthState {
    codes: HashMap<String, Grant>,
    tokens: HashMap<String, Grant>,
}

#[derive(Debug, Clone)]
struct Grant {
    member_id: u64,
    redirect_uri: String,
    scope: String,
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/oauth2/authorize", get(authorize))
        .route("/oauth2/authorize/approve", get(approve))
        .route("/api/v10/oauth2/token", axum::routing::post(token))
        .route("/api/oauth2/token", axum::routing::post(token))
        .route(
            "/api/v10/users/@me/guilds/{guild}/member",
            get(current_member),
        )
        .with_state(shared)
}

#[derive(Debug, Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><title>Discord emulator</title><p>{}</p>",
            escape(message)
        )),
    )
        .into_response()
}

/// The consent page: one link per member ("log in as ana").
async fn authorize(State(shared): State<Arc<Shared>>, Query(q): Query<AuthorizeQuery>) -> Response {
    let state = shared.state();
    if q.response_type.as_deref() != Some("code") {
        return bad_request(
            "response_type must be `code` (the emulator supports the authorization code grant)",
        );
    }
    if q.client_id.as_deref() != Some(state.guild.application_id.to_string().as_str()) {
        return bad_request("unknown client_id: use the application id of the emulated bot");
    }
    let Some(redirect_uri) = q
        .redirect_uri
        .filter(|r| r.starts_with("http://") || r.starts_with("https://"))
    else {
        return bad_request("redirect_uri is required and must be an http(s) URL");
    };
    let scope = q.scope.unwrap_or_else(|| "identify".to_owned());
    let mut links = String::new();
    for member in state.guild.members.iter().filter(|m| !m.bot) {
        let href = format!(
            "/oauth2/authorize/approve?member={}&redirect_uri={}&scope={}&state={}",
            member.id,
            urlencode(&redirect_uri),
            urlencode(&scope),
            urlencode(q.state.as_deref().unwrap_or_default())
        );
        links.push_str(&format!(
            "<li><a id=\"as-{name}\" href=\"{href}\">Authorize as {name}</a></li>",
            name = escape(&member.name),
            href = escape(&href)
        ));
    }
    Html(format!(
        "<!doctype html><title>Discord emulator: authorize opsbot</title><h1>opsbot wants to access your account</h1><p>Scopes: {}</p><ul>{links}</ul>",
        escape(&scope)
    ))
    .into_response()
}

#[derive(Debug, Deserialize)]
struct ApproveQuery {
    member: u64,
    redirect_uri: String,
    scope: String,
    state: Option<String>,
}

async fn approve(State(shared): State<Arc<Shared>>, Query(q): Query<ApproveQuery>) -> Response {
    let mut state = shared.state();
    if state.guild.member(q.member).is_none() {
        return bad_request("unknown member");
    }
    let code = uuid::Uuid::new_v4().simple().to_string();
    state.oauth.codes.insert(
        code.clone(),
        Grant {
            member_id: q.member,
            redirect_uri: q.redirect_uri.clone(),
            scope: q.scope,
        },
    );
    let separator = if q.redirect_uri.contains('?') {
        '&'
    } else {
        '?'
    };
    let mut target = format!("{}{separator}code={code}", q.redirect_uri);
    if let Some(s) = q.state.filter(|s| !s.is_empty()) {
        target.push_str(&format!("&state={}", urlencode(&s)));
    }
    Redirect::to(&target).into_response()
}

#[derive(Debug, Deserialize)]
struct TokenForm {
    grant_type: String,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

/// Client credentials come as HTTP Basic auth or as form fields, as Discord accepts both.
fn client_credentials(headers: &HeaderMap, form: &TokenForm) -> Option<(String, String)> {
    if let Some(basic) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (id, secret) = text.split_once(':')?;
        return Some((id.to_owned(), secret.to_owned()));
    }
    Some((form.client_id.clone()?, form.client_secret.clone()?))
}

async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let mut state = shared.state();
    let application_id = state.guild.application_id.to_string();
    match client_credentials(&headers, &form) {
        Some((id, secret)) if id == application_id && secret == EMULATOR_CLIENT_SECRET => {}
        _ => {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "error": "invalid_client" })),
            )
                .into_response();
        }
    }
    if form.grant_type != "authorization_code" {
        return oauth_error(
            "unsupported_grant_type",
            "the emulator supports authorization_code",
        );
    }
    let Some(grant) = form
        .code
        .as_deref()
        .and_then(|c| state.oauth.codes.remove(c))
    else {
        return oauth_error("invalid_grant", "Invalid \"code\" in request.");
    };
    if form.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str()) {
        return oauth_error("invalid_grant", "Invalid \"redirect_uri\" in request.");
    }
    let access_token = uuid::Uuid::new_v4().simple().to_string();
    let scope = grant.scope.clone();
    state.oauth.tokens.insert(access_token.clone(), grant);
    Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME_SECONDS,
        "refresh_token": uuid::Uuid::new_v4().simple().to_string(),
        "scope": scope,
    }))
    .into_response()
}

/// The member a bearer token was granted for, if the token is valid and has `scope`.
#[expect(
    clippy::result_large_err,
    reason = "the refusal is the HTTP response, answered as is"
)]
pub fn bearer_member(shared: &Shared, headers: &HeaderMap, scope: &str) -> Result<u64, Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let state = shared.state();
    match state.oauth.tokens.get(token) {
        Some(grant) if grant.scope.split(' ').any(|s| s == scope) => Ok(grant.member_id),
        Some(_) => Err((
            StatusCode::FORBIDDEN,
            Json(json!({ "message": "Missing Access", "code": 50001 })),
        )
            .into_response()),
        None => Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({ "message": "401: Unauthorized", "code": 0 })),
        )
            .into_response()),
    }
}

async fn current_member(
    State(shared): State<Arc<Shared>>,
    Path(guild): Path<u64>,
    headers: HeaderMap,
) -> Response {
    let member_id = match bearer_member(&shared, &headers, "guilds.members.read") {
        Ok(id) => id,
        Err(response) => return response,
    };
    let state = shared.state();
    if guild != state.guild.id {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "message": "Unknown Guild", "code": 10004 })),
        )
            .into_response();
    }
    match state.guild.member(member_id) {
        Some(member) => Json(state.guild.member_json(member)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "message": "Unknown Member", "code": 10007 })),
        )
            .into_response(),
    }
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
