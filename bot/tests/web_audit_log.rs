//! The audit log page through the router: pickers of the known values, the match count, the
//! way back from older pages, links from every reference, chips and folded details, the
//! story marking the event shown.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use opsbot::web::auth::Dashboard;
use opsbot::web::{WebState, router};
use opsbot_commands::access::RoleMap;
use opsbot_commands::audit::{NewEvent, Outcome, append};
use opsbot_commands::{Desk, Source};
use serde_json::json;
use sqlx::PgPool;
use tower::ServiceExt as _;

const TOKEN: &str = "audit-log-dashboard-token-of-at-least-32-bytes";

fn state(pool: &PgPool) -> WebState {
    WebState {
        metrics: opsbot::telemetry::metrics(),
        desk: Desk::new(pool.clone(), RoleMap::default()),
        dashboard: Arc::new(Dashboard {
            tokens: vec![secrecy::SecretString::from(TOKEN.to_owned())],
            key: Dashboard::key_from(Some("a session secret for the audit log tests, 32+")),
            session_ttl: Duration::from_secs(3600),
            secure_cookies: false,
            discord: None,
            attempts: Default::default(),
        }),
    }
}

async fn get(state: &WebState, uri: &str) -> (StatusCode, String) {
    let response = router(state.clone())
        .oneshot(
            Request::get(uri)
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    let status = response.status();
    let body = to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

struct Seed<'a> {
    actor: &'a str,
    command: &'a str,
    args: serde_json::Value,
    outcome: Outcome,
    detail: &'a str,
    correlation: Option<uuid::Uuid>,
}

async fn event(pool: &PgPool, s: Seed<'_>) -> i64 {
    append(
        pool,
        &NewEvent {
            actor_id: 42,
            actor_name: s.actor.into(),
            source: Source::Discord,
            guild_id: Some(100),
            channel_id: Some(200),
            interaction_id: None,
            command: s.command.into(),
            args: s.args,
            outcome: s.outcome,
            detail: s.detail.into(),
            correlation_id: s.correlation,
        },
    )
    .await
    .expect("append")
}

fn simple(command: &str, outcome: Outcome) -> Seed<'_> {
    Seed {
        actor: "ana",
        command,
        args: json!({}),
        outcome,
        detail: "",
        correlation: None,
    }
}

