//! Logging in with Discord (OAuth2 authorization code grant): `/auth/discord` sends people to
//! Discord's consent page; `/auth/discord/callback` trades the code for a token, reads the
//! member's roles in the configured guilds and opens a session when a role grants
//! [`DASHBOARD_PERMISSION`]. A callback that proves nobody (expired or foreign state, an
//! error from Discord, a code Discord refuses) is an unauthenticated refusal: counted,
//! sampled into the trail, and a failed attempt of its address. A member whose roles do not
//! grant the permission is known, so that refusal is audited as one event, as every denial.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::SignedCookieJar;
use opsbot_commands::{Actor, CommandError, Invocation, Source};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};

use super::redirect::{LoginError, safe_next};
use super::{
    DASHBOARD_PERMISSION, DiscordLogin, LoginQuery, OAUTH_COOKIE, OAUTH_STATE_TTL, cookie, decode,
    encode, failed_login, random_token, same_secret, start_session, too_many_attempts,
};
use crate::web::client::ClientAddr;
use crate::web::{WebState, pages};
use opsbot_commands::sessions::{How, NewSession};

#[derive(Debug, Serialize, Deserialize)]
struct OAuthState {
    state: String,
    next: String,
    exp: i64,
}

/// Off to Discord's consent page.
pub async fn discord_start(
    State(state): State<WebState>,
    jar: SignedCookieJar,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    let Some(discord) = &state.dashboard.discord else {
        return Redirect::to(&LoginError::DiscordOff.location(&next)).into_response();
    };
    let pending = OAuthState {
        state: random_token(),
        next,
        exp: chrono::Utc::now().timestamp()
            + i64::try_from(OAUTH_STATE_TTL.as_secs()).unwrap_or(i64::MAX / 2),
    };
    let url = format!(
        "{}/oauth2/authorize?response_type=code&client_id={}&scope={}&state={}&redirect_uri={}&prompt=none",
        discord.api_base,
        discord.client_id,
        "identify%20guilds.members.read",
        pending.state,
        url::form_urlencoded::byte_serialize(discord.redirect_uri.as_bytes()).collect::<String>()
    );
    let jar = jar.add(cookie(
        &state.dashboard,
        OAUTH_COOKIE,
        encode(&pending),
        OAUTH_STATE_TTL,
    ));
    (jar, Redirect::to(&url)).into_response()
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// Back from Discord: trade the code for a token, find the member's roles, and let them in if
/// a role grants `audit:read`.
pub async fn discord_callback(
    State(state): State<WebState>,
    ClientAddr(address): ClientAddr,
    jar: SignedCookieJar,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(discord) = state.dashboard.discord.clone() else {
        return Redirect::to(&LoginError::DiscordOff.location("/")).into_response();
    };
    if let Some(wait) = state.dashboard.attempts.retry_after(address) {
        state.desk.refuse_unauthenticated(
            super::LOGIN_DOOR,
            Source::Web,
            address,
            "too many failed logins",
        );
        return too_many_attempts(wait, false);
    }
    let refuse = |error: LoginError, reason: &str, next: &str| {
        failed_login(&state, address, reason);
        Redirect::to(&error.location(next)).into_response()
    };
    let pending: Option<OAuthState> = jar.get(OAUTH_COOKIE).and_then(|c| decode(c.value()));
    let Some(pending) = pending.filter(|p| p.exp > chrono::Utc::now().timestamp()) else {
        return refuse(
            LoginError::Expired,
            "Discord callback without a current login (state cookie missing or expired)",
            "/",
        );
    };
    // Signed by us, but checked again: a cookie from an older version could carry anything.
    let next = safe_next(Some(&pending.next));
    if q.state
        .as_deref()
        .is_none_or(|s| !same_secret(s, &pending.state))
    {
        return refuse(
            LoginError::StateMismatch,
            "Discord callback with another login's state",
            &next,
        );
    }
    if let Some(error) = q.error {
        return refuse(
            LoginError::DiscordDenied,
            &format!("Discord did not authorize the login: {error}"),
            &next,
        );
    }
    let Some(code) = q.code else {
        return refuse(
            LoginError::DiscordFailed,
            "Discord sent no authorization code",
            &next,
        );
    };
    let (id, name, roles) = match discord_member(&discord, &code).await {
        Ok(member) => member,
        Err(reason) => {
            tracing::warn!(reason, "Discord login failed");
            return refuse(LoginError::DiscordFailed, &reason, &next);
        }
    };
    let actor = Actor {
        id,
        name: name.clone(),
        roles,
        source: Source::Web,
    };
    let inv = Invocation::new(
        actor.clone(),
        super::LOGIN_DOOR,
        serde_json::json!({ "via": "discord" }),
    );
    match state
        .desk
        .authorize(&inv, DASHBOARD_PERMISSION, "see the audit log")
        .await
    {
        Ok(()) => {}
        Err(CommandError::Denied { .. }) => {
            state.dashboard.attempts.failed(address);
            return (
            StatusCode::FORBIDDEN,
            Html(format!(
                "<!doctype html><title>opsbot</title><p>{} may not see the audit log: none of your roles grants <code>{DASHBOARD_PERMISSION}</code>. Ask an admin.</p>",
                pages::escape(&name)
            )),
        )
            .into_response();
        }
        // The denial could not be recorded: nothing happens unaudited.
        Err(other) => return super::unavailable(&other),
    }
    let session = NewSession {
        id: uuid::Uuid::new_v4(),
        how: How::Discord,
        actor_id: id,
        actor_name: &name,
        token_fingerprint: None,
        expires_at: super::session_expiry(&state.dashboard),
    };
    start_session(&state, jar, &session, &inv, "logged in with Discord", &next).await
}

/// The member behind an authorization code: id, name and role names in the configured guild.
async fn discord_member(
    discord: &DiscordLogin,
    code: &str,
) -> Result<(i64, String, Vec<String>), String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let api = format!("{}/api/v10", discord.api_base);
    let token: serde_json::Value = http
        .post(format!("{api}/oauth2/token"))
        .basic_auth(&discord.client_id, Some(discord.client_secret.expose_secret()))
        .form(&[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", discord.redirect_uri.as_str())])
        .send()
        .await
        .map_err(|e| format!("could not reach Discord: {e}"))?
        .error_for_status()
        .map_err(|e| format!("Discord refused the authorization code ({e}); check discord.client_id and client_secret"))?
        .json()
        .await
        .map_err(|e| format!("unexpected token answer: {e}"))?;
    let access = token["access_token"]
        .as_str()
        .ok_or("Discord sent no access token")?
        .to_owned();
    let user: serde_json::Value = http
        .get(format!("{api}/users/@me"))
        .bearer_auth(&access)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| format!("could not read your Discord user: {e}"))?
        .json()
        .await
        .map_err(|e| format!("unexpected user answer: {e}"))?;
    let id: i64 = user["id"]
        .as_str()
        .and_then(|i| i.parse().ok())
        .ok_or("Discord sent no user id")?;
    let name = user["username"].as_str().unwrap_or("unknown").to_owned();
    let mut roles = Vec::new();
    for guild in &discord.guild_ids {
        let member = http
            .get(format!("{api}/users/@me/guilds/{guild}/member"))
            .bearer_auth(&access)
            .send()
            .await
            .map_err(|e| format!("could not read your membership: {e}"))?;
        if member.status() == reqwest::StatusCode::NOT_FOUND {
            continue;
        }
        let member: serde_json::Value = member
            .error_for_status()
            .map_err(|e| format!("could not read your membership: {e}"))?
            .json()
            .await
            .map_err(|e| format!("unexpected member answer: {e}"))?;
        let role_ids: Vec<serenity::all::RoleId> = member["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str()?.parse::<u64>().ok())
            .filter(|id| *id != 0)
            .map(serenity::all::RoleId::new)
            .collect();
        let Some(bot_token) = &discord.bot_token else {
            return Err("opsbot has no bot token to read role names ([discord] token)".to_owned());
        };
        let bot = crate::discord::http_client(&crate::discord::GatewaySettings {
            token: bot_token.expose_secret().to_owned(),
            guild_ids: discord.guild_ids.clone(),
            api_base: discord.api_base.clone(),
            source: Source::Discord,
        });
        let Some(guild_id) = std::num::NonZeroU64::new(*guild) else {
            continue;
        };
        let names = crate::discord::role_names_over_http(
            &bot,
            serenity::all::GuildId::from(guild_id),
            &role_ids,
        )
        .await
        .map_err(|e| format!("could not read the guild's roles: {e}"))?;
        roles.extend(names);
    }
    if roles.is_empty() && discord.guild_ids.is_empty() {
        return Err(
            "no [discord] guild_ids are configured, so opsbot cannot check your roles".to_owned(),
        );
    }
    Ok((id, name, roles))
}
