//! The emulator as Discord: nonces, scripted 429/500 storms, and the outbox delivering
//! through them exactly once.

use std::collections::HashMap;
use std::time::Duration;

use opsbot::dispatch::{DispatchSettings, Dispatcher};
use opsbot::emulator::{Emulator, GuildSpec};
use opsbot_commands::chat::Message;
use opsbot_commands::outbox;
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const DEPLOYS: u64 = 111_000_000_000_000_111;

async fn emulator(shutdown: &CancellationToken) -> Emulator {
    let spec = GuildSpec {
        channels: vec![(DEPLOYS, "deploys".to_owned())],
        ..GuildSpec::default()
    };
    Emulator::start(spec, shutdown.clone())
        .await
        .expect("emulator")
}

#[tokio::test]
async fn a_repeated_nonce_with_enforce_nonce_returns_the_same_message() {
    let shutdown = CancellationToken::new();
    let emulator = emulator(&shutdown).await;
    let client = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        client
            .post(format!(
                "{}/api/v10/channels/{DEPLOYS}/messages",
                emulator.base_url()
            ))
            .header("authorization", format!("Bot {}", emulator.token()))
            .json(&body)
            .send()
    };
    let body = json!({"content": "hello", "nonce": "n-1", "enforce_nonce": true});
    let first: serde_json::Value = post(body.clone())
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    let second: serde_json::Value = post(body).await.expect("post").json().await.expect("json");
    assert_eq!(first["id"], second["id"]);
    assert_eq!(emulator.channel_messages(DEPLOYS).len(), 1);
    // Without enforce_nonce, Discord creates a second message.
    post(json!({"content": "hello", "nonce": "n-1"}))
        .await
        .expect("post");
    assert_eq!(emulator.channel_messages(DEPLOYS).len(), 2);
    // A wrong token is refused, as Discord does.
    let refused = client
        .post(format!(
            "{}/api/v10/channels/{DEPLOYS}/messages",
            emulator.base_url()
        ))
        .header("authorization", "Bot wrong")
        .json(&json!({"content": "x"}))
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 401);
    shutdown.cancel();
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn the_outbox_delivers_every_message_once_through_a_429_and_500_storm(pool: PgPool) {
    const MESSAGES: usize = 40;
    let shutdown = CancellationToken::new();
    let emulator = emulator(&shutdown).await;
    let path = format!("/channels/{DEPLOYS}/messages");
    emulator.script_failure(Some("POST"), &path, 429, 6, 0.02);
    emulator.script_failure(Some("POST"), &path, 500, 6, 0.0);
    emulator.script_failure(Some("POST"), &path, 502, 3, 0.0);
    let mut ids = Vec::new();
    for i in 0..MESSAGES {
        let message = Message::text(format!("deploy {i} succeeded"));
        ids.push(
            outbox::enqueue(&pool, DEPLOYS as i64, &message, None)
                .await
                .expect("enqueue"),
        );
    }
    let settings = DispatchSettings {
        max_attempts: 10,
        base_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        poll_interval: Duration::from_millis(10),
        min_request_spacing: Duration::from_millis(1),
        ..DispatchSettings::default()
    };
    let mut posts = emulator.subscribe();
    // Two dispatchers, as two replicas would run.
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let dispatcher = Dispatcher::new(
                pool.clone(),
                emulator.base_url(),
                secrecy::SecretString::from(emulator.token().to_owned()),
                settings.clone(),
            )
            .expect("dispatcher");
            tokio::spawn(dispatcher.run(shutdown.clone()))
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut seen: HashMap<String, usize> = HashMap::new();
    while seen.len() < MESSAGES {
        let event = tokio::time::timeout_at(deadline, posts.recv())
            .await
            .expect("every message posted in time")
            .expect("event");
        if event.event == "post" {
            *seen.entry(event.content).or_default() += 1;
        }
    }
    // A post is visible before the dispatcher records it as sent: wait for the records.
    for id in &ids {
        loop {
            let row = outbox::status(&pool, *id)
                .await
                .expect("status")
                .expect("row");
            if row.status == "sent" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never recorded as sent: {row:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    shutdown.cancel();
    for task in tasks {
        task.await.expect("dispatcher task");
    }
    let messages = emulator.channel_messages(DEPLOYS);
    assert_eq!(messages.len(), MESSAGES, "no message lost or doubled");
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    let failed = emulator
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST") && r.ends_with(&path))
        .count();
    assert_eq!(
        failed,
        MESSAGES + 6 + 6 + 3,
        "each scripted failure was retried"
    );
}

#[tokio::test]
async fn oauth2_authorization_code_grant_identifies_the_member() {
    let shutdown = CancellationToken::new();
    let emulator = emulator(&shutdown).await;
    let ana = emulator.member("ana", Some(&["ops".to_string()]));
    let (client_id, client_secret) = emulator.oauth_client();
    let base = emulator.base_url();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let redirect_uri = "http://127.0.0.1:9/auth/callback";
    let page = http
        .get(format!("{base}/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", redirect_uri),
            ("scope", "identify guilds.members.read"),
            ("state", "xyz"),
        ])
        .send()
        .await
        .expect("authorize")
        .text()
        .await
        .expect("page");
    let href = page
        .split("id=\"as-ana\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link to authorize as ana")
        .replace("&amp;", "&");
    let approved = http
        .get(format!("{base}{href}"))
        .send()
        .await
        .expect("approve");
    assert!(approved.status().is_redirection());
    let location = approved.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(
        location.starts_with(&format!("{redirect_uri}?code=")),
        "{location}"
    );
    assert!(location.ends_with("&state=xyz"), "{location}");
    let code = location
        .split("code=")
        .nth(1)
        .and_then(|c| c.split('&').next())
        .expect("code");

    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
    ];
    let wrong_secret = http
        .post(format!("{base}/api/v10/oauth2/token"))
        .basic_auth(&client_id, Some("nope"))
        .form(&form)
        .send()
        .await
        .expect("token");
    assert_eq!(wrong_secret.status(), 401);
    let token: serde_json::Value = http
        .post(format!("{base}/api/v10/oauth2/token"))
        .basic_auth(&client_id, Some(&client_secret))
        .form(&form)
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    assert_eq!(token["token_type"], "Bearer");
    let access = token["access_token"].as_str().expect("access token");
    // A code works once.
    let reused = http
        .post(format!("{base}/api/v10/oauth2/token"))
        .basic_auth(&client_id, Some(&client_secret))
        .form(&form)
        .send()
        .await
        .expect("token");
    assert_eq!(reused.status(), 400);

    let me: serde_json::Value = http
        .get(format!("{base}/api/v10/users/@me"))
        .bearer_auth(access)
        .send()
        .await
        .expect("@me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["id"], ana.to_string());
    assert_eq!(me["username"], "ana");
    let member: serde_json::Value = http
        .get(format!(
            "{base}/api/v10/users/@me/guilds/{}/member",
            emulator.guild_id()
        ))
        .bearer_auth(access)
        .send()
        .await
        .expect("member")
        .json()
        .await
        .expect("json");
    assert_eq!(member["roles"].as_array().map(Vec::len), Some(1));
    let bad = http
        .get(format!("{base}/api/v10/users/@me"))
        .bearer_auth("forged")
        .send()
        .await
        .expect("@me");
    assert_eq!(bad.status(), 401);
    shutdown.cancel();
}

#[tokio::test]
async fn attachments_arrive_byte_for_byte_and_the_shell_saves_them() {
    let shutdown = CancellationToken::new();
    let emulator = emulator(&shutdown).await;
    let mut events = emulator.subscribe();
    // A PNG signature and bytes that are not UTF-8.
    let png: Vec<u8> = b"\x89PNG\r\n\x1a\n\x00\xff\xfe--not-a-boundary\r\n".to_vec();
    let boundary = "opsbotboundary";
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"payload_json\"\r\nContent-Type: application/json\r\n\r\n{{\"content\":\"a chart\"}}\r\n").as_bytes());
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"../chart.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes());
    body.extend_from_slice(&png);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let answer = reqwest::Client::new()
        .post(format!(
            "{}/api/v10/channels/{DEPLOYS}/messages",
            emulator.base_url()
        ))
        .header("authorization", format!("Bot {}", emulator.token()))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("post");
    assert!(answer.status().is_success());
    let message: serde_json::Value = answer.json().await.expect("json");
    assert_eq!(message["attachments"][0]["filename"], "../chart.png");
    assert_eq!(message["attachments"][0]["size"], png.len());
    let event = events.recv().await.expect("the post");
    assert_eq!(event.files, vec![("../chart.png".to_owned(), png.clone())]);

    let dir = tempfile::tempdir().expect("tempdir");
    let saved = opsbot::shell::save_attachments(&event, dir.path());
    assert_eq!(saved.len(), 1);
    assert!(
        saved[0].starts_with(&dir.path().display().to_string())
            && saved[0].ends_with("_chart.png")
            && !saved[0].contains(".."),
        "stays inside: {saved:?}"
    );
    assert_eq!(std::fs::read(&saved[0]).expect("saved file"), png);
    let line = opsbot::shell::event_json(&event, None, &saved);
    assert_eq!(line["attachments"], serde_json::json!(saved));
    let style = opsbot::shell::Style {
        color: false,
        zone: opsbot::shell::Zone::Local,
        now: 0,
    };
    let text = opsbot::shell::event_text(&event, &saved, &Default::default(), &style);
    assert!(
        text.contains(&format!("📎 ../chart.png (29 B), saved as {}", saved[0])),
        "{text}"
    );
    shutdown.cancel();
}

