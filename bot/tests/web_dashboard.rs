//! The dashboard through its router: authentication (tokens, sessions, CSRF, Discord OAuth2
//! against the emulator), escaping, security headers and every page.

use std::sync::Arc;
use std::time::Duration;

use std::net::SocketAddr;

use axum::body::{Body, to_bytes};
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use opsbot::emulator::{Emulator, GuildSpec};
use opsbot::web::auth::{Dashboard, DiscordLogin};
use opsbot::web::{WebState, router};
use opsbot_commands::access::RoleMap;
use opsbot_commands::audit::{NewEvent, Outcome, append, seal_pending};
use opsbot_commands::{Desk, Source};
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

const TOKEN: &str = "dashboard-secret-token-of-at-least-32-bytes";

fn state(pool: &PgPool, discord: Option<DiscordLogin>) -> WebState {
    let roles = RoleMap::new(
        [
            ("ops".to_owned(), vec!["audit:read".to_owned()]),
            ("dev".to_owned(), vec!["deploy:staging".to_owned()]),
        ]
        .into_iter()
        .collect(),
    )
    .expect("roles");
    WebState {
        metrics: opsbot::telemetry::metrics(),
        desk: Desk::new(pool.clone(), roles),
        dashboard: Arc::new(Dashboard {
            tokens: vec![secrecy::SecretString::from(TOKEN.to_owned())],
            key: Dashboard::key_from(Some("a session secret for the router tests, 32+ bytes")),
            session_ttl: Duration::from_secs(3600),
            secure_cookies: false,
            discord,
            attempts: Default::default(),
        }),
    }
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// `name=value` of each Set-Cookie, for the next request's Cookie header.
    fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().to_owned())
            .collect()
    }
}

