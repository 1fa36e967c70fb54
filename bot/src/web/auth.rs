//! Who may see the dashboard: every page and API call needs a dashboard token (as a bearer
//! token, or typed into the login page) or a Discord login of a guild member whose roles grant
//! `audit:read`. Sessions are signed, HttpOnly, SameSite=Lax cookies with an expiry; forms
//! carry a CSRF token. `/healthz`, `/readyz`, `/metrics` and the signed deploy webhooks are
//! outside this layer. Logins (failed ones too) are audited.

use std::time::Duration;

use axum::Form;
use axum::extract::{FromRef, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, Key, SameSite, SignedCookieJar};
use base64::Engine as _;
use opsbot_commands::audit::Outcome;
use opsbot_commands::{Actor, Invocation, Source};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256, Sha512};

use super::{WebState, pages};

const SESSION_COOKIE: &str = "opsbot_session";
const LOGIN_CSRF_COOKIE: &str = "opsbot_login_csrf";
const OAUTH_COOKIE: &str = "opsbot_oauth";
/// The permission a Discord login needs.
pub const DASHBOARD_PERMISSION: &str = "audit:read";
/// How long a Discord login may take between leaving for Discord and coming back.
const OAUTH_STATE_TTL: Duration = Duration::from_secs(600);

/// How people authenticate, from the config.
#[derive(Clone)]
pub struct Dashboard {
    pub tokens: Vec<SecretString>,
    pub key: Key,
    pub session_ttl: Duration,
    /// Cookies only over HTTPS when `public_url` is https.
    pub secure_cookies: bool,
    pub discord: Option<DiscordLogin>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("tokens", &self.tokens.len())
            .field("session_ttl", &self.session_ttl)
            .field("discord", &self.discord.is_some())
            .finish_non_exhaustive()
    }
}

/// Discord OAuth2 (authorization code grant) for the dashboard.
#[derive(Debug, Clone)]
pub struct DiscordLogin {
    pub client_id: String,
    pub client_secret: SecretString,
    /// `https://discord.com`, or a stand-in (the emulator).
    pub api_base: String,
    /// Reads the guild's role names (members carry role ids only).
    pub bot_token: Option<SecretString>,
    pub guild_ids: Vec<u64>,
    /// `{public_url}/auth/discord/callback`, as registered in the Developer Portal.
    pub redirect_uri: String,
}

impl Dashboard {
    /// A signing key from `secret` (any length: it is stretched by SHA-512), or a random one.
    pub fn key_from(secret: Option<&str>) -> Key {
        match secret {
            Some(secret) => Key::from(&Sha512::digest(secret.as_bytes())),
            None => Key::generate(),
        }
    }
}

impl FromRef<WebState> for Key {
    fn from_ref(state: &WebState) -> Key {
        state.dashboard.key.clone()
    }
}

/// Who is looking, on every authenticated request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Principal {
    pub name: String,
    /// Discord user id, or 0 for a token.
    pub id: i64,
    /// Unix seconds.
    pub exp: i64,
    /// Forms must send this back.
    pub csrf: String,
}

fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Equal lengths and contents, in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn token_matches(dashboard: &Dashboard, given: &str) -> bool {
    // Check every token so the time taken does not tell which one matched.
    dashboard.tokens.iter().fold(false, |hit, token| {
        same_secret(token.expose_secret(), given) | hit
    })
}

fn encode<T: Serialize>(value: &T) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(value).unwrap_or_default())
}

fn decode<T: for<'de> Deserialize<'de>>(text: &str) -> Option<T> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn cookie(
    dashboard: &Dashboard,
    name: &'static str,
    value: String,
    max_age: Duration,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(dashboard.secure_cookies)
        .max_age(time::Duration::seconds(
            i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
        ))
        .build()
}

/// The session in the cookie jar, if valid and not expired.
pub fn session(jar: &SignedCookieJar) -> Option<Principal> {
    let principal: Principal = decode(jar.get(SESSION_COOKIE)?.value())?;
    (principal.exp > chrono::Utc::now().timestamp()).then_some(principal)
}

