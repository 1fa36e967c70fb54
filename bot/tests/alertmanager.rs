//! Alerts end to end against the REAL Alertmanager (Debian's `prometheus-alertmanager`),
//! started here on a free loopback port (`--cluster.listen-address=`, a temp storage dir),
//! routing to opsbot's webhook with the bearer token. Alerts are pushed into it through its
//! v2 API, so the payloads are Alertmanager's own. Asserted: one message per group, edited
//! on resolve (not reposted); the Silence picker's silence visible in Alertmanager and gone
//! after Unsilence; "Ack + silence until resolved" expired by opsbot when the group
//! resolves; `/alerts active`, `/alerts silence` (matchers checked first), `/alerts
//! silences` with Expire; an Alertmanager that is down gives a clear error, audited.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use support::TestBot;
use support::alertmanager::{
    ALERTMANAGER, TOKEN, active_silences, embed_text, free_port, labels_of_components, push,
    select, silences, start_alertmanager, state_of,
};

const ALERTS: u64 = 333_000_000_000_000_333;

fn config(alertmanager: &str, token_file: &Path) -> String {
    config_with(alertmanager, token_file, "")
}

fn config_with(alertmanager: &str, token_file: &Path, more: &str) -> String {
    format!(
        r#"
[roles]
ops = ["alerts:*", "deploy:*"]
dev = ["deploy:staging"]
[http]
listen = "127.0.0.1:0"
[channels]
alerts = {ALERTS}
[alertmanager]
url = "{alertmanager}"
timeout = "3s"
[alerts]
webhook_token = "file:{}"
[[alerts.routes]]
channel = {ALERTS}
{more}
"#,
        token_file.display()
    )
}