async fn send(state: &WebState, request: Request<Body>) -> Answer {
    let response = router(state.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// `request` as if it came over TCP from `from` (what `opsbot run` serves with
/// `into_make_service_with_connect_info`).
async fn send_from(state: &WebState, mut request: Request<Body>, from: SocketAddr) -> Answer {
    request.extensions_mut().insert(ConnectInfo(from));
    send(state, request).await
}

async fn get(state: &WebState, uri: &str, cookies: &[String]) -> Answer {
    let mut request = Request::get(uri);
    if !cookies.is_empty() {
        request = request.header(header::COOKIE, cookies.join("; "));
    }
    send(state, request.body(Body::empty()).expect("request")).await
}

async fn post_form(
    state: &WebState,
    uri: &str,
    form: &[(&str, &str)],
    cookies: &[String],
) -> Answer {
    post_form_from(state, uri, form, cookies, None).await
}

async fn post_form_from(
    state: &WebState,
    uri: &str,
    form: &[(&str, &str)],
    cookies: &[String],
    from: Option<SocketAddr>,
) -> Answer {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut request =
        Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if !cookies.is_empty() {
        request = request.header(header::COOKIE, cookies.join("; "));
    }
    let request = request.body(Body::from(body)).expect("request");
    match from {
        Some(from) => send_from(state, request, from).await,
        None => send(state, request).await,
    }
}

fn hidden(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    body.split(&marker)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

async fn log_in_with_token(state: &WebState) -> Vec<String> {
    let page = get(state, "/login?next=/chain", &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = hidden(&page.body, "csrf");
    let done = post_form(
        state,
        "/login",
        &[("token", TOKEN), ("csrf", &csrf), ("next", "/chain")],
        &page.cookies(),
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/chain");
    let session = done
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("opsbot_session="))
        .expect("a session cookie");
    let set_cookie = done
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Lax")
            && set_cookie.contains("Max-Age="),
        "{set_cookie}"
    );
    vec![session]
}

async fn event(
    pool: &PgPool,
    name: &str,
    command: &str,
    args: serde_json::Value,
    outcome: Outcome,
) -> i64 {
    event_with_detail(pool, name, command, args, outcome, "").await
}

async fn event_with_detail(
    pool: &PgPool,
    name: &str,
    command: &str,
    args: serde_json::Value,
    outcome: Outcome,
    detail: &str,
) -> i64 {
    append(
        pool,
        &NewEvent {
            actor_id: 7,
            actor_name: name.into(),
            source: Source::Discord,
            guild_id: None,
            channel_id: None,
            interaction_id: None,
            command: command.into(),
            args,
            outcome,
            detail: detail.to_owned(),
            correlation_id: None,
        },
    )
    .await
    .expect("append")
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn everything_but_health_needs_authentication(pool: PgPool) {
    let state = state(&pool, None);
    for open in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/login",
        "/static/app.js",
        "/static/app.css",
    ] {
        assert_eq!(
            get(&state, open, &[]).await.status,
            StatusCode::OK,
            "{open}"
        );
    }
    for page in [
        "/",
        "/overview",
        "/events/1",
        "/chain",
        "/deploys",
        "/deploys/1",
        "/deploys/matrix",
        "/events/stream",
    ] {
        let answer = get(&state, page, &[]).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{page}");
        assert!(
            answer.location().starts_with("/login?next="),
            "{page}: {}",
            answer.location()
        );
    }
    for api in [
        "/api/audit",
        "/api/audit.csv",
        "/api/audit.jsonl",
        "/api/overview",
    ] {
        let answer = get(&state, api, &[]).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{api}");
        assert!(answer.body.contains("Bearer"), "{}", answer.body);
        let wrong = send(
            &state,
            Request::get(api)
                .header(header::AUTHORIZATION, "Bearer nope")
                .body(Body::empty())
                .expect("req"),
        )
        .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        let right = send(
            &state,
            Request::get(api)
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .expect("req"),
        )
        .await;
        assert_eq!(right.status, StatusCode::OK, "{api}");
    }
    // A path that is no page is a 404 for anyone: it reveals nothing, and a redirect to the
    // login would replace a login form's CSRF cookie whenever a browser asks for a stray asset.
    let missing = get(&state, "/no/such/page", &[]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing.body.contains("is not a page of this dashboard"),
        "{}",
        missing.body
    );
    assert!(!missing.body.contains("Log out"), "nobody is named");
    let missing_api = get(&state, "/api/nothing", &[]).await;
    assert_eq!(missing_api.status, StatusCode::NOT_FOUND);
    // Bearer tokens open pages too (scripts, monitoring).
    let page = send(
        &state,
        Request::get("/")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    // A forged session cookie is not a session.
    let forged = get(
        &state,
        "/",
        &["opsbot_session=eyJuYW1lIjoiZXZlIn0".to_owned()],
    )
    .await;
    assert_eq!(forged.status, StatusCode::SEE_OTHER);
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn tampered_or_foreign_session_cookies_are_no_session(pool: PgPool) {
    let state = state(&pool, None);
    let session = log_in_with_token(&state).await.remove(0);
    assert_eq!(
        get(&state, "/", std::slice::from_ref(&session))
            .await
            .status,
        StatusCode::OK
    );
    let (name, value) = session.split_once('=').expect("name=value");
    let flip = |i: usize| {
        let mut bytes = value.as_bytes().to_vec();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        format!("{name}={}", String::from_utf8_lossy(&bytes))
    };
    // Signed by another deployment's key.
    let mut elsewhere = state.clone();
    elsewhere.dashboard = Arc::new(Dashboard {
        tokens: vec![secrecy::SecretString::from(TOKEN.to_owned())],
        key: Dashboard::key_from(Some("another deployment's session secret, 32+ bytes")),
        session_ttl: Duration::from_secs(3600),
        secure_cookies: false,
        discord: None,
        attempts: Default::default(),
    });
    let foreign = log_in_with_token(&elsewhere).await.remove(0);
    assert_ne!(foreign, session);
    let half = value.len() / 2;
    for (what, cookie) in [
        ("the signature changed", flip(0)),
        ("the payload changed", flip(value.len() - 1)),
        ("cut short", format!("{name}={}", &value[..half])),
        (
            "the payload alone",
            format!("{name}={}", &value[44.min(value.len())..]),
        ),
        ("empty", format!("{name}=")),
        ("signed elsewhere", foreign),
    ] {
        let answer = get(&state, "/", std::slice::from_ref(&cookie)).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{what}: {cookie}");
        assert!(answer.location().starts_with("/login"), "{what}");
        let api = get(&state, "/api/audit", &[cookie]).await;
        assert_eq!(api.status, StatusCode::UNAUTHORIZED, "{what}");
    }
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn token_login_sessions_csrf_and_logout(pool: PgPool) {
    let state = state(&pool, None);
    // Wrong token: back to the login page, audited as denied.
    let page = get(&state, "/login", &[]).await;
    let csrf = hidden(&page.body, "csrf");
    let wrong = post_form(
        &state,
        "/login",
        &[("token", "guess"), ("csrf", &csrf)],
        &page.cookies(),
    )
    .await;
    assert!(
        wrong.location().starts_with("/login?error="),
        "{}",
        wrong.location()
    );
    // No CSRF cookie: refused.
    let no_csrf = post_form(&state, "/login", &[("token", TOKEN), ("csrf", &csrf)], &[]).await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    // An open redirect is not followed.
    let page = get(&state, "/login", &[]).await;
    let csrf = hidden(&page.body, "csrf");
    let elsewhere = post_form(
        &state,
        "/login",
        &[
            ("token", TOKEN),
            ("csrf", &csrf),
            ("next", "//evil.example/"),
        ],
        &page.cookies(),
    )
    .await;
    assert_eq!(elsewhere.location(), "/");

    let session = log_in_with_token(&state).await;
    let home = get(&state, "/", &session).await;
    assert_eq!(home.status, StatusCode::OK);
    let logout_csrf = hidden(&home.body, "csrf");
    assert!(!logout_csrf.is_empty());
    let stale = post_form(&state, "/logout", &[("csrf", "not-it")], &session).await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN);
    let out = post_form(&state, "/logout", &[("csrf", &logout_csrf)], &session).await;
    assert_eq!(out.location(), "/login");
    assert!(out.headers.get_all(header::SET_COOKIE).iter().any(|c| {
        c.to_str()
            .unwrap_or_default()
            .starts_with("opsbot_session=;")
    }));

    // The failed login is counted and sampled: it reaches the trail with the refusal flush.
    state.desk.flush_refusals(true).await.expect("flush");
    let logins: Vec<String> = opsbot_commands::audit::tail(&pool, 10)
        .await
        .expect("tail")
        .into_iter()
        .map(|e| format!("{} {} {}", e.actor_name, e.command, e.outcome))
        .collect();
    assert_eq!(
        logins,
        [
            "token dashboard login ok",
            "token dashboard login ok",
            "unauthenticated 0.0.0.0 dashboard login denied"
        ]
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn pages_escape_what_they_show_and_forbid_inline_scripts(pool: PgPool) {
    let state = state(&pool, None);
    let evil = event_with_detail(
        &pool,
        "<b>mallory</b>",
        "deploy run",
        json!({"service": "<script>alert(1)</script>"}),
        Outcome::Invalid,
        "<script>alert(2)</script> & <img src=x onerror=alert(3)>",
    )
    .await;
    event(&pool, "ana", "whoami", json!({}), Outcome::Ok).await;
    seal_pending(&pool).await.expect("seal");
    let session = log_in_with_token(&state).await;

    let home = get(&state, "/", &session).await;
    assert!(!home.body.contains("<script>alert(1)</script>"));
    assert!(
        home.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
            || home.body.contains("&#60;script&#62;"),
        "escaped args"
    );
    assert!(!home.body.contains("<b>mallory</b>"));
    // The detail column too: what a command said back can hold what the user typed.
    assert!(home.body.contains("alert(2)"), "the detail is shown");
    assert!(!home.body.contains("<script>alert(2)"), "unescaped detail");
    assert!(!home.body.contains("<img src=x"), "unescaped detail");
    let csp = home
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(
        home.headers
            .get("x-frame-options")
            .and_then(|v| v.to_str().ok()),
        Some("DENY")
    );
    assert!(
        !home.body.contains("<script>")
            || home.body.matches("<script").count()
                == home.body.matches("<script src=\"/static/app.js\"").count()
    );

    let page = get(&state, &format!("/events/{evil}"), &session).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("<script>alert"));
    assert!(page.body.contains("alert(2)"), "the detail is shown");
    assert!(!page.body.contains("<img src=x"), "unescaped detail");
    assert!(page.body.contains("position 1"), "sealed: {}", page.body);

    let filtered = get(&state, "/?outcome=invalid", &session).await;
    assert_eq!(filtered.body.matches("data-id=").count(), 1);
    let bad = get(&state, "/?outcome=sideways", &session).await;
    assert!(
        bad.body.contains("id=\"error\""),
        "a bad filter is explained"
    );
    let searched = get(&state, "/?q=alert", &session).await;
    assert_eq!(searched.body.matches("data-id=").count(), 1);

    let chain = get(&state, "/chain", &session).await;
    assert!(
        chain.body.contains("Verified up to event"),
        "{}",
        chain.body
    );
    let missing = get(&state, "/events/999999", &session).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let deploys = get(&state, "/deploys", &session).await;
    assert!(deploys.body.contains("No deploys yet."));
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn older_pages_follow_the_cursor(pool: PgPool) {
    let state = state(&pool, None);
    for _ in 0..5 {
        event(&pool, "ana", "whoami", json!({}), Outcome::Ok).await;
    }
    let session = log_in_with_token(&state).await;
    let first = get(&state, "/?limit=2", &session).await;
    assert_eq!(first.body.matches("data-id=").count(), 2);
    let older = first
        .body
        .split("id=\"older\" href=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("an older link")
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    let second = get(&state, &older, &session).await;
    assert_eq!(second.body.matches("data-id=").count(), 2);
    assert!(
        !second.body.contains("id=\"live\""),
        "older pages are not live: {older}"
    );
}

async fn discord_login(state: &WebState, emulator: &Emulator) -> Answer {
    discord_login_to(state, emulator, "/deploys").await
}

/// The whole Discord login as ana, starting from `/auth/discord?next={next}` (`next` is put
/// in the query as written: percent-encode it yourself).
async fn discord_login_to(state: &WebState, emulator: &Emulator, next: &str) -> Answer {
    let start = get(state, &format!("/auth/discord?next={next}"), &[]).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER);
    let authorize = start.location().to_owned();
    assert!(
        authorize.starts_with(&format!("{}/oauth2/authorize?", emulator.base_url())),
        "{authorize}"
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let consent = http
        .get(&authorize)
        .send()
        .await
        .expect("authorize")
        .text()
        .await
        .expect("page");
    let href = consent
        .split("id=\"as-ana\" href=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("ana's link")
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    let approved = http
        .get(format!("{}{href}", emulator.base_url()))
        .send()
        .await
        .expect("approve");
    let callback = approved.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let path = callback
        .split_once("/auth/discord/callback")
        .map(|(_, rest)| format!("/auth/discord/callback{rest}"))
        .expect("our callback");
    get(state, &path, &start.cookies()).await
}

fn discord_settings(emulator: &Emulator) -> DiscordLogin {
    let (client_id, client_secret) = emulator.oauth_client();
    DiscordLogin {
        client_id,
        client_secret: secrecy::SecretString::from(client_secret),
        api_base: emulator.base_url().to_owned(),
        bot_token: Some(secrecy::SecretString::from(emulator.token().to_owned())),
        guild_ids: vec![emulator.guild_id()],
        redirect_uri: "http://127.0.0.1:9/auth/discord/callback".to_owned(),
    }
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn discord_login_lets_in_members_whose_roles_grant_audit_read(pool: PgPool) {
    let shutdown = CancellationToken::new();
    let emulator = Emulator::start(
        GuildSpec {
            roles: vec!["ops".into(), "dev".into()],
            ..GuildSpec::default()
        },
        shutdown.clone(),
    )
    .await
    .expect("emulator");
    let state = state(&pool, Some(discord_settings(&emulator)));

    emulator.member("ana", Some(&["dev".to_string()]));
    let refused = discord_login(&state, &emulator).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("audit:read"), "{}", refused.body);

    emulator.member("ana", Some(&["ops".to_string()]));
    let done = discord_login(&state, &emulator).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/deploys");
    let session: Vec<String> = done
        .cookies()
        .into_iter()
        .filter(|c| c.starts_with("opsbot_session="))
        .collect();
    let page = get(&state, "/deploys", &session).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<span class=\"who\">ana</span>"));

    // A callback whose state does not match the cookie is refused.
    let forged = get(&state, "/auth/discord/callback?code=abc&state=forged", &[]).await;
    assert!(
        forged.location().starts_with("/login?error="),
        "{}",
        forged.location()
    );

    let logins: Vec<String> = opsbot_commands::audit::tail(&pool, 10)
        .await
        .expect("tail")
        .into_iter()
        .map(|e| format!("{} {} {}", e.actor_name, e.command, e.outcome))
        .collect();
    assert_eq!(
        logins,
        ["ana dashboard login denied", "ana dashboard login ok"]
    );
    shutdown.cancel();
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn the_live_tail_streams_new_events(pool: PgPool) {
    use futures_util::StreamExt as _;
    let state = state(&pool, None);
    let first = event(&pool, "ana", "whoami", json!({}), Outcome::Ok).await;
    // The live tail keeps the page's filters: only denied events come through.
    let request = Request::get(format!("/events/stream?after={first}&outcome=denied"))
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .expect("request");
    let response = router(state.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    // Committed after the page was rendered: it must arrive through the stream, and the
    // event that does not match must not.
    event(&pool, "carol", "whoami", json!({}), Outcome::Ok).await;
    event(
        &pool,
        "bo",
        "deploy run",
        json!({"service": "<b>api</b>"}),
        Outcome::Denied,
    )
    .await;
    let mut stream = response.into_body().into_data_stream();
    let mut received = String::new();
    while !received.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(15), stream.next())
            .await
            .expect("an event in time")
            .expect("the stream stays open")
            .expect("a chunk");
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(received.starts_with("event: events\n"), "{received}");
    let data = received
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("a data line");
    let rows: serde_json::Value = serde_json::from_str(data).expect("JSON rows");
    assert_eq!(
        rows.as_array().map(Vec::len),
        Some(1),
        "only the new event: {rows}"
    );
    assert_eq!(rows[0]["actor"], "bo");
    assert_eq!(rows[0]["outcome"], "denied");
    // Data, not markup: the page's script sets it with textContent.
    assert_eq!(rows[0]["chips"], json!([["service", "<b>api</b>"]]));
    assert_eq!(rows[0]["actor_href"], "/?actor=7");
    assert_eq!(rows[0]["command_href"], "/?command=deploy+run");
}

/// `next` values a crafted login link could carry that must not lead off our origin (or
/// break the redirect): browsers drop tabs and line breaks and read `\` as `/`.
const ELSEWHERE: &[&str] = &[
    "/\t/evil.example",
    "/\n/evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "//evil.example",
    "/\r\nSet-Cookie:x",
    "/%0d%0aSet-Cookie:x",
    "/%09/evil.example",
    "/%2f%2fevil.example",
    "/%5cevil.example",
    "/..//evil.example",
    "https://evil.example",
    "javascript:alert(1)",
    " /chain",
    "/\u{a0}/evil.example",
];

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn no_next_leads_off_our_origin_after_a_token_login(pool: PgPool) {
    let state = state(&pool, None);
    // In the query string, as a crafted link carries it.
    for query in [
        "/%09/evil.example",
        "/%0a/evil.example",
        "/%5Cevil.example",
        "%2F%2Fevil.example",
        "/%0d%0aSet-Cookie:x",
        "/%250d%250aSet-Cookie:x",
        "https://evil.example",
    ] {
        let page = get(&state, &format!("/login?next={query}"), &[]).await;
        assert_eq!(page.status, StatusCode::OK, "{query}");
        assert_eq!(hidden(&page.body, "next"), "/", "{query}");
    }
    // In the form, each with the right token: the login works and lands on `/`.
    for next in ELSEWHERE {
        let page = get(&state, "/login", &[]).await;
        let csrf = hidden(&page.body, "csrf");
        let done = post_form(
            &state,
            "/login",
            &[("token", TOKEN), ("csrf", &csrf), ("next", next)],
            &page.cookies(),
        )
        .await;
        assert_eq!(
            done.status,
            StatusCode::SEE_OTHER,
            "{next:?}: {}",
            done.body
        );
        assert_eq!(done.location(), "/", "{next:?}");
    }
    // A wrong token keeps only a safe `next` in the way back to the form.
    let page = get(&state, "/login", &[]).await;
    let csrf = hidden(&page.body, "csrf");
    let wrong = post_form(
        &state,
        "/login",
        &[
            ("token", "guess"),
            ("csrf", &csrf),
            ("next", "/\t/evil.example"),
        ],
        &page.cookies(),
    )
    .await;
    assert_eq!(wrong.location(), "/login?error=wrong-token&next=%2F");
    // Ordinary paths still work, query and all.
    let page = get(&state, "/login", &[]).await;
    let csrf = hidden(&page.body, "csrf");
    let done = post_form(
        &state,
        "/login",
        &[
            ("token", TOKEN),
            ("csrf", &csrf),
            ("next", "/?outcome=denied&q=a%20b"),
        ],
        &page.cookies(),
    )
    .await;
    assert_eq!(done.location(), "/?outcome=denied&q=a%20b");
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn no_next_leads_off_our_origin_after_a_discord_login(pool: PgPool) {
    let shutdown = CancellationToken::new();
    let emulator = Emulator::start(
        GuildSpec {
            roles: vec!["ops".into()],
            ..GuildSpec::default()
        },
        shutdown.clone(),
    )
    .await
    .expect("emulator");
    let state = state(&pool, Some(discord_settings(&emulator)));
    emulator.member("ana", Some(&["ops".to_string()]));
    for next in [
        "/%09/evil.example",
        "/%5Cevil.example",
        "/%0d%0aSet-Cookie:x",
        "https://evil.example",
    ] {
        let done = discord_login_to(&state, &emulator, next).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{next}: {}", done.body);
        assert_eq!(done.location(), "/", "{next}");
    }
    let done = discord_login_to(&state, &emulator, "/chain").await;
    assert_eq!(done.location(), "/chain");
    shutdown.cancel();
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn the_login_page_shows_only_its_own_error_messages(pool: PgPool) {
    let state = state(&pool, None);
    let crafted = get(
        &state,
        "/login?error=Your+account+is+locked.+Call+%2B1+555+0100",
        &[],
    )
    .await;
    assert_eq!(crafted.status, StatusCode::OK);
    assert!(!crafted.body.contains("Call"), "{}", crafted.body);
    assert!(!crafted.body.contains("id=\"error\""), "{}", crafted.body);
    let known = get(&state, "/login?error=wrong-token", &[]).await;
    assert!(
        known.body.contains("That dashboard token is not right."),
        "{}",
        known.body
    );
}

/// Wrong tokens from `from` until it is refused; returns the 429.
async fn fail_logins_until_refused(state: &WebState, from: SocketAddr) -> Answer {
    let page = get(state, "/login", &[]).await;
    let csrf = hidden(&page.body, "csrf");
    for attempt in 1..=10 {
        let wrong = post_form_from(
            state,
            "/login",
            &[("token", &format!("guess-{attempt}")), ("csrf", &csrf)],
            &page.cookies(),
            Some(from),
        )
        .await;
        assert_eq!(wrong.status, StatusCode::SEE_OTHER, "attempt {attempt}");
        assert!(wrong.location().starts_with("/login?error=wrong-token"));
    }
    // Even the right token is not looked at now.
    post_form_from(
        state,
        "/login",
        &[("token", TOKEN), ("csrf", &csrf)],
        &page.cookies(),
        Some(from),
    )
    .await
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn failed_logins_are_sampled_counted_and_rate_limited(pool: PgPool) {
    let state = state(&pool, None);
    let guesser: SocketAddr = "198.51.100.7:40000".parse().expect("address");
    let refused = fail_logins_until_refused(&state, guesser).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    let retry_after: u64 = refused
        .headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=300).contains(&retry_after), "{retry_after}");
    assert!(
        refused
            .body
            .contains("Too many failed logins from your address"),
        "{}",
        refused.body
    );
    assert!(
        refused
            .cookies()
            .iter()
            .all(|c| !c.starts_with("opsbot_session="))
    );
    // Bearer tokens from there are refused too (they would be the way around the limit).
    let bearer = send_from(
        &state,
        Request::get("/api/audit")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .expect("req"),
        guesser,
    )
    .await;
    assert_eq!(bearer.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(bearer.headers.contains_key(header::RETRY_AFTER));
    // Another address logs in as usual (and that login is audited).
    let page = get(&state, "/login", &[]).await;
    let csrf = hidden(&page.body, "csrf");
    let other: SocketAddr = "203.0.113.9:50000".parse().expect("address");
    let done = post_form_from(
        &state,
        "/login",
        &[("token", TOKEN), ("csrf", &csrf)],
        &page.cookies(),
        Some(other),
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location(), "/");

    // Counted in /metrics.
    let metrics = get(&state, "/metrics", &[]).await;
    assert!(
        metrics
            .body
            .lines()
            .any(|l| l
                .starts_with("opsbot_unauthenticated_refusals_total{door=\"dashboard login\"}")),
        "{}",
        metrics.body
    );
    // Not one row per failure: nothing until the flush, then one event with the count.
    let before: Vec<String> = opsbot_commands::audit::tail(&pool, 50)
        .await
        .expect("tail")
        .into_iter()
        .map(|e| format!("{} {}", e.actor_name, e.outcome))
        .collect();
    assert_eq!(before, ["token ok"]);
    assert_eq!(state.desk.flush_refusals(true).await.expect("flush"), 1);
    let events = opsbot_commands::audit::tail(&pool, 50).await.expect("tail");
    assert_eq!(events.len(), 2);
    let sampled = &events[1];
    assert_eq!(sampled.actor_name, "unauthenticated 198.51.100.7");
    assert_eq!(sampled.command, "dashboard login");
    assert_eq!(sampled.outcome, "denied");
    // 10 wrong tokens, the refused form and the refused bearer token.
    assert_eq!(sampled.args["count"], 12, "{:?}", sampled.args);
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn forged_discord_callbacks_are_sampled_and_rate_limited(pool: PgPool) {
    let discord = DiscordLogin {
        client_id: "1".to_owned(),
        client_secret: secrecy::SecretString::from("unused".to_owned()),
        // Never reached: every callback here is refused before Discord is asked.
        api_base: "http://127.0.0.1:9".to_owned(),
        bot_token: None,
        guild_ids: vec![1],
        redirect_uri: "http://127.0.0.1:9/auth/discord/callback".to_owned(),
    };
    let state = state(&pool, Some(discord));
    let from: SocketAddr = "192.0.2.44:1000".parse().expect("address");
    let callback = |from| {
        let state = state.clone();
        async move {
            send_from(
                &state,
                Request::get("/auth/discord/callback?code=abc&state=forged")
                    .body(Body::empty())
                    .expect("req"),
                from,
            )
            .await
        }
    };
    for attempt in 1..=10 {
        let forged = callback(from).await;
        assert!(
            forged.location().starts_with("/login?error="),
            "attempt {attempt}: {}",
            forged.location()
        );
    }
    let refused = callback(from).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers.contains_key(header::RETRY_AFTER));
    assert!(
        opsbot_commands::audit::tail(&pool, 50)
            .await
            .expect("tail")
            .is_empty()
    );
    state.desk.flush_refusals(true).await.expect("flush");
    let events = opsbot_commands::audit::tail(&pool, 50).await.expect("tail");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor_name, "unauthenticated 192.0.2.44");
    assert_eq!(events[0].args["count"], 11);
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn logout_ends_the_session_on_the_server(pool: PgPool) {
    let state = state(&pool, None);
    let session = log_in_with_token(&state).await;
    let home = get(&state, "/", &session).await;
    assert_eq!(home.status, StatusCode::OK);
    let csrf = hidden(&home.body, "csrf");
    let out = post_form(&state, "/logout", &[("csrf", &csrf)], &session).await;
    assert_eq!(out.location(), "/login");
    // The same cookie, kept (copied, stolen), opens nothing any more.
    let again = get(&state, "/", &session).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert!(again.location().starts_with("/login?next="));
    let api = get(&state, "/api/audit", &session).await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
    // The server keeps a fingerprint of the token, never the token.
    let (how, matches, text): (String, bool, String) = sqlx::query_as(
        "SELECT how, token_fingerprint = sha256(convert_to($1, 'UTF8')), row_to_json(s)::text \
         FROM dashboard_sessions s",
    )
    .bind(TOKEN)
    .fetch_one(&pool)
    .await
    .expect("one session row");
    assert_eq!(how, "token");
    assert!(matches);
    assert!(!text.contains(TOKEN), "{text}");
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn a_session_ends_when_its_token_is_no_longer_configured(pool: PgPool) {
    let before = state(&pool, None);
    let session = log_in_with_token(&before).await;
    assert_eq!(get(&before, "/", &session).await.status, StatusCode::OK);
    // The token is rotated: the config now holds another one (same signing key).
    let rotated = |tokens: &[&str]| {
        let mut state = before.clone();
        let mut dashboard = (*state.dashboard).clone();
        dashboard.tokens = tokens
            .iter()
            .map(|t| secrecy::SecretString::from((*t).to_owned()))
            .collect();
        state.dashboard = Arc::new(dashboard);
        state
    };
    let still = rotated(&["another-dashboard-token-of-32-bytes-or-more", TOKEN]);
    assert_eq!(get(&still, "/", &session).await.status, StatusCode::OK);
    let removed = rotated(&["another-dashboard-token-of-32-bytes-or-more"]);
    let refused = get(&removed, "/", &session).await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    assert!(
        refused.cookies().iter().any(|c| c == "opsbot_session="),
        "the dead cookie is cleared: {:?}",
        refused.cookies()
    );
    assert_eq!(
        get(&removed, "/api/audit", &session).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn a_session_the_database_cannot_check_is_a_503(pool: PgPool) {
    let state = state(&pool, None);
    let session = log_in_with_token(&state).await;
    let logout_csrf = hidden(&get(&state, "/", &session).await.body, "csrf");
    let login_page = get(&state, "/login", &[]).await;
    pool.close().await;
    let page = get(&state, "/", &session).await;
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.body
    );
    let api = get(&state, "/api/audit", &session).await;
    assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        api.body.contains("the database is not answering"),
        "{}",
        api.body
    );
    // Nor can a login be recorded, or a logout end the session on the server.
    let login = post_form(
        &state,
        "/login",
        &[
            ("token", TOKEN),
            ("csrf", &hidden(&login_page.body, "csrf")),
        ],
        &login_page.cookies(),
    )
    .await;
    assert_eq!(
        login.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        login.body
    );
    assert!(
        login
            .cookies()
            .iter()
            .all(|c| !c.starts_with("opsbot_session="))
    );
    let logout = post_form(&state, "/logout", &[("csrf", &logout_csrf)], &session).await;
    assert_eq!(logout.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        logout.body.contains("could not end it on the server"),
        "{}",
        logout.body
    );
}

/// Every dashboard route, as a member whose roles no longer grant what it needs (the config
/// changed after the login): refused with 403 and a `denied` event naming the permission,
/// the same check and record as `/audit recent` and `/audit verify` on Discord.
#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn every_route_refuses_and_audits_a_member_without_the_permission(pool: PgPool) {
    let shutdown = CancellationToken::new();
    let emulator = Emulator::start(
        GuildSpec {
            roles: vec!["ops".into()],
            ..GuildSpec::default()
        },
        shutdown.clone(),
    )
    .await
    .expect("emulator");
    let before = state(&pool, Some(discord_settings(&emulator)));
    emulator.member("ana", Some(&["ops".to_string()]));
    let login = discord_login(&before, &emulator).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.body);
    let session: Vec<String> = login
        .cookies()
        .into_iter()
        .filter(|c| c.starts_with("opsbot_session="))
        .collect();
    let seeded = event(&pool, "bo", "whoami", json!({}), Outcome::Ok).await;

    // With `audit:read`: every page but the chain check, which needs `audit:verify`.
    for (uri, status) in [
        ("/".to_owned(), StatusCode::OK),
        ("/overview".to_owned(), StatusCode::OK),
        ("/api/overview".to_owned(), StatusCode::OK),
        ("/deploys".to_owned(), StatusCode::OK),
        ("/deploys/matrix".to_owned(), StatusCode::OK),
        (format!("/events/{seeded}"), StatusCode::OK),
        ("/api/audit".to_owned(), StatusCode::OK),
        ("/api/audit.csv".to_owned(), StatusCode::OK),
        ("/chain".to_owned(), StatusCode::FORBIDDEN),
    ] {
        assert_eq!(get(&before, &uri, &session).await.status, status, "{uri}");
    }

    // The same session once `ops` grants nothing the dashboard needs.
    let mut after = state(&pool, None);
    after.desk = Desk::new(
        pool.clone(),
        RoleMap::new(
            [("ops".to_owned(), vec!["deploy:staging".to_owned()])]
                .into_iter()
                .collect(),
        )
        .expect("roles"),
    );
    let routes = [
        "/".to_owned(),
        "/overview".to_owned(),
        "/api/overview".to_owned(),
        format!("/events/{seeded}"),
        "/events/stream".to_owned(),
        "/chain".to_owned(),
        "/deploys".to_owned(),
        "/deploys/1".to_owned(),
        "/deploys/matrix".to_owned(),
        "/api/audit".to_owned(),
        "/api/audit.csv".to_owned(),
        "/api/audit.jsonl".to_owned(),
        "/api/audit?limit=zero".to_owned(),
    ];
    for uri in &routes {
        let answer = get(&after, uri, &session).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{uri}: {}",
            answer.body
        );
        let permission = if uri == "/chain" {
            "audit:verify"
        } else {
            "audit:read"
        };
        assert!(answer.body.contains(permission), "{uri}: {}", answer.body);
    }
    let denied: Vec<(String, String, serde_json::Value, String)> = sqlx::query_as(
        "SELECT source, command, args, detail FROM audit_events \
         WHERE actor_name = 'ana' AND outcome = 'denied' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("denials");
    let summary: Vec<String> = denied
        .iter()
        .map(|(source, command, args, detail)| format!("{source} {command} {args}: {detail}"))
        .collect();
    insta::assert_snapshot!(summary.join("\n"), @r#"
    web audit verify {"page":"/chain"}: you need the `audit:verify` permission to verify the audit chain
    web dashboard {"page":"/"}: you need the `audit:read` permission to read the audit log
    web dashboard {"page":"/overview"}: you need the `audit:read` permission to read the audit log
    web overview api {}: you need the `audit:read` permission to read the audit log
    web dashboard {"page":"event"}: you need the `audit:read` permission to read the audit log
    web dashboard {"page":"live tail"}: you need the `audit:read` permission to read the audit log
    web audit verify {"page":"/chain"}: you need the `audit:verify` permission to verify the audit chain
    web dashboard {"page":"/deploys"}: you need the `audit:read` permission to read the audit log
    web dashboard {"page":"deploy"}: you need the `audit:read` permission to read the audit log
    web dashboard {"page":"/deploys/matrix"}: you need the `audit:read` permission to read the audit log
    web audit api {}: you need the `audit:read` permission to read the audit log
    web audit export csv {}: you need the `audit:read` permission to read the audit log
    web audit export jsonl {}: you need the `audit:read` permission to read the audit log
    web audit api {"limit":"zero"}: you need the `audit:read` permission to read the audit log
    "#);
    shutdown.cancel();
}