/// The layer in front of every page and API route.
pub async fn require_auth(
    State(state): State<WebState>,
    jar: SignedCookieJar,
    mut request: Request,
    next: Next,
) -> Response {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let principal = match bearer {
        Some(token) if token_matches(&state.dashboard, token.trim()) => Some(Principal {
            name: "token".to_owned(),
            id: 0,
            exp: i64::MAX,
            csrf: String::new(),
        }),
        Some(_) => None,
        None => session(&jar),
    };
    match principal {
        Some(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        None if request.uri().path().starts_with("/api/") => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(serde_json::json!({ "error": "authentication required: send Authorization: Bearer <dashboard token>" })),
        )
            .into_response(),
        None => {
            let next_path = request.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
            Redirect::to(&format!("/login?next={}", url::form_urlencoded::byte_serialize(next_path.as_bytes()).collect::<String>())).into_response()
        }
    }
}

/// Only same-site paths: `next` must not send people elsewhere after login.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    error: Option<String>,
}

pub async fn login_page(
    State(state): State<WebState>,
    jar: SignedCookieJar,
    Query(q): Query<LoginQuery>,
) -> Response {
    let csrf = random_token();
    let jar = jar.add(cookie(
        &state.dashboard,
        LOGIN_CSRF_COOKIE,
        csrf.clone(),
        OAUTH_STATE_TTL,
    ));
    let page = pages::LoginPage {
        csrf,
        next: safe_next(q.next.as_deref()),
        error: q.error.unwrap_or_default(),
        discord: state.dashboard.discord.is_some(),
        tokens: !state.dashboard.tokens.is_empty(),
    };
    (jar, pages::render(&page)).into_response()
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    token: String,
    csrf: String,
    next: Option<String>,
}

fn login_invocation(name: &str, id: i64, how: &str) -> Invocation {
    Invocation::new(
        Actor {
            id,
            name: name.to_owned(),
            roles: Vec::new(),
            source: Source::Web,
        },
        "dashboard login",
        serde_json::json!({ "via": how }),
    )
}

