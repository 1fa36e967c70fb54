//! Who may see the dashboard: every page and API call needs a dashboard token (as a bearer
//! token, or typed into the login page) or a Discord login of a guild member whose roles grant
//! `audit:read`. Sessions are signed, HttpOnly, SameSite=Lax cookies with an expiry, each
//! backed by a server-side row ([`session`]) so that logout and a removed token end it;
//! forms carry a CSRF token. `/healthz`, `/readyz`, `/metrics` and the signed deploy webhooks
//! are outside this layer.
//!
//! Successful logins are audited, one event each. Failed ones prove nobody, so they are
//! unauthenticated refusals (door `dashboard login`): counted in `/metrics`, logged sampled,
//! and written to the trail at most once per address and minute with a count. They also
//! count against the address's login attempts ([`limit`]): too many, and it gets 429.
//! After login, people go to `next` only when it is a path of ours ([`redirect`]).

mod discord;
mod limit;
mod redirect;

use std::net::IpAddr;
use std::time::Duration;

use axum::Form;
use axum::extract::{FromRef, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, Key, SameSite, SignedCookieJar};
use base64::Engine as _;
use opsbot_commands::{Actor, Invocation, Source};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256, Sha512};
use uuid::Uuid;

pub use discord::{discord_callback, discord_start};
pub use limit::LoginAttempts;
pub use redirect::{LoginError, safe_next};

use super::WebState;
use super::client::ClientAddr;
use super::pages;
use opsbot_commands::sessions::{self as session, How, NewSession};

const SESSION_COOKIE: &str = "opsbot_session";
const LOGIN_CSRF_COOKIE: &str = "opsbot_login_csrf";
const OAUTH_COOKIE: &str = "opsbot_oauth";
/// The permission a Discord login needs.
pub const DASHBOARD_PERMISSION: &str = "audit:read";
/// How long a Discord login may take between leaving for Discord and coming back.
const OAUTH_STATE_TTL: Duration = Duration::from_secs(600);
/// The door of every failed dashboard login, in `/metrics` and the sampled audit events.
pub const LOGIN_DOOR: &str = "dashboard login";

/// How people authenticate, from the config, and the failed attempts seen so far.
#[derive(Clone)]
pub struct Dashboard {
    pub tokens: Vec<SecretString>,
    pub key: Key,
    pub session_ttl: Duration,
    /// Cookies only over HTTPS when `public_url` is https.
    pub secure_cookies: bool,
    pub discord: Option<DiscordLogin>,
    /// Failed logins per source address (shared by clones).
    pub attempts: LoginAttempts,
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
    /// A signing key from `secret` (stretched by SHA-512; the config insists on 32 bytes or
    /// more), or a random one.
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
    /// The session's row in `dashboard_sessions`; nil for a bearer token.
    pub sid: Uuid,
    /// A Discord login's role names in the guild when it logged in (what `[roles]` maps);
    /// a token acts with the built-in dashboard token role instead.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl Principal {
    /// Who this is, as the domain sees every actor.
    pub fn actor(&self) -> Actor {
        let roles = if self.id == 0 {
            vec![opsbot_commands::access::DASHBOARD_TOKEN_ROLE.to_owned()]
        } else {
            self.roles.clone()
        };
        Actor {
            id: self.id,
            name: self.name.clone(),
            roles,
            source: Source::Web,
        }
    }

    /// An invocation of `command` with `args` by this principal.
    pub fn invocation(&self, command: &str, args: serde_json::Value) -> Invocation {
        Invocation::new(self.actor(), command, args)
    }
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

/// The session in the cookie jar, if its signature is valid and it has not expired. Whether
/// it was revoked is for [`Desk::session_check`](opsbot_commands::Desk::session_check) to say.
pub fn session(jar: &SignedCookieJar) -> Option<Principal> {
    let principal: Principal = decode(jar.get(SESSION_COOKIE)?.value())?;
    (principal.exp > chrono::Utc::now().timestamp()).then_some(principal)
}

/// One failed login from `address`: a refusal to count and sample, and an attempt to limit.
fn failed_login(state: &WebState, address: IpAddr, reason: &str) {
    state.dashboard.attempts.failed(address);
    state
        .desk
        .refuse_unauthenticated(LOGIN_DOOR, Source::Web, address, reason);
}

/// 429 for an address that failed too often; `api` answers JSON instead of a page.
fn too_many_attempts(wait: Duration, api: bool) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let minutes = seconds.div_ceil(60);
    let retry_after = [(header::RETRY_AFTER, HeaderValue::from(seconds))];
    if api {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            retry_after,
            axum::Json(serde_json::json!({
                "error": format!("too many failed logins from your address; try again in {seconds} seconds")
            })),
        )
            .into_response();
    }
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    (
        StatusCode::TOO_MANY_REQUESTS,
        retry_after,
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Too many attempts · opsbot</title>\
             <link rel=\"stylesheet\" href=\"/static/app.css\"></head><body class=\"login\"><main><h1>opsbot</h1>\
             <p class=\"error\" id=\"error\">Too many failed logins from your address. Wait {minutes} {unit}, then \
             <a href=\"/login\">try again</a>.</p></main></body></html>"
        )),
    )
        .into_response()
}

/// 503 when something a login needs (recording it) could not be done.
fn unavailable(error: &opsbot_commands::CommandError) -> Response {
    tracing::warn!(error = %error, "dashboard login could not be completed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html("<!doctype html><title>opsbot</title><p>The login could not be recorded: the database is not answering. Try again in a moment.</p>"),
    )
        .into_response()
}