/// A multipart body with one file of `size` bytes, as serenity sends it.
fn multipart_with_file(boundary: &str, file: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"payload_json\"\r\n\r\n{{\"content\":\"big\"}}\r\n").as_bytes());
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"big.bin\"\r\n\r\n").as_bytes());
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

#[tokio::test]
async fn files_up_to_discords_10_mib_are_kept_and_larger_ones_refused() {
    let shutdown = CancellationToken::new();
    let emulator = emulator(&shutdown).await;
    let client = reqwest::Client::new();
    let post = |file: Vec<u8>| {
        client
            .post(format!(
                "{}/api/v10/channels/{DEPLOYS}/messages",
                emulator.base_url()
            ))
            .header("authorization", format!("Bot {}", emulator.token()))
            .header("content-type", "multipart/form-data; boundary=b0undary")
            .body(multipart_with_file("b0undary", &file))
            .send()
    };
    let limit = 10 * 1024 * 1024;
    let kept = post(vec![7u8; limit]).await.expect("post");
    assert!(kept.status().is_success(), "{}", kept.status());
    let kept: serde_json::Value = kept.json().await.expect("json");
    assert_eq!(kept["attachments"][0]["size"], limit);
    let refused = post(vec![7u8; limit + 1]).await.expect("post");
    assert_eq!(refused.status(), 413);
    let refused: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(refused["code"], 40005);
    shutdown.cancel();
}