pub async fn login_with_token(
    State(state): State<WebState>,
    jar: SignedCookieJar,
    Form(form): Form<LoginForm>,
) -> Response {
    let csrf_ok = jar
        .get(LOGIN_CSRF_COOKIE)
        .is_some_and(|c| same_secret(c.value(), &form.csrf));
    if !csrf_ok {
        return (
            StatusCode::FORBIDDEN,
            Html("The login form expired; open /login again."),
        )
            .into_response();
    }
    let next = safe_next(form.next.as_deref());
    if !token_matches(&state.dashboard, form.token.trim()) {
        let _ = state
            .desk
            .record(
                &login_invocation("anonymous", 0, "token"),
                Outcome::Denied,
                "wrong dashboard token",
            )
            .await;
        return Redirect::to(&format!(
            "/login?error=wrong+token&next={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        ))
        .into_response();
    }
    let _ = state
        .desk
        .record(
            &login_invocation("token", 0, "token"),
            Outcome::Ok,
            "logged in with a dashboard token",
        )
        .await;
    start_session(&state.dashboard, jar, "token", 0, &next)
}

fn start_session(
    dashboard: &Dashboard,
    jar: SignedCookieJar,
    name: &str,
    id: i64,
    next: &str,
) -> Response {
    let principal = Principal {
        name: name.to_owned(),
        id,
        exp: chrono::Utc::now().timestamp()
            + i64::try_from(dashboard.session_ttl.as_secs()).unwrap_or(i64::MAX / 2),
        csrf: random_token(),
    };
    let jar = jar
        .remove(Cookie::build(LOGIN_CSRF_COOKIE).path("/"))
        .remove(Cookie::build(OAUTH_COOKIE).path("/"))
        .add(cookie(
            dashboard,
            SESSION_COOKIE,
            encode(&principal),
            dashboard.session_ttl,
        ));
    (jar, Redirect::to(next)).into_response()
}

#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    csrf: String,
}

pub async fn logout(jar: SignedCookieJar, Form(form): Form<LogoutForm>) -> Response {
    match session(&jar) {
        Some(principal) if same_secret(&principal.csrf, &form.csrf) => {
            let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
            (jar, Redirect::to("/login")).into_response()
        }
        _ => (
            StatusCode::FORBIDDEN,
            Html("Logout refused: the form is stale. Reload the page and try again."),
        )
            .into_response(),
    }
}

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
    let Some(discord) = &state.dashboard.discord else {
        return Redirect::to("/login?error=Discord+login+is+not+configured").into_response();
    };
    let pending = OAuthState {
        state: random_token(),
        next: safe_next(q.next.as_deref()),
        exp: chrono::Utc::now().timestamp() + OAUTH_STATE_TTL.as_secs() as i64,
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
    jar: SignedCookieJar,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(discord) = state.dashboard.discord.clone() else {
        return Redirect::to("/login?error=Discord+login+is+not+configured").into_response();
    };
    let pending: Option<OAuthState> = jar.get(OAUTH_COOKIE).and_then(|c| decode(c.value()));
    let Some(pending) = pending.filter(|p| p.exp > chrono::Utc::now().timestamp()) else {
        return refuse_login("the login took too long or was started elsewhere; try again");
    };
    if q.state
        .as_deref()
        .is_none_or(|s| !same_secret(s, &pending.state))
    {
        return refuse_login(
            "the answer from Discord does not belong to this login (state mismatch)",
        );
    }
    if let Some(error) = q.error {
        return refuse_login(&format!("Discord did not authorize the login: {error}"));
    }
    let Some(code) = q.code else {
        return refuse_login("Discord sent no authorization code");
    };
    match discord_member(&discord, &code).await {
        Ok((id, name, roles)) => {
            let actor = Actor {
                id,
                name: name.clone(),
                roles,
                source: Source::Web,
            };
            let inv = Invocation::new(
                actor.clone(),
                "dashboard login",
                serde_json::json!({ "via": "discord" }),
            );
            if !state.desk.roles.allows(&actor, DASHBOARD_PERMISSION) {
                let _ = state
                    .desk
                    .record(
                        &inv,
                        Outcome::Denied,
                        &format!("no role grants {DASHBOARD_PERMISSION}"),
                    )
                    .await;
                return (
                    StatusCode::FORBIDDEN,
                    Html(format!(
                        "<!doctype html><title>opsbot</title><p>{} may not see the audit log: none of your roles grants <code>{DASHBOARD_PERMISSION}</code>. Ask an admin.</p>",
                        pages::escape(&name)
                    )),
                )
                    .into_response();
            }
            let _ = state
                .desk
                .record(&inv, Outcome::Ok, "logged in with Discord")
                .await;
            start_session(&state.dashboard, jar, &name, id, &pending.next)
        }
        Err(reason) => {
            tracing::warn!(reason, "Discord login failed");
            refuse_login(&reason)
        }
    }
}

fn refuse_login(reason: &str) -> Response {
    Redirect::to(&format!(
        "/login?error={}",
        url::form_urlencoded::byte_serialize(reason.as_bytes()).collect::<String>()
    ))
    .into_response()
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
        let role_ids: Vec<String> = member["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect();
        let Some(bot_token) = &discord.bot_token else {
            return Err("opsbot has no bot token to read role names ([discord] token)".to_owned());
        };
        let guild_roles: serde_json::Value = http
            .get(format!("{api}/guilds/{guild}/roles"))
            .header(
                header::AUTHORIZATION,
                format!("Bot {}", bot_token.expose_secret()),
            )
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("could not read the guild's roles: {e}"))?
            .json()
            .await
            .map_err(|e| format!("unexpected roles answer: {e}"))?;
        for role in guild_roles.as_array().into_iter().flatten() {
            if role["id"]
                .as_str()
                .is_some_and(|rid| role_ids.iter().any(|r| r == rid))
                && let Some(role_name) = role["name"].as_str()
            {
                roles.push(role_name.to_owned());
            }
        }
    }
    if roles.is_empty() && discord.guild_ids.is_empty() {
        return Err(
            "no [discord] guild_ids are configured, so opsbot cannot check your roles".to_owned(),
        );
    }
    Ok((id, name, roles))
}

/// Security headers on every response: a strict CSP with no inline scripts, no framing.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers: &mut HeaderMap = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(name, axum::http::HeaderValue::from_static(value));
    };
    set(
        headers,
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "x-frame-options", "DENY");
    set(headers, "referrer-policy", "no-referrer");
    response
}