/// 503 when the database cannot say whether a session is still valid.
fn session_unchecked(api: bool) -> Response {
    if api {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "error": "the database is not answering" })),
        )
            .into_response();
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html("<!doctype html><title>opsbot</title><p>opsbot cannot check your session: the database is not answering. Try again in a moment.</p>"),
    )
        .into_response()
}

/// The layer in front of every page and API route.
pub async fn require_auth(
    State(state): State<WebState>,
    ClientAddr(address): ClientAddr,
    jar: SignedCookieJar,
    mut request: Request,
    next: Next,
) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|v| v.trim().to_owned());
    let mut jar_out = None;
    let principal = match bearer {
        Some(token) => {
            if let Some(wait) = state.dashboard.attempts.retry_after(address) {
                state.desk.refuse_unauthenticated(
                    LOGIN_DOOR,
                    Source::Web,
                    address,
                    "too many failed logins",
                );
                return too_many_attempts(wait, api);
            }
            if token_matches(&state.dashboard, &token) {
                Some(Principal {
                    name: "token".to_owned(),
                    id: 0,
                    exp: i64::MAX,
                    csrf: String::new(),
                    sid: Uuid::nil(),
                    roles: Vec::new(),
                })
            } else {
                failed_login(&state, address, "wrong bearer token");
                None
            }
        }
        None => match session(&jar) {
            None => None,
            Some(principal) => {
                match state
                    .desk
                    .session_check(principal.sid, &state.dashboard.tokens)
                    .await
                {
                    Ok(Ok(())) => Some(principal),
                    Ok(Err(ended)) => {
                        tracing::debug!(reason = ended.as_str(), who = %principal.name, "session cookie refused");
                        jar_out = Some(jar.remove(Cookie::build(SESSION_COOKIE).path("/")));
                        None
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "dashboard session not checked");
                        return session_unchecked(api);
                    }
                }
            }
        },
    };
    let refused = match principal {
        Some(principal) => {
            request.extensions_mut().insert(principal);
            return next.run(request).await;
        }
        None if api => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(serde_json::json!({ "error": "authentication required: send Authorization: Bearer <dashboard token>" })),
        )
            .into_response(),
        None => {
            let next_path = request.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
            Redirect::to(&format!("/login?next={}", url::form_urlencoded::byte_serialize(next_path.as_bytes()).collect::<String>())).into_response()
        }
    };
    (jar_out, refused).into_response()
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
        error: LoginError::message_of(q.error.as_deref().unwrap_or_default()).to_owned(),
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
        LOGIN_DOOR,
        serde_json::json!({ "via": how }),
    )
}

pub async fn login_with_token(
    State(state): State<WebState>,
    ClientAddr(address): ClientAddr,
    jar: SignedCookieJar,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Some(wait) = state.dashboard.attempts.retry_after(address) {
        state.desk.refuse_unauthenticated(
            LOGIN_DOOR,
            Source::Web,
            address,
            "too many failed logins",
        );
        return too_many_attempts(wait, false);
    }
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
    let given = form.token.trim();
    if !token_matches(&state.dashboard, given) {
        failed_login(&state, address, "wrong dashboard token");
        return Redirect::to(&LoginError::WrongToken.location(&next)).into_response();
    }
    let session = NewSession {
        id: Uuid::new_v4(),
        how: How::Token,
        actor_id: 0,
        actor_name: "token",
        token_fingerprint: Some(session::fingerprint(given)),
        expires_at: session_expiry(&state.dashboard),
    };
    start_session(
        &state,
        jar,
        &session,
        &login_invocation("token", 0, "token"),
        "logged in with a dashboard token",
        &next,
    )
    .await
}

/// When a session opened now ends.
fn session_expiry(dashboard: &Dashboard) -> chrono::DateTime<chrono::Utc> {
    let ttl =
        chrono::Duration::from_std(dashboard.session_ttl).unwrap_or(chrono::Duration::hours(12));
    chrono::Utc::now() + ttl
}

/// Stores the session and the login's audit event, then hands out the cookie.
async fn start_session(
    state: &WebState,
    jar: SignedCookieJar,
    session: &NewSession<'_>,
    login: &Invocation,
    detail: &str,
    next: &str,
) -> Response {
    let roles = &login.actor.roles;
    if let Err(e) = state.desk.session_open(session, login, detail).await {
        tracing::warn!(error = %e, "dashboard login not stored");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Html("<!doctype html><title>opsbot</title><p>The login could not be recorded: the database is not answering. Try again in a moment.</p>"),
        )
            .into_response();
    }
    let principal = Principal {
        name: session.actor_name.to_owned(),
        id: session.actor_id,
        exp: session.expires_at.timestamp(),
        csrf: random_token(),
        sid: session.id,
        roles: roles.to_vec(),
    };
    let dashboard = &state.dashboard;
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

/// Ends the session here and on the server: the cookie stops working even if kept.
pub async fn logout(
    State(state): State<WebState>,
    jar: SignedCookieJar,
    Form(form): Form<LogoutForm>,
) -> Response {
    match session(&jar) {
        Some(principal) if same_secret(&principal.csrf, &form.csrf) => {
            let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
            match state.desk.session_revoke(principal.sid).await {
                Ok(()) => (jar, Redirect::to("/login")).into_response(),
                Err(e) => {
                    tracing::warn!(error = %e, "dashboard session not revoked");
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        jar,
                        Html("<!doctype html><title>opsbot</title><p>This browser forgot your session, but opsbot could not end it on the server: the database is not answering. Log out again in a moment.</p>"),
                    )
                        .into_response()
                }
            }
        }
        _ => (
            StatusCode::FORBIDDEN,
            Html("Logout refused: the form is stale. Reload the page and try again."),
        )
            .into_response(),
    }
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
