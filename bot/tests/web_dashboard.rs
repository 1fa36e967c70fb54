//! The dashboard through its router: authentication (tokens, sessions, CSRF, Discord OAuth2
//! against the emulator), escaping, security headers and every page.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
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

const TOKEN: &str = "dashboard-secret-token";

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
        pool: pool.clone(),
        metrics: opsbot::telemetry::metrics(),
        desk: Desk::new(pool.clone(), roles),
        dashboard: Arc::new(Dashboard {
            tokens: vec![secrecy::SecretString::from(TOKEN.to_owned())],
            key: Dashboard::key_from(Some("a session secret for tests")),
            session_ttl: Duration::from_secs(3600),
            secure_cookies: false,
            discord,
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
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut request =
        Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if !cookies.is_empty() {
        request = request.header(header::COOKIE, cookies.join("; "));
    }
    send(state, request.body(Body::from(body)).expect("request")).await
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
            detail: String::new(),
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
        "/events/1",
        "/chain",
        "/deploys",
        "/deploys/1",
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
    for api in ["/api/audit", "/api/audit.csv", "/api/audit.jsonl"] {
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

    let logins: Vec<String> = opsbot_commands::audit::tail(&pool, 10)
        .await
        .expect("tail")
        .into_iter()
        .map(|e| format!("{} {} {}", e.actor_name, e.command, e.outcome))
        .collect();
    assert_eq!(
        logins,
        [
            "anonymous dashboard login denied",
            "token dashboard login ok",
            "token dashboard login ok"
        ]
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn pages_escape_what_they_show_and_forbid_inline_scripts(pool: PgPool) {
    let state = state(&pool, None);
    let evil = event(
        &pool,
        "<b>mallory</b>",
        "deploy run",
        json!({"service": "<script>alert(1)</script>"}),
        Outcome::Invalid,
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
    let start = get(state, "/auth/discord?next=/deploys", &[]).await;
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
    let request = Request::get(format!("/events/stream?after={first}"))
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
    // Committed after the page was rendered: it must arrive through the stream.
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
    assert_eq!(rows[0]["args"], r#"{"service":"<b>api</b>"}"#);
}
