//! Deploys and failures through the router: `/deploys` filters, durations, approvers,
//! rollbacks and freeze overrides; the environment matrix; and pages that fail well — a
//! styled 404 for unknown paths and ids, a 400 that names the bad id, a 503 when the
//! database is away, all in the dashboard's layout.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use opsbot::web::auth::Dashboard;
use opsbot::web::{WebState, router};
use opsbot_commands::Desk;
use opsbot_commands::access::RoleMap;
use sqlx::PgPool;
use tower::ServiceExt as _;

const TOKEN: &str = "deploys-dashboard-token-of-at-least-32-bytes";

fn state(pool: &PgPool) -> WebState {
    WebState {
        metrics: opsbot::telemetry::metrics(),
        desk: Desk::new(pool.clone(), RoleMap::default()),
        dashboard: Arc::new(Dashboard {
            tokens: vec![secrecy::SecretString::from(TOKEN.to_owned())],
            key: Dashboard::key_from(Some("a session secret for the deploys tests, 32+ b")),
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

/// A deploy that started at `start` minutes ago and ran `minutes`.
async fn deploy(
    pool: &PgPool,
    (service, env, version, state, by): (&str, &str, &str, &str, &str),
    (start, minutes): (i64, i64),
    (rollback_of, overridden): (Option<i64>, bool),
) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO deploys (correlation_id, service, environment, version, state, is_rollback,
                              rollback_of, freeze_overridden, requested_by_id, requested_by_name,
                              requested_at, started_at, finished_at, backend)
         VALUES (gen_random_uuid(), $1, $2, $3, $4, $5 IS NOT NULL, $5, $6, 7, $7,
                 now() - make_interval(mins => $8::int), now() - make_interval(mins => $8::int),
                 CASE WHEN $4 IN ('succeeded', 'failed')
                      THEN now() - make_interval(mins => $8::int) + make_interval(mins => $9::int) END,
                 'command')
         RETURNING id",
    )
    .bind(service)
    .bind(env)
    .bind(version)
    .bind(state)
    .bind(rollback_of)
    .bind(overridden)
    .bind(by)
    .bind(start)
    .bind(minutes)
    .fetch_one(pool)
    .await
    .expect("deploy")
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn the_deploy_list_filters_and_marks_rollbacks_and_overrides(pool: PgPool) {
    let v1 = deploy(
        &pool,
        ("api", "production", "v1", "succeeded", "ana"),
        (300, 12),
        (None, false),
    )
    .await;
    let v2 = deploy(
        &pool,
        ("api", "production", "v2", "failed", "bo"),
        (200, 3),
        (None, true),
    )
    .await;
    let back = deploy(
        &pool,
        ("api", "production", "v1", "succeeded", "bo"),
        (190, 2),
        (Some(v2), false),
    )
    .await;
    deploy(
        &pool,
        ("worker", "staging", "w9", "running", "cy"),
        (5, 0),
        (None, false),
    )
    .await;
    sqlx::query(
        "INSERT INTO deploy_approvals (deploy_id, approver_id, approver_name, decision)
         VALUES ($1, 8, 'dee', 'approve'), ($1, 9, 'eve', 'approve')",
    )
    .bind(v1)
    .execute(&pool)
    .await
    .expect("approvals");
    let state = state(&pool);

    let (status, body) = get(&state, "/deploys").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains(&format!("rollback of #{v2}</span>")),
        "{body}"
    );
    assert!(
        body.contains("<span class=\"flag flag-override\">freeze override</span>"),
        "{body}"
    );
    assert!(body.contains("<td>dee, eve</td>"), "{body}");
    assert!(body.contains("<td>took 12 min</td>"), "{body}");
    assert!(body.contains("<td>running for 5 min</td>"), "{body}");
    assert!(
        body.contains("<a href=\"/deploys?who=bo\">bo</a>"),
        "{body}"
    );

    let rows = |body: &str| -> Vec<String> {
        body.split("<tr data-deploy=\"")
            .skip(1)
            .filter_map(|r| r.split('"').next().map(str::to_owned))
            .collect()
    };
    let (_, body) = get(&state, "/deploys?service=api&state=succeeded").await;
    assert_eq!(rows(&body), [back.to_string(), v1.to_string()], "{body}");
    assert!(
        body.contains("<option value=\"succeeded\" selected>"),
        "{body}"
    );
    let (_, body) = get(&state, "/deploys?who=BO&environment=production").await;
    assert_eq!(rows(&body), [back.to_string(), v2.to_string()]);
    let (_, body) = get(&state, "/deploys?since=2000-01-01&until=2000-01-02").await;
    assert!(body.contains("No deploys match."), "{body}");
    let (status, body) = get(&state, "/deploys?state=done").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("state: `done` is not a deploy state"),
        "{body}"
    );
    let (status, body) = get(&state, "/deploys?servce=api").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("unknown parameter &#34;servce&#34;"),
        "{body}"
    );

    let (status, body) = get(&state, &format!("/deploys/{v2}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("deployed through a freeze window"), "{body}");
    sqlx::query("UPDATE deploys SET guild_id = 100, channel_id = 200, status_message_id = 300 WHERE id = $1")
        .bind(v2)
        .execute(&pool)
        .await
        .expect("message ids");
    let (_, body) = get(&state, &format!("/deploys/{v2}")).await;
    assert!(
        body.contains("<a href=\"https://discord.com/channels/100/200/300\" rel=\"noreferrer\" id=\"discord-link\">"),
        "{body}"
    );
    let (_, body) = get(&state, &format!("/deploys/{back}")).await;
    assert!(
        body.contains(&format!(
            "<dt>Rolls back</dt><dd><a href=\"/deploys/{v2}\">deploy #{v2}</a></dd>"
        )),
        "{body}"
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn the_matrix_shows_what_runs_where(pool: PgPool) {
    let v1 = deploy(
        &pool,
        ("api", "production", "v1", "succeeded", "ana"),
        (300, 12),
        (None, false),
    )
    .await;
    let v3 = deploy(
        &pool,
        ("api", "production", "v3", "succeeded", "bo"),
        (100, 5),
        (None, false),
    )
    .await;
    let v4 = deploy(
        &pool,
        ("api", "production", "v4", "running", "cy"),
        (3, 0),
        (None, false),
    )
    .await;
    deploy(
        &pool,
        ("worker", "staging", "w1", "failed", "cy"),
        (50, 1),
        (None, false),
    )
    .await;
    let state = state(&pool);
    let (status, body) = get(&state, "/deploys/matrix").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let api = body
        .split("<tr data-service=\"api\">")
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .expect("api row");
    assert!(
        api.contains(&format!(
            "<a class=\"running-version\" href=\"/deploys/{v3}\"><code>v3</code></a>"
        )),
        "{api}"
    );
    assert!(api.contains(" by bo</small>"), "{api}");
    assert!(
        api.contains(&format!(
            "previous good: <a href=\"/deploys/{v1}\"><code>v1</code></a>"
        )),
        "{api}"
    );
    assert!(
        api.contains(&format!(
            "running: <a href=\"/deploys/{v4}\"><code>v4</code></a> by cy"
        )),
        "{api}"
    );
    // api never deployed to staging, worker never to production; worker's only deploy failed.
    let worker = body
        .split("<tr data-service=\"worker\">")
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .expect("worker row");
    assert!(worker.contains("nothing deployed yet"), "{worker}");
    assert_eq!(
        api.matches("<span class=\"muted\">—</span>").count(),
        1,
        "{api}"
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn pages_fail_well(pool: PgPool) {
    let state = state(&pool);
    for (uri, status, text) in [
        (
            "/deploys/abc",
            StatusCode::BAD_REQUEST,
            "<code>abc</code> is not a deploy id",
        ),
        (
            "/events/abc",
            StatusCode::BAD_REQUEST,
            "<code>abc</code> is not an event id",
        ),
        (
            "/incidents/1x",
            StatusCode::BAD_REQUEST,
            "<code>1x</code> is not an incident id",
        ),
        (
            "/deploys/999",
            StatusCode::NOT_FOUND,
            "There is no deploy 999.",
        ),
        (
            "/events/999",
            StatusCode::NOT_FOUND,
            "There is no event 999.",
        ),
        (
            "/incidents/999",
            StatusCode::NOT_FOUND,
            "There is no incident 999.",
        ),
        (
            "/no/such/page",
            StatusCode::NOT_FOUND,
            "<code>/no/such/page</code> is not a page of this dashboard",
        ),
        (
            "/overview?window=abc",
            StatusCode::BAD_REQUEST,
            "window: `abc` is not a window",
        ),
    ] {
        let (got, body) = get(&state, uri).await;
        assert_eq!(got, status, "{uri}: {body}");
        assert!(body.contains(text), "{uri}: {text} missing:\n{body}");
        // The dashboard's layout and navigation, never a parser's words.
        assert!(
            body.contains("<nav>") && body.contains("href=\"/overview\""),
            "{uri}"
        );
        assert!(
            !body.contains("Invalid URL") && !body.contains("Cannot parse"),
            "{uri}: {body}"
        );
    }
    let (status, body) = get(&state, "/api/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body.starts_with("{\"error\":\"no API at /api/nothing"),
        "{body}"
    );
}

#[tokio::test]
async fn a_database_away_is_a_503_page() {
    // A pool on a port nothing listens on: every query fails to connect.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy(&format!("postgres://postgres@127.0.0.1:{port}/postgres"))
        .expect("lazy pool");
    let state = state(&pool);
    for uri in [
        "/deploys",
        "/deploys/matrix",
        "/overview",
        "/",
        "/deploys/1",
    ] {
        let (status, body) = get(&state, uri).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{uri}: {body}");
        assert!(
            body.contains("The database is not answering"),
            "{uri}: {body}"
        );
        assert!(body.contains("<nav>"), "{uri}");
    }
}
