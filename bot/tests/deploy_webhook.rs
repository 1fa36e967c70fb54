//! The deploy webhook under attack, through the real HTTP server of `opsbot run`'s wiring:
//! a signed report replayed onto another deploy or onto its own deploy, a flood of unsigned
//! reports, and what an unauthenticated caller can learn.

mod support;

use std::time::Duration;

use opsbot_commands::deploy::backends::webhook;
use sqlx::PgPool;
use support::TestBot;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &[u8] = b"s3cret";

fn config(deployer: &str, secret_file: &std::path::Path) -> String {
    format!(
        r#"
[roles]
ops = ["deploy:*", "audit:*"]
[http]
listen = "127.0.0.1:0"
[[services]]
name = "worker"
environments = ["staging", "production"]
backend = {{ kind = "webhook", url = "{deployer}/hooks/opsbot", secret = "file:{}", timeout = "5m" }}
"#,
        secret_file.display()
    )
}

/// A report signed for deploy `id` now.
fn signed(id: i64, body: &str) -> (String, String) {
    let now = chrono::Utc::now().timestamp();
    let target = webhook::target("POST", &webhook::report_path(id));
    (
        now.to_string(),
        webhook::sign(SECRET, now, &target, body.as_bytes()),
    )
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    headers: Option<&(String, String)>,
    body: &str,
) -> (u16, String) {
    let mut request = http
        .post(format!("{base}/webhooks/deploy/{id}"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some((timestamp, signature)) = headers {
        request = request
            .header(webhook::TIMESTAMP_HEADER, timestamp)
            .header(webhook::SIGNATURE_HEADER, signature);
    }
    let response = request.send().await.expect("post");
    (
        response.status().as_u16(),
        response.text().await.expect("body"),
    )
}

async fn state(pool: &PgPool, id: i64) -> String {
    opsbot_commands::deploy::deploy_by_id(pool, id)
        .await
        .expect("read")
        .expect("deploy")
        .state
        .as_str()
        .to_owned()
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("count")
}

async fn wait_running(pool: &PgPool, id: i64) {
    for _ in 0..400 {
        if state(pool, id).await == "running" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("deploy #{id} never started");
}

/// The whole bot with a `worker` service on the webhook backend, its deployer accepting
/// every deploy (kept alive by the returned handles).
async fn start(pool: &PgPool) -> (TestBot, (MockServer, tempfile::NamedTempFile)) {
    let deployer = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&deployer)
        .await;
    let secret_file = tempfile::NamedTempFile::new().expect("secret");
    std::fs::write(secret_file.path(), "s3cret\n").expect("write secret");
    let bot =
        TestBot::with_config(pool.clone(), &config(&deployer.uri(), secret_file.path())).await;
    (bot, (deployer, secret_file))
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn signed_reports_are_bound_to_their_deploy_and_accepted_once(pool: PgPool) {
    let (mut bot, _deployer) = start(&pool).await;
    bot.say(
        "ana",
        &["ops"],
        "/deploy run service:worker version:v2 env:staging",
    )
    .await;
    bot.say(
        "ana",
        &["ops"],
        "/deploy run service:worker version:v2 env:production",
    )
    .await;
    wait_running(&pool, 1).await;
    wait_running(&pool, 2).await;
    let services = bot.services.as_ref().expect("services");
    let base = format!("http://{}", services.http_addr.expect("http server"));
    let http = reqwest::Client::new();

    // A success report captured for staging deploy #1, posted for production deploy #2.
    let body = r#"{"status":"succeeded","message":"all regions live"}"#;
    let for_staging = signed(1, body);
    let (status, _) = post(&http, &base, "2", Some(&for_staging), body).await;
    assert_eq!(status, 401, "a signature for #1 does not authorise #2");
    assert_eq!(
        state(&pool, 2).await,
        "running",
        "the replay changed nothing"
    );

    // Progress for #1, then the same signed report again: the replay changes nothing.
    let progress = r#"{"status":"running","message":"canary at 10%"}"#;
    let signature = signed(1, progress);
    let (status, text) = post(&http, &base, "1", Some(&signature), progress).await;
    assert_eq!(status, 200, "{text}");
    let events = count(&pool, "SELECT count(*) FROM audit_events").await;
    // The progress line's posts (the tracker may queue status edits of its own meanwhile).
    let progress_posts = "SELECT count(*) FROM outbox WHERE payload::text LIKE '%canary at 10%'";
    let posts = count(&pool, progress_posts).await;
    for _ in 0..5 {
        let (status, text) = post(&http, &base, "1", Some(&signature), progress).await;
        assert_eq!(status, 409, "{text}");
        assert!(text.contains("already received"), "{text}");
    }
    assert_eq!(
        count(&pool, "SELECT count(*) FROM audit_events").await,
        events,
        "no audit event per replay"
    );
    assert_eq!(
        count(&pool, progress_posts).await,
        posts,
        "no progress post per replay"
    );

    // The genuine success report for #1 still works once.
    let (status, text) = post(&http, &base, "1", Some(&for_staging), body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(state(&pool, 1).await, "succeeded");

    // A deployer still on scheme v1 is told how to sign.
    let now = chrono::Utc::now().timestamp();
    let old = (now.to_string(), format!("sha256={}", "00".repeat(32)));
    let (status, text) = post(&http, &base, "2", Some(&old), body).await;
    assert_eq!(status, 401);
    assert!(text.contains("v2="), "{text}");

    // An authenticated but malformed body is audited once, as invalid.
    let junk = r#"{"status":"done"}"#;
    let (status, text) = post(&http, &base, "2", Some(&signed(2, junk)), junk).await;
    assert_eq!(status, 400, "{text}");
    let invalid = count(
        &pool,
        "SELECT count(*) FROM audit_events WHERE command = 'deploy report' AND outcome = 'invalid'",
    )
    .await;
    assert_eq!(invalid, 1);
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn unsigned_floods_are_counted_not_written_and_reveal_nothing(pool: PgPool) {
    let (mut bot, _deployer) = start(&pool).await;
    bot.say(
        "ana",
        &["ops"],
        "/deploy run service:worker version:v2 env:staging",
    )
    .await;
    wait_running(&pool, 1).await;
    let services = bot.services.as_ref().expect("services");
    let base = format!("http://{}", services.http_addr.expect("http server"));
    let http = reqwest::Client::new();
    let before = count(&pool, "SELECT count(*) FROM audit_events").await;

    let body = r#"{"status":"succeeded","message":"trust me"}"#;
    let now = chrono::Utc::now().timestamp().to_string();
    let forged = (now, format!("v2={}", "ab".repeat(32)));
    for _ in 0..300 {
        let (status, _) = post(&http, &base, "1", Some(&forged), body).await;
        assert_eq!(status, 401);
    }
    let (_, unsigned) = post(&http, &base, "1", None, body).await;
    assert!(unsigned.contains("header is missing"), "{unsigned}");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM audit_events").await,
        before,
        "refusals are not written row by row"
    );

    // Whether the deploy exists, or takes webhook reports, reads the same from outside.
    let (_, existing) = post(&http, &base, "1", Some(&forged), body).await;
    let (_, missing) = post(&http, &base, "999", Some(&forged), body).await;
    let (_, nonsense) = post(&http, &base, "abc", Some(&forged), body).await;
    assert_eq!(existing, missing);
    assert_eq!(existing, nonsense);
    assert!(!existing.contains("worker"), "{existing}");
    assert_eq!(state(&pool, 1).await, "running");

    // One sampled event per address and minute, with the count.
    let written = services.desk.flush_refusals(true).await.expect("flush");
    assert!(
        (1..=2).contains(&written),
        "one per minute the flood spanned: {written}"
    );
    let total: i64 = sqlx::query_scalar(
        "SELECT sum((args->>'count')::bigint)::bigint FROM audit_events WHERE command = 'deploy report' AND outcome = 'denied'",
    )
    .fetch_one(&pool)
    .await
    .expect("sum");
    assert_eq!(total, 304);
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("opsbot_unauthenticated_refusals_total{door=\"deploy report\"}"),
        "{metrics}"
    );
    // Every background loop reports its last successful round.
    for name in [
        "audit sealer",
        "deploy tracker",
        "refusal flush",
        "outbox dispatcher",
    ] {
        let series = format!("opsbot_background_last_success_timestamp_seconds{{loop=\"{name}\"}}");
        assert!(metrics.contains(&series), "{series} missing:\n{metrics}");
    }
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn stale_future_tampered_and_wrongly_signed_reports_change_nothing(pool: PgPool) {
    let (mut bot, _deployer) = start(&pool).await;
    bot.say(
        "ana",
        &["ops"],
        "/deploy run service:worker version:v3 env:staging",
    )
    .await;
    wait_running(&pool, 1).await;
    let base = format!(
        "http://{}",
        bot.services
            .as_ref()
            .and_then(|s| s.http_addr)
            .expect("http server")
    );
    let http = reqwest::Client::new();
    let body = r#"{"status":"succeeded","message":"done"}"#;
    let target = webhook::target("POST", &webhook::report_path(1));
    let now = chrono::Utc::now().timestamp();
    let signed_at = |at: i64, secret: &[u8], body: &str| {
        (
            at.to_string(),
            webhook::sign(secret, at, &target, body.as_bytes()),
        )
    };
    let attempts = [
        ("ten minutes old", signed_at(now - 600, SECRET, body), body),
        (
            "ten minutes ahead",
            signed_at(now + 600, SECRET, body),
            body,
        ),
        (
            "a year ahead",
            signed_at(now + 31_536_000, SECRET, body),
            body,
        ),
        (
            "the most negative timestamp",
            (i64::MIN.to_string(), signed_at(now, SECRET, body).1),
            body,
        ),
        ("another secret", signed_at(now, b"guess", body), body),
        // Signed for a failure, sent as a success.
        (
            "a tampered body",
            signed_at(now, SECRET, r#"{"status":"failed","message":"done"}"#),
            body,
        ),
        // The signature of now, with the timestamp moved: the MAC covers the timestamp.
        (
            "a moved timestamp",
            ((now + 1).to_string(), signed_at(now, SECRET, body).1),
            body,
        ),
    ];
    for (what, headers, sent) in attempts {
        let (status, text) = post(&http, &base, "1", Some(&headers), sent).await;
        assert_eq!(status, 401, "{what}: {text}");
        assert!(text.contains("signature refused"), "{what}: {text}");
    }
    let (status, _) = post(&http, &base, "1", None, body).await;
    assert_eq!(status, 401, "unsigned");
    assert_eq!(state(&pool, 1).await, "running", "nothing was applied");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM audit_events WHERE command = 'deploy report' \
             AND actor_name NOT LIKE 'unauthenticated %'"
        )
        .await,
        0,
        "no report was taken for an authenticated one"
    );
    // The genuine report still works.
    let (status, text) = post(&http, &base, "1", Some(&signed_at(now, SECRET, body)), body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(state(&pool, 1).await, "succeeded");
}
