//! The overview through the router: `/overview` (keys, SVG charts with titles beside tables
//! of their numbers) and `GET /api/overview` (the same figures as JSON, audited), on a
//! history of deploys and incidents placed relative to now.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Utc};
use opsbot::web::auth::Dashboard;
use opsbot::web::{WebState, router};
use opsbot_commands::Desk;
use opsbot_commands::access::RoleMap;
use serde_json::Value;
use sqlx::PgPool;
use tower::ServiceExt as _;

const TOKEN: &str = "overview-dashboard-token-of-at-least-32-bytes";

fn state(pool: &PgPool) -> WebState {
    WebState {
        metrics: opsbot::telemetry::metrics(),
        desk: Desk::new(pool.clone(), RoleMap::default()),
        dashboard: Arc::new(Dashboard {
            tokens: vec![secrecy::SecretString::from(TOKEN.to_owned())],
            key: Dashboard::key_from(Some("a session secret for the overview tests, 32+")),
            session_ttl: Duration::from_secs(3600),
            secure_cookies: false,
            discord: None,
            attempts: Default::default(),
        }),
    }
}

async fn get(state: &WebState, uri: &str, token: bool) -> (StatusCode, String, String) {
    let mut request = Request::get(uri);
    if token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
    }
    let response = router(state.clone())
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn hours_ago(hours: i64) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::hours(hours)
}

async fn deploy(pool: &PgPool, service: &str, state: &str, requested: DateTime<Utc>, minutes: i64) {
    sqlx::query(
        "INSERT INTO deploys (correlation_id, service, environment, version, state,
                              requested_by_id, requested_by_name, requested_at, finished_at, backend)
         VALUES (gen_random_uuid(), $1, 'production', 'v1', $2, 7, 'ana', $3, $4, 'command')",
    )
    .bind(service)
    .bind(state)
    .bind(requested)
    .bind(requested + chrono::Duration::minutes(minutes))
    .execute(pool)
    .await
    .expect("deploy");
}

async fn history(pool: &PgPool) {
    // Two days ago and yesterday: api succeeds in 10 and 30 minutes, then fails.
    deploy(pool, "api", "succeeded", hours_ago(50), 10).await;
    deploy(pool, "api", "succeeded", hours_ago(26), 30).await;
    deploy(pool, "api", "failed", hours_ago(25), 5).await;
    sqlx::query(
        "INSERT INTO incidents (correlation_id, title, slug, severity, status, services,
                                declared_by_id, declared_by_name, started_at)
         VALUES (gen_random_uuid(), '<b>API</b> slow', 'api-slow', 'sev2', 'investigating', '{api}', 7, 'ana', $1)",
    )
    .bind(hours_ago(3))
    .execute(pool)
    .await
    .expect("incident");
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn the_overview_page_shows_the_keys_charts_and_their_numbers(pool: PgPool) {
    history(&pool).await;
    let state = state(&pool);
    let (status, _, body) = get(&state, "/overview?window=7", true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Overview comes first in the navigation.
    let nav = body.split("<nav>").nth(1).expect("nav");
    assert!(
        nav.trim_start().starts_with(
            "<a class=\"brand\" href=\"/\">opsbot</a>\n    <a href=\"/overview\">Overview</a>"
        ),
        "{nav}"
    );
    for expected in [
        "Deployment frequency",
        "Lead time for changes",
        "Change failure rate",
        "Time to restore",
        // Two succeeded of three changes over 7 days; one of three failed.
        "0.29/day",
        "33.3%",
        "20 min",
        "<svg viewBox=",
        "<title id=\"deploys-chart-title\">Deploys per day by outcome</title>",
        "<title id=\"refusals-chart-title\">Denials and freeze overrides per day</title>",
        "id=\"deploys-per-day\"",
        "id=\"refusals-per-day\"",
        "aria-current=\"page\">7 days</a>",
        "1 open incident",
        "&#60;b&#62;API&#60;/b&#62; slow",
    ] {
        assert!(body.contains(expected), "{expected} missing:\n{body}");
    }
    // Each bar says what it is; the numbers table has a row per day.
    assert!(body.contains("<rect class=\"bar bar-failed\""), "{body}");
    let table = body
        .split("id=\"deploys-per-day\"")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .expect("table");
    assert_eq!(table.matches("<tr><td>").count(), 7, "{table}");
    assert!(!body.contains("<script>"), "no inline script");
    assert!(
        !body.contains("style="),
        "no inline style (CSP: style-src 'self')"
    );

    let (status, _, body) = get(&state, "/overview?window=abc", true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("window: `abc` is not a window; one of 7, 30, 90 (days)"),
        "{body}"
    );
    assert!(
        body.contains("<nav>"),
        "the error is a page of the dashboard"
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn the_api_answers_the_same_figures_as_json_and_audits_each_read(pool: PgPool) {
    history(&pool).await;
    let state = state(&pool);
    let (status, content_type, body) = get(&state, "/api/overview", false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(content_type.starts_with("application/json"));

    let (status, content_type, body) = get(&state, "/api/overview?window=7", true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(content_type.starts_with("application/json"));
    let json: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["window_days"], 7);
    assert_eq!(json["overall"]["changes"], 3);
    assert_eq!(json["overall"]["failed_changes"], 1);
    assert_eq!(json["overall"]["deployment_frequency"]["current"], 0.286);
    assert_eq!(json["overall"]["lead_time_secs"]["current"], 1200.0);
    assert_eq!(json["overall"]["change_failure_rate"]["current"], 0.333);
    assert_eq!(json["overall"]["change_failure_rate"]["trend"], "unknown");
    assert_eq!(json["services"][0]["service"], "api");
    assert_eq!(json["deploys_per_day"].as_array().map(Vec::len), Some(7));
    assert_eq!(json["open_incidents"][0]["title"], "<b>API</b> slow");
    assert_eq!(json["firing_alerts"], 0);
    assert_eq!(json["change_failure_window_secs"], 3600);
    let keys: Vec<&str> = json
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    insta::assert_snapshot!(keys.join(" "), @"change_failure_window_secs deploys_per_day environment firing_alerts from open_incidents overall previous_from refusals_per_day services until window_days");

    let (status, _, body) = get(&state, "/api/overview?window=14", true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let json: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["parameter"], "window");
    let (status, _, body) = get(&state, "/api/overview?environment=prod", true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("no environment is configured"), "{body}");

    let recorded: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT command, outcome, detail FROM audit_events WHERE command = 'overview api' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("events");
    let lines: Vec<String> = recorded
        .iter()
        .map(|(c, o, d)| format!("{c} {o}: {d}"))
        .collect();
    insta::assert_snapshot!(lines.join("\n"), @r"
    overview api ok: 7 days: 3 changes, 1 services
    overview api invalid: window: `14` is not a window; one of 7, 30, 90 (days)
    overview api invalid: environment: `prod` is not an environment; no environment is configured
    ");
}
