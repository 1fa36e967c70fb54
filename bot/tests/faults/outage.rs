//! PostgreSQL that stays down: the real `opsbot run` keeps running, `/healthz` answers 200
//! and `/readyz` 503, both webhooks (Alertmanager's and a deployer's report) answer 503 so
//! their senders retry, and what was acknowledged before the outage is still there after
//! it. When the server comes back, opsbot recovers on its own (no restart): ready again,
//! the gateway back, commands answered, the retried webhooks accepted, the deploy finished.

use std::time::Duration;

use opsbot::emulator::Emulator;
use opsbot_commands::deploy::backends::webhook;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{self, ALERTS, Opsbot, PATIENCE, ask, eventually};
use crate::support::private_pg::{PrivatePostgres, Stop};

const HOOK: &str = "faults-alertmanager-token";
const SECRET: &[u8] = b"faults-deployer-secret";
/// Long enough for every background loop and the gateway leader (which gives its gateway up
/// about 5 s into an outage) to notice.
const OUTAGE: Duration = Duration::from_secs(8);

/// Alert group `name`, one firing alert, as Alertmanager's webhook sends it.
pub fn alert(name: &str) -> Value {
    json!({
        "version": "4", "groupKey": format!("{{}}:{{alertname=\"{name}\"}}"), "status": "firing",
        "receiver": "opsbot", "groupLabels": {"alertname": name},
        "commonLabels": {"alertname": name, "service": "api", "severity": "critical"},
        "commonAnnotations": {}, "externalURL": "http://am:9093", "truncatedAlerts": 0,
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": name, "instance": "api-1:8080", "service": "api", "severity": "critical"},
            "annotations": {"summary": format!("{name} on api-1")},
            "startsAt": "2026-12-01T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "", "fingerprint": format!("{name}-1"),
        }],
    })
}

