//! The dashboard's `/alerts` through the router: real Alertmanager captures delivered to
//! `/webhooks/alertmanager`, then the page read with a dashboard token: groups newest first
//! with their alerts, who acked and silenced, the correlated deploy's link, and the status,
//! service and severity filters (bad values refused, unknown ones matching nothing).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use opsbot::web::auth::Dashboard;
use opsbot::web::{WebState, router};
use opsbot_commands::Desk;
use opsbot_commands::access::RoleMap;
use opsbot_commands::alerts::{AlertsCatalog, Mode, Route};
use sqlx::PgPool;
use tower::ServiceExt as _;

const TOKEN: &str = "dashboard-secret-token-of-at-least-32-bytes";
const HOOK: &str = "alertmanager-webhook-token";

fn state(pool: &PgPool) -> WebState {
    let roles = RoleMap::new(
        [("ops".to_owned(), vec!["audit:read".to_owned()])]
            .into_iter()
            .collect(),
    )
    .expect("roles");
    let desk = Desk::new(pool.clone(), roles).with_alerts(AlertsCatalog {
        webhook_token: Some(HOOK.to_owned().into()),
        routes: vec![Route {
            matchers: vec![],
            channel: 333,
            mode: Mode::Immediate,
            mention: vec![],
            send_resolved: true,
        }],
        ..AlertsCatalog::default()
    });
    WebState {
        metrics: opsbot::telemetry::metrics(),
        desk,
        dashboard: Arc::new(Dashboard {
            tokens: vec![secrecy::SecretString::from(TOKEN.to_owned())],
            key: Dashboard::key_from(Some("a session secret for the router tests, 32+ bytes")),
            session_ttl: Duration::from_secs(3600),
            secure_cookies: false,
            discord: None,
            attempts: Default::default(),
        }),
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let candidates = [
        format!(
            "{}/../../shared/fixtures/alertmanager/{name}",
            env!("CARGO_MANIFEST_DIR")
        ),
        format!("/work/shared/fixtures/alertmanager/{name}"),
    ];
    candidates
        .iter()
        .find_map(|path| std::fs::read(path).ok())
        .unwrap_or_else(|| panic!("fixture {name} not found; looked at {candidates:?}"))
}

async fn send(state: &WebState, request: Request<Body>) -> (StatusCode, String) {
    let response = router(state.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let body = to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn deliver(state: &WebState, body: Vec<u8>) {
    let request = Request::post("/webhooks/alertmanager")
        .header(header::AUTHORIZATION, format!("Bearer {HOOK}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("request");
    let (status, body) = send(state, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn page(state: &WebState, uri: &str) -> (StatusCode, String) {
    let request = Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .expect("request");
    send(state, request).await
}

/// The `<tr class="group"…>` rows' alert names, in page order.
fn group_names(body: &str) -> Vec<String> {
    body.split("<tr class=\"group\"")
        .skip(1)
        .filter_map(|row| {
            let start = row.find("<strong>")? + "<strong>".len();
            let end = row[start..].find("</strong>")?;
            Some(row[start..start + end].to_owned())
        })
        .collect()
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn the_alerts_page_lists_groups_with_acks_silences_deploys_and_filters(pool: PgPool) {
    let state = state(&pool);
    // Nothing yet.
    let (status, body) = page(&state, "/alerts").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("No alert groups."), "{body}");
    assert!(body.contains("href=\"/alerts\""), "the nav links the page");

    deliver(&state, fixture("02-firing-2x-HighErrorRate.json")).await;
    deliver(&state, fixture("03-firing-1x-AlwaysFiring.json")).await;
    let ids: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, common_labels->>'alertname' FROM alert_groups ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("groups");
    assert_eq!(ids.len(), 2, "{ids:?}");
    let (errors, always) = (ids[0].0, ids[1].0);
    // The older group was acked and silenced from Discord, and follows a deploy of api.
    let deploy: i64 = sqlx::query_scalar(
        "INSERT INTO deploys (correlation_id, service, environment, version, state, requested_by_id, requested_by_name, backend, started_at)
         VALUES (gen_random_uuid(), 'api', 'production', 'v2.4.1', 'succeeded', 7, 'alice', 'shell', now()) RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .expect("deploy");
    sqlx::query(
        "UPDATE alert_groups SET acked_by_id = 8, acked_by_name = 'bob', acked_at = now(),
             silence_id = 'abc', silenced_by_id = 9, silenced_by_name = 'carol', silenced_until = NULL,
             correlated_deploy_id = $2, first_seen_at = now() - interval '5 minutes'
         WHERE id = $1",
    )
    .bind(errors)
    .bind(deploy)
    .execute(&pool)
    .await
    .expect("ack");

    let (status, body) = page(&state, "/alerts").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Newest first, each group with its alerts (each alert's own labels and summary).
    assert_eq!(
        group_names(&body),
        ["AlwaysFiring", "HighErrorRate"],
        "{body}"
    );
    assert!(body.contains(&format!("id=\"group-{always}\"")), "{body}");
    assert!(body.contains("5xx rate above 5% on api-1"), "{body}");
    assert!(body.contains("5xx rate above 5% on api-2"), "{body}");
    assert!(body.contains("instance=api-2:8080"), "{body}");
    assert!(body.contains("<td>bob</td>"), "who acked: {body}");
    assert!(
        body.contains("carol, until resolved"),
        "who silenced: {body}"
    );
    assert!(
        body.contains(&format!(
            "<a href=\"/deploys/{deploy}\">api v2.4.1 to production by alice</a>"
        )),
        "{body}"
    );
    // The filters offer the known values.
    assert!(
        body.contains("<option value=\"api\">api</option>"),
        "{body}"
    );
    assert!(
        body.contains("<option value=\"warning\">warning</option>"),
        "{body}"
    );
    assert!(
        body.contains("<option value=\"critical\">critical</option>"),
        "{body}"
    );

    let (_, body) = page(&state, "/alerts?service=api").await;
    assert_eq!(group_names(&body), ["HighErrorRate"], "{body}");
    assert!(
        body.contains("<option value=\"api\" selected>api</option>"),
        "{body}"
    );
    let (_, body) = page(&state, "/alerts?severity=warning&status=firing").await;
    assert_eq!(group_names(&body), ["AlwaysFiring"], "{body}");
    let (_, body) = page(&state, "/alerts?status=resolved").await;
    assert!(group_names(&body).is_empty(), "{body}");
    assert!(
        body.contains("No alert groups match these filters."),
        "{body}"
    );
    let (_, body) = page(&state, "/alerts?service=nothing-like-it").await;
    assert!(group_names(&body).is_empty(), "{body}");

    // A status that is not one is refused, escaped; without a token or session, no page.
    let (status, body) = page(&state, "/alerts?status=%3Cb%3Eon%3C/b%3E").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(!body.contains("<b>on</b>"), "{body}");
    let (status, _) = send(
        &state,
        Request::get("/alerts")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "a browser without a session goes to /login"
    );
}