/// Pushes one alert into Alertmanager (`endsAt` now: resolved).

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn alert_groups_from_the_real_alertmanager_are_silenced_acked_and_expired(pool: PgPool) {
    if !support::prerequisites::program(ALERTMANAGER, "Debian: apt install prometheus-alertmanager")
    {
        return;
    }
    // The bot first (its HTTP port is the webhook), then Alertmanager on the port the bot's
    // config names.
    let am_port = free_port();
    let token = tempfile::NamedTempFile::new().expect("token file");
    std::fs::write(token.path(), TOKEN).expect("token");
    let toml = config(&format!("http://127.0.0.1:{am_port}"), token.path());
    let mut bot = TestBot::with_config(pool.clone(), &toml).await;
    let http = bot
        .services
        .as_ref()
        .and_then(|s| s.http_addr)
        .expect("http");
    let am = start_alertmanager(&format!("http://{http}/webhooks/alertmanager"), am_port).await;
    let api = json!({ "alertname": "HighErrorRate", "service": "api", "severity": "critical" });
    push(&am, api.clone(), false).await;
    let posted = bot
        .next_event("the alert message", |e| {
            e.event == "post" && e.channel_id == ALERTS
        })
        .await;
    let message_id = posted.message_id.expect("message id");
    let text = embed_text(&posted);
    assert!(
        text.contains("FIRING") && text.contains("HighErrorRate"),
        "{text}"
    );
    let controls = labels_of_components(&posted);
    assert!(
        controls.iter().any(|c| c == "Ack") && controls.iter().any(|c| c.starts_with("Silence")),
        "{controls:?}"
    );

    // /alerts active reads our store.
    let active = bot.say("ana", &["ops"], "/alerts active service:api").await;
    let text = embed_text(&active);
    assert!(
        text.contains("HighErrorRate") && text.contains("1 group"),
        "{text}"
    );
    let none = bot
        .say("ana", &["ops"], "/alerts active severity:info")
        .await;
    assert!(
        embed_text(&none).contains("Nothing is firing"),
        "{}",
        embed_text(&none)
    );

    // Without alerts:silence: refused, audited, nothing in Alertmanager.
    bot.emulator.member("bo", Some(&["dev".to_owned()]));
    let denied = select(&mut bot, "bo", "Silence", "4h").await;
    assert!(
        denied.content.contains("alerts:silence"),
        "{}",
        denied.content
    );
    assert!(active_silences(&am).await.is_empty());

    // The picker: a real silence on the group's labels, shown on the message.
    let silenced = select(&mut bot, "ana", "Silence", "4h").await;
    assert_eq!(silenced.event, "edit");
    assert_eq!(silenced.message_id, Some(message_id));
    let text = embed_text(&silenced);
    assert!(text.contains("silenced by"), "{text}");
    let active = active_silences(&am).await;
    assert_eq!(active.len(), 1, "{active:?}");
    let silence_id = active[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(active[0]["createdBy"], "ana");
    assert!(
        active[0]["comment"]
            .as_str()
            .expect("comment")
            .contains("opsbot"),
        "{}",
        active[0]["comment"]
    );
    let mut matchers: Vec<String> = active[0]["matchers"]
        .as_array()
        .expect("matchers")
        .iter()
        .map(|m| {
            assert_eq!(m["isRegex"], false);
            format!(
                "{}={}",
                m["name"].as_str().unwrap_or(""),
                m["value"].as_str().unwrap_or("")
            )
        })
        .collect();
    matchers.sort();
    assert_eq!(matchers, ["alertname=HighErrorRate", "service=api"]);
    let controls = labels_of_components(&silenced);
    assert!(controls.iter().any(|c| c == "Unsilence"), "{controls:?}");
    assert!(
        !controls.iter().any(|c| c.starts_with("Silence")),
        "{controls:?}"
    );

    // Unsilence expires it in Alertmanager.
    let unsilenced = bot.click("ana", "Unsilence").await;
    assert_eq!(unsilenced.message_id, Some(message_id));
    assert!(!embed_text(&unsilenced).contains("silenced by"));
    assert_eq!(state_of(&silences(&am).await, &silence_id), "expired");

    // Ack + silence until resolved; the resolve makes opsbot expire it.
    let acked = bot.click("ana", "Ack + silence until resolved").await;
    let text = embed_text(&acked);
    assert!(
        text.contains("acked by") && text.contains("until it resolves"),
        "{} {text}",
        acked.content
    );
    let active = active_silences(&am).await;
    assert_eq!(active.len(), 1, "{active:?}");
    let until_resolved = active[0]["id"].as_str().expect("id").to_owned();

    let mut events = bot.emulator.subscribe();
    push(&am, api.clone(), true).await;
    let resolved = loop {
        // Alertmanager mutes the resolve of a silenced group: opsbot's silence loop (every
        // 10 s) finds the group's alerts gone and stores the resolve itself.
        let event = tokio::time::timeout(Duration::from_secs(40), events.recv())
            .await
            .expect("the resolve in time")
            .expect("events");
        assert!(
            !(event.event == "post" && event.channel_id == ALERTS),
            "a resolve must edit the message, not post another: {event:?}"
        );
        if event.event == "edit"
            && event.message_id == Some(message_id)
            && embed_text(&event).contains("RESOLVED")
        {
            break event;
        }
    };
    assert!(labels_of_components(&resolved).is_empty());
    let started = tokio::time::Instant::now();
    while state_of(&silences(&am).await, &until_resolved) != "expired" {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "opsbot never expired the until-resolved silence"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let expired_by_opsbot: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE command = 'alerts expire silence' AND outcome = 'ok'",
    )
    .fetch_one(&pool)
    .await
    .expect("audit");
    assert_eq!(expired_by_opsbot, 1);

    // /alerts silence: matchers checked before anything is sent.
    let bad = bot
        .say(
            "ana",
            &["ops"],
            "/alerts silence matchers:service duration:2h reason:maintenance",
        )
        .await;
    assert!(bad.content.contains("no operator"), "{}", bad.content);
    let bad = bot
        .say(
            "ana",
            &["ops"],
            "/alerts silence matchers:service=web duration:forever reason:maintenance",
        )
        .await;
    assert!(bad.content.contains("not a duration"), "{}", bad.content);
    assert!(active_silences(&am).await.is_empty());
    let made = bot
        .say(
            "ana",
            &["ops"],
            "/alerts silence matchers:\"service=web, severity=~warn.*\" duration:2h reason:\"db maintenance\"",
        )
        .await;
    assert!(made.content.contains("Silenced"), "{}", made.content);
    let active = active_silences(&am).await;
    assert_eq!(active.len(), 1, "{active:?}");
    assert!(
        active[0]["comment"]
            .as_str()
            .unwrap_or("")
            .contains("db maintenance"),
        "{active:?}"
    );

    // /alerts silences lists it with an Expire button.
    let listed = bot.say("ana", &["ops"], "/alerts silences").await;
    assert!(
        embed_text(&listed).contains("service"),
        "{}",
        embed_text(&listed)
    );
    assert!(labels_of_components(&listed).contains(&"Expire 1".to_owned()));
    let expired = bot.click("ana", "Expire 1").await;
    assert!(expired.content.contains("Expired"), "{}", expired.content);
    assert!(active_silences(&am).await.is_empty());

    // Alertmanager down: a clear error, nothing stored, audited as an error.
    drop(am);
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM alert_silences")
        .fetch_one(&pool)
        .await
        .expect("count");
    let down = bot
        .say(
            "ana",
            &["ops"],
            "/alerts silence matchers:service=web duration:1h reason:test",
        )
        .await;
    assert!(
        down.content.contains("cannot be reached"),
        "{}",
        down.content
    );
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM alert_silences")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(before, after);
    let errors: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE command = 'alerts silence' AND outcome = 'error'",
    )
    .fetch_one(&pool)
    .await
    .expect("audit");
    assert_eq!(errors, 1);
}