async fn deliver_alert(client: &reqwest::Client, bot: &Opsbot, body: &Value) -> u16 {
    client
        .post(format!("http://{}/webhooks/alertmanager", bot.http))
        .bearer_auth(HOOK)
        .json(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// A report on deploy `id`, signed now, as a deployer sends it.
async fn report(client: &reqwest::Client, bot: &Opsbot, id: i64, status: &str) -> u16 {
    let body = json!({ "status": status, "message": "from the drill" }).to_string();
    let now = chrono::Utc::now().timestamp();
    let target = webhook::target("POST", &webhook::report_path(id));
    client
        .post(format!("http://{}/webhooks/deploy/{id}", bot.http))
        .header("content-type", "application/json")
        .header(webhook::TIMESTAMP_HEADER, now.to_string())
        .header(
            webhook::SIGNATURE_HEADER,
            webhook::sign(SECRET, now, &target, body.as_bytes()),
        )
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn status_of(client: &reqwest::Client, bot: &Opsbot, path: &str) -> Option<u16> {
    bot.get(client, path).await.map(|(status, _)| status)
}

#[tokio::test]
async fn a_database_that_stays_down_refuses_webhooks_and_recovers_without_a_restart() {
    let mut pg = PrivatePostgres::start().await;
    let deployer = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&deployer)
        .await;
    let dir = tempfile::tempdir().expect("dir");
    let (hook, secret) = (dir.path().join("hook"), dir.path().join("secret"));
    std::fs::write(&hook, HOOK).expect("hook token");
    std::fs::write(&secret, SECRET).expect("secret");
    let (config_dir, config) = harness::config_file(&format!(
        r#"
[alerts]
webhook_token = "file:{}"
[[alerts.routes]]
channel = {ALERTS}
[[services]]
name = "hooked"
environments = ["staging"]
backend = {{ kind = "webhook", url = "{}/hooks/opsbot", secret = "file:{}", timeout = "5m" }}
"#,
        hook.display(),
        deployer.uri(),
        secret.display()
    ));
    let shutdown = CancellationToken::new();
    let emulator = Emulator::start(harness::guild(), shutdown.clone())
        .await
        .expect("emulator");
    let mut bot = Opsbot::start(
        &config,
        &pg.url(),
        &emulator,
        &dir.path().join("opsbot.log"),
    );
    let client = reqwest::Client::new();
    bot.wait_ready(&client).await;
    let roles = ["ops".to_owned()];
    let ana = emulator.member("ana", Some(&roles));
    let general = emulator.find_channel("general").expect("general").0;
    let mut events = emulator.subscribe();

    // Acknowledged before the outage: an alert and a deploy the deployer has accepted.
    assert_eq!(
        deliver_alert(&client, &bot, &alert("BeforeOutage")).await,
        200
    );
    let started = ask(
        &emulator,
        &mut events,
        ana,
        general,
        "/deploy run service:hooked version:v1 env:staging",
    )
    .await
    .expect("typed")
    .expect("answered");
    assert!(!started.content.starts_with('❌'), "{}", started.content);
    let pool = PgPool::connect(&pg.url()).await.expect("connect");
    let deploy: i64 = eventually("the deploy runs", PATIENCE, || async {
        sqlx::query_scalar("SELECT id FROM deploys WHERE state = 'running'")
            .fetch_optional(&pool)
            .await
            .ok()
            .flatten()
    })
    .await;
    pool.close().await;

    pg.stop(Stop::Fast).await;
    let down_at = Instant::now();
    let unready = eventually("/readyz turns 503", PATIENCE, || async {
        (status_of(&client, &bot, "/readyz").await == Some(503)).then(Instant::now)
    })
    .await;
    assert_eq!(status_of(&client, &bot, "/healthz").await, Some(200));
    let during = ask(&emulator, &mut events, ana, general, "/whoami").await;
    let command_during = match &during {
        Ok(Some(answer)) => format!("answered in {:?}: {}", answer.took, answer.content),
        Ok(None) => "no answer".to_owned(),
        Err(e) => format!("not delivered: {e}"),
    };
    assert_eq!(
        deliver_alert(&client, &bot, &alert("DuringOutage")).await,
        503
    );
    assert_eq!(report(&client, &bot, deploy, "succeeded").await, 503);
    tokio::time::sleep(OUTAGE.saturating_sub(down_at.elapsed())).await;
    // Still refusing, still alive, at the end of the outage.
    assert_eq!(
        deliver_alert(&client, &bot, &alert("DuringOutage")).await,
        503
    );
    assert_eq!(report(&client, &bot, deploy, "succeeded").await, 503);
    assert_eq!(status_of(&client, &bot, "/healthz").await, Some(200));
    let (_, readyz) = bot.get(&client, "/readyz").await.expect("/readyz answers");
    assert!(
        bot.child.try_wait().expect("child").is_none(),
        "opsbot kept running through the outage"
    );

    let up_at = pg.start_again().await;
    let ready = eventually("/readyz turns 200", PATIENCE, || async {
        (status_of(&client, &bot, "/readyz").await == Some(200)).then(Instant::now)
    })
    .await;
    bot.wait_ready(&client).await;
    let connected = Instant::now();
    let answer = eventually("a command succeeds", PATIENCE, || {
        let (emulator, mut events) = (&emulator, emulator.subscribe());
        async move {
            let answer = ask(emulator, &mut events, ana, general, "/whoami")
                .await
                .ok()
                .flatten()?;
            answer.content.contains("**ana**").then(Instant::now)
        }
    })
    .await;
    // The senders' retries are accepted.
    assert_eq!(
        deliver_alert(&client, &bot, &alert("DuringOutage")).await,
        200
    );
    assert_eq!(report(&client, &bot, deploy, "succeeded").await, 200);

    let pool = PgPool::connect(&pg.url()).await.expect("connect");
    let groups: Vec<String> =
        sqlx::query_scalar("SELECT group_labels->>'alertname' FROM alert_groups ORDER BY 1")
            .fetch_all(&pool)
            .await
            .expect("alert groups");
    assert_eq!(groups, ["BeforeOutage", "DuringOutage"]);
    let state: String = sqlx::query_scalar("SELECT state FROM deploys WHERE id = $1")
        .bind(deploy)
        .fetch_one(&pool)
        .await
        .expect("deploy");
    assert_eq!(state, "succeeded");
    // Both alerts are posted once each (the outbox catches up).
    eventually("both alerts are posted", PATIENCE, || async {
        (emulator.channel_messages(ALERTS).len() == 2).then_some(())
    })
    .await;

    assert_eq!(bot.terminate().await, Some(0));
    let (code, verified) = harness::audit_verify(&pg.url()).await;
    assert_eq!(code, Some(0), "{verified}");
    eprintln!(
        "FAULT outage: down {:?}; /readyz 503 after {:?}; a command into the outage: {command_during}; /readyz at the end of the outage: {:?}; after the database was back: /readyz 200 in {:?}, gateway connected in {:?}, first command ok in {:?}",
        up_at - down_at,
        unready - down_at,
        readyz.replace('\n', " | "),
        ready - up_at,
        connected - up_at,
        answer - up_at,
    );
    drop(config_dir);
    shutdown.cancel();
}