#[tokio::test]
async fn messages_over_discords_limits_are_refused_and_pings_follow_allowed_mentions() {
    let shutdown = CancellationToken::new();
    let emulator = emulator(&shutdown).await;
    let mut events = emulator.subscribe();
    let client = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        client
            .post(format!(
                "{}/api/v10/channels/{DEPLOYS}/messages",
                emulator.base_url()
            ))
            .header("authorization", format!("Bot {}", emulator.token()))
            .json(&body)
            .send()
    };
    // Content over 2000 characters: 400, nothing posted, and a `refused` event says why.
    let long = post(json!({"content": "x".repeat(2001)}))
        .await
        .expect("post");
    assert_eq!(long.status(), 400);
    let body: serde_json::Value = long.json().await.expect("json");
    assert_eq!(body["code"], 50035);
    assert!(emulator.channel_messages(DEPLOYS).is_empty());
    let refused = events.recv().await.expect("event");
    assert_eq!(refused.event, "refused");
    assert!(
        refused.content.contains("2000 or fewer"),
        "{}",
        refused.content
    );
    // `parse` with a list of the same kind is refused, as Discord does.
    let mixed =
        post(json!({"content": "<@1>", "allowed_mentions": {"parse": ["users"], "users": ["1"]}}))
            .await
            .expect("post");
    assert_eq!(mixed.status(), 400);
    let _ = events.recv().await.expect("event");

    // A channel message without allowed_mentions pings everything it mentions …
    post(json!({"content": "@here <@5678> <@&1234>"}))
        .await
        .expect("post");
    let loud = events.recv().await.expect("event");
    assert_eq!(loud.event, "post");
    assert_eq!(loud.allowed_mentions, None);
    assert_eq!(
        (
            loud.pings.users.clone(),
            loud.pings.roles.clone(),
            loud.pings.everyone
        ),
        (vec![5678], vec![1234], true)
    );
    // … and with an empty parse list, nobody.
    post(json!({"content": "@here <@5678> <@&1234>", "allowed_mentions": {"parse": []}}))
        .await
        .expect("post");
    let quiet = events.recv().await.expect("event");
    assert_eq!(quiet.allowed_mentions, Some(json!({"parse": []})));
    assert!(quiet.pings.nobody(), "{:?}", quiet.pings);
    shutdown.cancel();
}
