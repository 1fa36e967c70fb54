//! Alert messages through Discord's failures and opsbot's restarts, with the whole bot
//! (`opsbot run`'s services) on the emulator, deliveries posted to its real webhook:
//! - the emulator answers 429 and 500 in bursts while alert groups arrive and resolve
//!   concurrently: every group's message is posted exactly once and edited to resolved;
//! - the bot stops between an alert's post and its resolve, and a new one on the same
//!   database and emulator edits that same message.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use opsbot::config::Config;
use opsbot::discord::GatewaySettings;
use opsbot::emulator::Emulator;
use opsbot::run::{HttpBind, Services};
use serde_json::{Value, json};
use sqlx::PgPool;
use support::TestBot;
use tokio_util::sync::CancellationToken;

const ALERTS: u64 = 333_000_000_000_000_333;
const HOOK: &str = "alert-delivery-webhook-token";

fn config(token_file: &std::path::Path) -> String {
    format!(
        r#"
[roles]
ops = ["alerts:*"]
[http]
listen = "127.0.0.1:0"
[channels]
alerts = {ALERTS}
[alerts]
webhook_token = "file:{}"
[[alerts.routes]]
channel = {ALERTS}
"#,
        token_file.display()
    )
}

/// Group `name`: two alerts, firing or resolved.
fn payload(name: &str, resolved: bool) -> Value {
    let status = if resolved { "resolved" } else { "firing" };
    let ends = if resolved {
        "2026-12-01T10:05:00Z"
    } else {
        "0001-01-01T00:00:00Z"
    };
    let alerts: Vec<Value> = (0..2)
        .map(|i| {
            json!({
                "status": status,
                "labels": {"alertname": name, "instance": format!("api-{i}:8080"), "service": "api", "severity": "critical"},
                "annotations": {"summary": format!("{name} on api-{i}")},
                "startsAt": "2026-12-01T10:00:00Z", "endsAt": ends,
                "generatorURL": "", "fingerprint": format!("{name}-{i}"),
            })
        })
        .collect();
    json!({
        "version": "4", "groupKey": format!("{{}}:{{alertname=\"{name}\"}}"), "status": status,
        "receiver": "opsbot", "groupLabels": {"alertname": name},
        "commonLabels": {"alertname": name, "service": "api", "severity": "critical"},
        "commonAnnotations": {}, "externalURL": "http://am:9093", "truncatedAlerts": 0,
        "alerts": alerts,
    })
}

async fn deliver(http: &reqwest::Client, addr: std::net::SocketAddr, body: &Value) {
    let response = http
        .post(format!("http://{addr}/webhooks/alertmanager"))
        .bearer_auth(HOOK)
        .json(body)
        .send()
        .await
        .expect("webhook");
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
}