async fn deploy_state(pool: &PgPool, version: &str) -> Option<String> {
    sqlx::query_scalar("SELECT state FROM deploys WHERE version = $1 ORDER BY id DESC LIMIT 1")
        .bind(version)
        .fetch_optional(pool)
        .await
        .expect("deploy state")
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn an_alert_after_a_deploy_names_it_and_offers_its_rollback(pool: PgPool) {
    let am_port = free_port();
    let token = tempfile::NamedTempFile::new().expect("token file");
    std::fs::write(token.path(), TOKEN).expect("token");
    let services = r#"
[[services]]
name = "api"
environments = ["staging"]
backend = { kind = "command", program = "true", args = [], timeout = "30s" }
"#;
    let toml = config_with(
        &format!("http://127.0.0.1:{am_port}"),
        token.path(),
        services,
    );
    let mut bot = TestBot::with_config(pool.clone(), &toml).await;
    let http = bot
        .services
        .as_ref()
        .and_then(|s| s.http_addr)
        .expect("http");
    let am = start_alertmanager(&format!("http://{http}/webhooks/alertmanager"), am_port).await;

    for version in ["v1", "v2"] {
        bot.say(
            "ana",
            &["ops"],
            &format!("/deploy run service:api version:{version} env:staging"),
        )
        .await;
        let started = tokio::time::Instant::now();
        while deploy_state(&pool, version).await.as_deref() != Some("succeeded") {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{version} never succeeded"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    push(
        &am,
        json!({ "alertname": "HighLatency", "service": "api", "severity": "warning" }),
        false,
    )
    .await;
    let posted = bot
        .next_event("the alert message", |e| {
            e.event == "post" && e.channel_id == ALERTS
        })
        .await;
    let text = embed_text(&posted);
    assert!(
        text.contains("after deploy") && text.contains("api v2"),
        "{text}"
    );
    let controls = labels_of_components(&posted);
    assert!(
        controls.contains(&"Rollback api in staging".to_owned()),
        "{controls:?}"
    );

    // Same policy as /rollback: a member without deploy:staging is refused.
    bot.emulator.member("cy", Some(&[]));
    let denied = bot.click("cy", "Rollback api in staging").await;
    assert!(
        denied.content.contains("deploy:staging"),
        "{}",
        denied.content
    );
    let rolled = bot.click("ana", "Rollback api in staging").await;
    assert!(!rolled.ephemeral, "{rolled:?}");
    let started = tokio::time::Instant::now();
    loop {
        let rollback: Option<(String, bool)> = sqlx::query_as(
            "SELECT version, is_rollback FROM deploys WHERE is_rollback ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&pool)
        .await
        .expect("rollback");
        if let Some((version, _)) = rollback {
            assert_eq!(version, "v1");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no rollback deploy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn a_group_of_200_alerts_fits_discord_and_lists_every_alert_in_a_thread(pool: PgPool) {
    let am_port = free_port();
    let token = tempfile::NamedTempFile::new().expect("token file");
    std::fs::write(token.path(), TOKEN).expect("token");
    let toml = config(&format!("http://127.0.0.1:{am_port}"), token.path());
    let bot = TestBot::with_config(pool.clone(), &toml).await;
    let http = bot
        .services
        .as_ref()
        .and_then(|s| s.http_addr)
        .expect("http");
    let am = start_alertmanager(&format!("http://{http}/webhooks/alertmanager"), am_port).await;
    let mut events = bot.emulator.subscribe();

    let alerts: Vec<Value> = (0..200)
        .map(|i| {
            json!({
                "labels": { "alertname": "DiskFull", "service": "storage", "instance": format!("node-{i:03}") },
                "annotations": { "summary": format!("disk of node-{i:03} is 97% full") },
            })
        })
        .collect();
    let response = reqwest::Client::new()
        .post(format!("{}/api/v2/alerts", am.url))
        .json(&alerts)
        .send()
        .await
        .expect("push");
    assert!(response.status().is_success());

    let mut posted = None;
    let mut thread = None;
    let mut listed = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while listed.len() < 200 {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} alerts listed in the thread", listed.len()))
            .expect("events");
        assert_ne!(event.event, "refused", "Discord would refuse: {event:?}");
        match event.event {
            "post" if event.channel_id == ALERTS => {
                assert!(posted.is_none(), "one message per group: {event:?}");
                posted = Some(event);
            }
            "channel_created" => thread = Some(event.channel_id),
            "post" if Some(event.channel_id) == thread => {
                assert!(event.content.chars().count() <= 2000);
                for word in event
                    .content
                    .split(|c: char| !c.is_alphanumeric() && c != '-')
                {
                    if word.starts_with("node-") {
                        listed.insert(word.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    let posted = posted.expect("the group's message");
    let description = posted.embeds[0]["description"]
        .as_str()
        .expect("description");
    assert!(
        description.contains("more (every alert is listed in the thread)"),
        "{description}"
    );
    assert!(description.chars().count() <= 4096);
    assert!(posted.embeds[0].to_string().contains("FIRING (200)"));
}