/// The `<option>`s of the `<select name=NAME>`, selected ones marked `*`.
fn options(body: &str, name: &str) -> Vec<String> {
    let select = body
        .split(&format!("<select name=\"{name}\">"))
        .nth(1)
        .and_then(|s| s.split("</select>").next())
        .unwrap_or_default();
    select
        .split("<option value=\"")
        .skip(1)
        .map(|o| {
            let value = o.split('"').next().unwrap_or_default();
            if o.contains(" selected>") {
                format!("{value}*")
            } else {
                value.to_owned()
            }
        })
        .collect()
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn the_filters_are_pickers_of_the_known_values(pool: PgPool) {
    event(&pool, simple("deploy run", Outcome::Ok)).await;
    event(&pool, simple("deploy lock", Outcome::Denied)).await;
    event(&pool, simple("whoami", Outcome::Ok)).await;
    let state = state(&pool);
    let (status, body) = get(&state, "/?command=deploy&outcome=denied").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        options(&body, "command"),
        ["", "deploy*", "deploy lock", "deploy run", "whoami"]
    );
    assert!(body.contains(">deploy (all)</option>"), "{body}");
    assert_eq!(
        options(&body, "outcome"),
        [
            "",
            "ok",
            "denied*",
            "invalid",
            "conflict",
            "refused",
            "error",
            "requested",
            "approved",
            "started",
            "succeeded",
            "failed",
            "rejected",
            "expired",
            "cancelled"
        ]
    );
    assert_eq!(
        options(&body, "source"),
        ["", "discord", "shell", "web", "scheduler", "webhook"]
    );
    assert!(
        body.contains("<p class=\"count\" id=\"count\">1 event matches</p>"),
        "{body}"
    );
    // Quick ranges keep the other filters and set since.
    assert!(body.contains("last 24 h</a>"), "{body}");
    let quick = body
        .split("class=\"quick\"")
        .nth(1)
        .and_then(|q| q.split("</span>").next())
        .expect("quick ranges");
    assert_eq!(
        quick
            .matches("command=deploy&#38;outcome=denied&#38;since=")
            .count(),
        4,
        "{quick}"
    );
    // The live tail keeps the filters.
    assert!(
        body.contains("data-filters=\"command=deploy&#38;outcome=denied\""),
        "{body}"
    );
    // A date alone is a time.
    let (status, body) = get(&state, "/?since=2026-01-01").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("3 events match"), "{body}");
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn the_count_is_exact_up_to_ten_thousand(pool: PgPool) {
    sqlx::query(
        "INSERT INTO audit_events (actor_id, actor_name, source, command, outcome)
         SELECT 1, 'bulk', 'discord', 'whoami', 'ok' FROM generate_series(1, 10001)",
    )
    .execute(&pool)
    .await
    .expect("bulk");
    let state = state(&pool);
    let (_, body) = get(&state, "/").await;
    assert!(body.contains("10,000+ events match"), "{body}");
    let (_, body) = get(&state, "/?actor=nobody").await;
    assert!(body.contains("0 events match"), "{body}");
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn older_pages_say_so_and_link_back_to_newer_ones(pool: PgPool) {
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(event(&pool, simple("whoami", Outcome::Ok)).await);
    }
    let state = state(&pool);
    let (_, first) = get(&state, "/?limit=2").await;
    assert!(first.contains("<h1>Audit log</h1>"), "{first}");
    assert!(!first.contains("id=\"newer\""));
    assert!(first.contains("id=\"live\""), "the first page is live");
    // Page 2 (ids[2], ids[1]): its newer page is the first page.
    let (_, second) = get(&state, &format!("/?limit=2&cursor={}", ids[3])).await;
    assert!(
        second.contains("<h1>Audit log: older events</h1>"),
        "{second}"
    );
    assert!(
        second.contains("<a id=\"newer\" href=\"/?limit=2\">"),
        "{second}"
    );
    assert!(!second.contains("id=\"live\""), "an older page is not live");
    // Page 3 (ids[0]): its newer page is page 2.
    let (_, third) = get(&state, &format!("/?limit=2&cursor={}", ids[1])).await;
    let expected = format!("<a id=\"newer\" href=\"/?limit=2&#38;cursor={}\">", ids[3]);
    assert!(third.contains(&expected), "{expected}:\n{third}");
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn every_reference_is_a_link_and_arguments_are_chips(pool: PgPool) {
    let correlation = uuid::Uuid::new_v4();
    let deploy: i64 = sqlx::query_scalar(
        "INSERT INTO deploys (correlation_id, service, environment, version, state,
                              requested_by_id, requested_by_name, backend)
         VALUES ($1, 'api', 'production', 'v1', 'succeeded', 42, 'ana', 'command') RETURNING id",
    )
    .bind(correlation)
    .fetch_one(&pool)
    .await
    .expect("deploy");
    let requested = event(
        &pool,
        Seed {
            actor: "ana",
            command: "deploy run",
            args: json!({"service": "api", "override": true}),
            outcome: Outcome::Requested,
            detail: "first line\nsecond line",
            correlation: Some(correlation),
        },
    )
    .await;
    event(
        &pool,
        Seed {
            correlation: Some(correlation),
            ..simple("deploy run", Outcome::Succeeded)
        },
    )
    .await;
    let state = state(&pool);
    let (_, body) = get(&state, "/").await;
    for expected in [
        "<a class=\"actor\" href=\"/?actor=42\">ana</a>",
        "<a href=\"/?command=deploy+run\"><code>deploy run</code></a>",
        &format!("<a class=\"ref\" href=\"/deploys/{deploy}\">deploy #{deploy}</a>"),
        "<a class=\"ref\" href=\"https://discord.com/channels/100/200\" rel=\"noreferrer\">channel</a>",
        "<span class=\"chip\"><b>override:</b> true</span><span class=\"chip\"><b>service:</b> api</span>",
        "<details class=\"detail\"><summary>first line</summary>first line\nsecond line</details>",
        "<time datetime=\"",
    ] {
        assert!(body.contains(expected), "{expected} missing:\n{body}");
    }
    assert!(!body.contains("{&quot;service"), "no raw JSON: {body}");
    // The event's page: the story marks it.
    let (status, page) = get(&state, &format!("/events/{requested}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains(&format!(
            "<tr data-id=\"{requested}\" class=\"current\" aria-current=\"true\">"
        )),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "<a href=\"/deploys/{deploy}\">deploy #{deploy}</a>"
        )),
        "{page}"
    );
}