/// Waits until no outbox row is pending; fails after 60 s (the dispatcher backs off 1 s, 2 s,
/// 4 s … after 5xx answers).
async fn settled(pool: &PgPool) {
    let started = tokio::time::Instant::now();
    loop {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE status = 'pending'")
                .fetch_one(pool)
                .await
                .expect("outbox");
        if pending == 0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{pending} outbox rows still pending"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn titles(messages: &[Value]) -> Vec<String> {
    let mut titles: Vec<String> = messages
        .iter()
        .map(|m| {
            m["embeds"][0]["title"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    titles.sort();
    titles
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn bursts_of_429_and_500_deliver_every_alert_message_once(pool: PgPool) {
    let secrets = tempfile::tempdir().expect("dir");
    let token_file = secrets.path().join("hook");
    std::fs::write(&token_file, HOOK).expect("token");
    let bot = TestBot::with_config(pool.clone(), &config(&token_file)).await;
    let addr = bot
        .services
        .as_ref()
        .and_then(|s| s.http_addr)
        .expect("http");
    let path = format!("/channels/{ALERTS}/messages");
    bot.emulator
        .script_failure(Some("POST"), &path, 429, 4, 0.05);
    bot.emulator
        .script_failure(Some("POST"), &path, 500, 2, 0.0);
    bot.emulator
        .script_failure(Some("PATCH"), &path, 429, 3, 0.05);
    bot.emulator
        .script_failure(Some("PATCH"), &path, 500, 2, 0.0);

    let http = reqwest::Client::new();
    let names: Vec<String> = (0..6).map(|i| format!("Burst{i}")).collect();
    // All groups fire at once, then resolve at once, while Discord is failing.
    futures_util::future::join_all(
        names
            .iter()
            .map(|n| async { deliver(&http, addr, &payload(n, false)).await }),
    )
    .await;
    futures_util::future::join_all(
        names
            .iter()
            .map(|n| async { deliver(&http, addr, &payload(n, true)).await }),
    )
    .await;
    settled(&pool).await;

    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE status = 'dead'")
        .fetch_one(&pool)
        .await
        .expect("dead");
    assert_eq!(dead, 0, "nothing dead-lettered");
    let messages = bot.emulator.channel_messages(ALERTS);
    let expected: Vec<String> = names.iter().map(|n| format!("✅ RESOLVED {n}")).collect();
    assert_eq!(
        titles(&messages),
        expected,
        "one message per group, each edited to resolved"
    );
    let requests = bot.emulator.requests();
    let posts = requests
        .iter()
        .filter(|r| r.starts_with("POST ") && r.ends_with(&path))
        .count();
    assert!(
        posts >= 6 + 4 + 2,
        "the failures were served: {posts} posts"
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn a_restart_between_post_and_resolve_edits_the_same_message(pool: PgPool) {
    let secrets = tempfile::tempdir().expect("dir");
    let token_file = secrets.path().join("hook");
    std::fs::write(&token_file, HOOK).expect("token");
    let file = secrets.path().join("opsbot.toml");
    std::fs::write(&file, config(&token_file)).expect("config");
    let env = BTreeMap::from([("DATABASE_URL".to_owned(), support::database_url(&pool))]);
    let config = Config::load_with_env(Some(&file), &env).expect("config");
    // The emulator outlives both bots; each bot stops its own (child) token.
    let shutdown = CancellationToken::new();
    let emulator = Emulator::start(opsbot::shell::guild_spec(&config), shutdown.clone())
        .await
        .expect("emulator");
    let settings = GatewaySettings {
        token: emulator.token().to_owned(),
        guild_ids: vec![emulator.guild_id()],
        api_base: emulator.base_url().to_owned(),
        source: opsbot_commands::Source::Discord,
    };
    let start = || {
        Services::start(
            &config,
            Some(settings.clone()),
            HttpBind::Required,
            shutdown.child_token(),
        )
    };
    let http = reqwest::Client::new();

    let first = start().await.expect("first bot");
    deliver(
        &http,
        first.http_addr.expect("http"),
        &payload("Restarted", false),
    )
    .await;
    settled(&pool).await;
    let posted = emulator.channel_messages(ALERTS);
    assert_eq!(titles(&posted), ["🔥 FIRING (2) Restarted"]);
    let message_id = posted[0]["id"].clone();
    first.stop().await.expect("stop");

    // A new bot on the same database and emulator takes the resolve.
    let second = start().await.expect("second bot");
    deliver(
        &http,
        second.http_addr.expect("http"),
        &payload("Restarted", true),
    )
    .await;
    settled(&pool).await;
    let messages = emulator.channel_messages(ALERTS);
    assert_eq!(
        titles(&messages),
        ["✅ RESOLVED Restarted"],
        "edited, not reposted"
    );
    assert_eq!(messages[0]["id"], message_id, "the same message");
    let edits = emulator
        .requests()
        .iter()
        .filter(|r| r.starts_with("PATCH "))
        .count();
    assert_eq!(edits, 1, "one edit, by the second bot");
    second.stop().await.expect("stop");
    shutdown.cancel();
}
