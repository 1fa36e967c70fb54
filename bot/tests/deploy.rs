//! Deploys end to end: the real bot (`opsbot shell`'s wiring) against the emulator and real
//! Postgres: approval buttons, live status edits, the thread, announcements, rollback, and
//! the webhook backend's signed round trip.

mod support;

use std::time::Duration;

use opsbot_commands::deploy::backends::webhook;
use sqlx::PgPool;
use support::TestBot;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DEPLOYS: u64 = 111_000_000_000_000_111;

fn config(backend: &str) -> String {
    format!(
        r#"
[roles]
ops = ["deploy:*", "audit:*"]
lead = ["deploy:production", "deploy:approve:production"]
dev = ["deploy:staging"]
[http]
listen = "127.0.0.1:0"
[channels]
deploys = {DEPLOYS}
[environments.production]
approvals = 1
[[services]]
name = "worker"
environments = ["staging", "production"]
backend = {backend}
"#
    )
}

fn script() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("deploy.sh");
    std::fs::write(
        &file,
        "#!/usr/bin/env bash\necho \"deploying $1 $2 to $3\"\nsleep 0.2\nif [[ \"$2\" == *bad* ]]; then echo 'health check failed' >&2; exit 1; fi\necho \"$1 $2 is live\"\n",
    )
    .expect("script");
    let mut perms = std::fs::metadata(&file).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&file, perms).expect("chmod");
    let program = file.display().to_string();
    (dir, program)
}

fn title(event: &opsbot::emulator::EmulatorEvent) -> String {
    event
        .embeds
        .first()
        .and_then(|e| e["title"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn description(event: &opsbot::emulator::EmulatorEvent) -> String {
    event
        .embeds
        .first()
        .and_then(|e| e["description"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn buttons(event: &opsbot::emulator::EmulatorEvent) -> Vec<String> {
    event
        .components
        .iter()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["label"].as_str().map(str::to_owned))
        .collect()
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn an_approved_deploy_runs_to_success_with_live_status_and_a_thread(pool: PgPool) {
    let (_dir, program) = script();
    let backend = format!(
        r#"{{ kind = "command", program = "{program}", args = ["{{service}}", "{{version}}", "{{environment}}"], timeout = "30s" }}"#
    );
    let mut bot = TestBot::with_config(pool.clone(), &config(&backend)).await;

    let requested = bot
        .say("ana", &["ops"], r#"/deploy run service:worker version:v1.4.0 env:production reason:"new queue settings""#)
        .await;
    assert!(!requested.ephemeral, "the approval request is public");
    assert_eq!(title(&requested), "deploy #1 worker v1.4.0 → production");
    assert!(
        description(&requested).starts_with("**requested**"),
        "{}",
        description(&requested)
    );
    assert_eq!(buttons(&requested), ["Approve", "Reject"]);

    let own = bot.click("ana", "Approve").await;
    assert!(own.ephemeral);
    assert!(
        own.content
            .contains("approvals must come from someone else"),
        "{}",
        own.content
    );

    let approved = bot.click("bo", "Approve").await;
    // bo has no role yet: denied, naming the permission.
    assert!(
        approved.content.contains("deploy:approve:production"),
        "{}",
        approved.content
    );
    bot.emulator.member("bo", Some(&["lead".to_string()]));
    let approved = bot.click("bo", "Approve").await;
    assert_eq!(approved.event, "edit");
    assert_eq!(
        approved.message_id, requested.message_id,
        "the status message itself changes"
    );
    assert!(buttons(&approved).is_empty());

    // Background work (the thread, the outcome, the announcement) is waited for in the
    // emulator's state, not as events: on a busy machine an event can arrive before the
    // approval's answer has been read, and would then have gone by.
    let headline = "deploy #1 worker v1.4.0 → production";
    let thread = bot
        .wait_for("the deploy's thread", |emulator| {
            emulator
                .channels()
                .into_iter()
                .find(|(_, name, _)| name == headline)
        })
        .await;
    let status_id = requested
        .message_id
        .expect("the status message")
        .to_string();
    let general = bot.general;
    let succeeded = bot
        .wait_for("the status message edited to succeeded", |emulator| {
            emulator.channel_messages(general).into_iter().find(|m| {
                m["id"] == status_id.as_str() && m["embeds"][0]["description"] == "**succeeded**"
            })
        })
        .await;
    assert!(
        succeeded["embeds"][0]["title"]
            .as_str()
            .unwrap_or_default()
            .contains("worker v1.4.0 → production"),
        "{succeeded}"
    );
    let (deploys, _) = bot.emulator.find_channel("deploys").expect("#deploys");
    let announced = bot
        .wait_for("the announcement", |emulator| {
            emulator
                .channel_messages(deploys)
                .into_iter()
                .filter_map(|m| m["content"].as_str().map(str::to_owned))
                .find(|content| content.contains("**succeeded**"))
        })
        .await;
    assert_eq!(
        announced,
        "✅ deploy #1 worker v1.4.0 → production **succeeded** (by opsbot)"
    );
    let thread_id = thread.0;
    bot.wait_for("the deploy's progress in its thread", |emulator| {
        emulator
            .channel_messages(thread_id)
            .iter()
            .filter_map(|m| m["content"].as_str())
            .any(|l| l.contains("deploying worker v1.4.0 to production"))
            .then_some(())
    })
    .await;

    let status = bot
        .say("cy", &["dev"], "/deploy status service:worker")
        .await;
    assert!(
        description(&status).contains("**worker** v1.4.0 → production: **succeeded**"),
        "{}",
        description(&status)
    );

    let rollback = bot
        .say("ana", &["ops"], "/rollback service:worker env:production")
        .await;
    assert!(
        rollback.content.contains("no earlier succeeded version"),
        "{}",
        rollback.content
    );

    let story: Vec<String> = opsbot_commands::audit::tail(&pool, 50)
        .await
        .expect("tail")
        .into_iter()
        .filter(|e| e.command.starts_with("deploy") && e.outcome != "ok")
        .map(|e| format!("{} {} {}", e.actor_name, e.command, e.outcome))
        .collect();
    assert_eq!(
        story,
        [
            "ana deploy run requested",
            "ana deploy approve denied",
            "bo deploy approve denied",
            "bo deploy approve approved",
            "opsbot deploy run started",
            "opsbot deploy run succeeded",
        ]
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn webhook_deploys_report_back_signed_and_bad_signatures_change_nothing(pool: PgPool) {
    let deployer = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks/opsbot"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&deployer)
        .await;
    let secret_file = tempfile::NamedTempFile::new().expect("secret");
    std::fs::write(secret_file.path(), "s3cret\n").expect("write secret");
    let backend = format!(
        r#"{{ kind = "webhook", url = "{}/hooks/opsbot", secret = "file:{}", timeout = "5m" }}"#,
        deployer.uri(),
        secret_file.path().display()
    );
    let mut bot = TestBot::with_config(pool.clone(), &config(&backend)).await;
    let reply = bot
        .say(
            "ana",
            &["ops"],
            "/deploy run service:worker version:v2 env:staging",
        )
        .await;
    assert!(title(&reply).starts_with("deploy #1 worker v2 → staging"));

    // The deployer got a signed request.
    let mut received = Vec::new();
    for _ in 0..200 {
        received = deployer.received_requests().await.expect("recording");
        if !received.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let request = received.first().expect("the deployer was called");
    let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
    webhook::verify(
        b"s3cret",
        header(webhook::TIMESTAMP_HEADER),
        header(webhook::SIGNATURE_HEADER),
        &webhook::target("POST", "/hooks/opsbot"),
        &request.body,
        chrono::Utc::now().timestamp(),
    )
    .expect("opsbot signs what it sends, bound to the deployer's path");
    let body: serde_json::Value = serde_json::from_slice(&request.body).expect("json");
    assert_eq!(
        (body["deploy_id"].as_i64(), body["service"].as_str()),
        (Some(1), Some("worker"))
    );

    let addr = bot
        .services
        .as_ref()
        .and_then(|s| s.http_addr)
        .expect("http server");
    let url = format!("http://{addr}/webhooks/deploy/1");
    let http = reqwest::Client::new();
    let post = |body: &'static str, secret: &'static [u8]| {
        let now = chrono::Utc::now().timestamp();
        http.post(&url)
            .header(webhook::TIMESTAMP_HEADER, now.to_string())
            .header(
                webhook::SIGNATURE_HEADER,
                webhook::sign(
                    secret,
                    now,
                    &webhook::target("POST", &webhook::report_path(1)),
                    body.as_bytes(),
                ),
            )
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let forged = post(r#"{"status":"succeeded","message":"trust me"}"#, b"wrong")
        .await
        .expect("post");
    assert_eq!(forged.status(), 401);
    let deploy = opsbot_commands::deploy::deploy_by_id(&pool, 1)
        .await
        .expect("read")
        .expect("deploy");
    assert_eq!(
        deploy.state.as_str(),
        "running",
        "a bad signature changes nothing"
    );

    let progress = post(
        r#"{"status":"running","message":"canary at 10%"}"#,
        b"s3cret",
    )
    .await
    .expect("post");
    assert_eq!(progress.status(), 200);
    let done = post(r#"{"status":"succeeded","message":"all regions live","url":"https://deployer.example/runs/7"}"#, b"s3cret").await.expect("post");
    assert_eq!(done.status(), 200);
    let deploy = opsbot_commands::deploy::deploy_by_id(&pool, 1)
        .await
        .expect("read")
        .expect("deploy");
    assert_eq!(
        (deploy.state.as_str(), deploy.detail.as_str()),
        ("succeeded", "all regions live")
    );
    let again = post(r#"{"status":"failed"}"#, b"s3cret")
        .await
        .expect("post");
    assert_eq!(
        again.status(),
        409,
        "a finished deploy takes no more reports"
    );
    let outcomes: Vec<String> = opsbot_commands::audit::tail(&pool, 50)
        .await
        .expect("tail")
        .into_iter()
        .filter(|e| e.source == "webhook")
        .map(|e| format!("{} {}", e.command, e.outcome))
        .collect();
    assert_eq!(
        outcomes,
        // The forged report is not in the trail row by row: it is counted and sampled.
        [
            "deploy report ok",
            "deploy run succeeded",
            "deploy report conflict"
        ]
    );
}

/// What a reply may notify, as the emulator recorded it: `allowed_mentions` sent with an
/// empty `parse` list, and nobody actually pinged.
fn assert_pings_nobody(event: &opsbot::emulator::EmulatorEvent, what: &str) {
    let parse = event
        .allowed_mentions
        .as_ref()
        .map(|a| a["parse"].clone())
        .unwrap_or_else(|| panic!("{what}: sent without allowed_mentions"));
    assert_eq!(
        parse,
        serde_json::json!([]),
        "{what}: {:?}",
        event.allowed_mentions
    );
    assert!(event.pings.nobody(), "{what} pings {:?}", event.pings);
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn replies_that_echo_a_mention_ping_nobody(pool: PgPool) {
    let (_dir, program) = script();
    let backend = format!(
        r#"{{ kind = "command", program = "{program}", args = ["{{service}}", "{{version}}", "{{environment}}"], timeout = "30s" }}"#
    );
    let mut bot = TestBot::with_config(pool.clone(), &config(&backend)).await;
    let bo = bot.emulator.member("bo", Some(&["dev".to_owned()]));
    let reason = format!("<@{bo}> @everyone @here broke staging");

    let locked = bot
        .say(
            "ana",
            &["ops"],
            &format!(r#"/deploy lock service:worker env:staging reason:"{reason}""#),
        )
        .await;
    assert!(!locked.ephemeral, "the lock is announced publicly");
    assert!(locked.content.contains(&reason), "{}", locked.content);
    assert_pings_nobody(&locked, "the lock reply");

    let unlocked = bot
        .say("ana", &["ops"], "/deploy unlock service:worker env:staging")
        .await;
    assert!(unlocked.content.contains(&reason), "{}", unlocked.content);
    assert_pings_nobody(&unlocked, "the unlock reply");

    let denied = bot
        .say(
            "bo",
            &["dev"],
            &format!(r#"/deploy lock service:worker env:staging reason:"{reason}""#),
        )
        .await;
    assert!(denied.content.starts_with('⛔'), "{}", denied.content);
    assert_pings_nobody(&denied, "a refusal");

    // The public status message and the button update that replaces it.
    let requested = bot
        .say(
            "ana",
            &["ops"],
            &format!(r#"/deploy run service:worker version:v2 env:production reason:"{reason}""#),
        )
        .await;
    assert_pings_nobody(&requested, "the deploy status message");
    let rejected = bot.click("ana", "Reject").await;
    assert_eq!(rejected.message_id, requested.message_id);
    assert_pings_nobody(&rejected, "the button update");
}

/// Discord's documented limits on one message (content, embeds), asserted on what was sent.
fn assert_within_discord_limits(event: &opsbot::emulator::EmulatorEvent, what: &str) {
    let chars = |v: &serde_json::Value| v.as_str().map_or(0, |s| s.chars().count());
    assert_ne!(event.event, "refused", "{what}: Discord would refuse it");
    assert!(
        event.content.chars().count() <= 2000,
        "{what}: content too long"
    );
    assert!(event.embeds.len() <= 10, "{what}: too many embeds");
    let mut total = 0;
    for embed in &event.embeds {
        assert!(chars(&embed["title"]) <= 256, "{what}: title");
        assert!(chars(&embed["description"]) <= 4096, "{what}: description");
        assert!(chars(&embed["footer"]["text"]) <= 2048, "{what}: footer");
        let fields = embed["fields"].as_array().cloned().unwrap_or_default();
        assert!(fields.len() <= 25, "{what}: fields");
        total +=
            chars(&embed["title"]) + chars(&embed["description"]) + chars(&embed["footer"]["text"]);
        for field in fields {
            assert!(chars(&field["name"]) <= 256, "{what}: field name");
            assert!(chars(&field["value"]) <= 1024, "{what}: field value");
            total += chars(&field["name"]) + chars(&field["value"]);
        }
    }
    assert!(total <= 6000, "{what}: embeds hold {total} characters");
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn a_3000_character_reason_with_everyone_stays_within_limits_and_pings_nobody(pool: PgPool) {
    let (_dir, program) = script();
    let backend = format!(
        r#"{{ kind = "command", program = "{program}", args = ["{{service}}", "{{version}}", "{{environment}}"], timeout = "30s" }}"#
    );
    let mut bot = TestBot::with_config(pool.clone(), &config(&backend)).await;
    let reason = format!("@everyone @here {}", "x".repeat(3000));

    let requested = bot
        .say(
            "ana",
            &["ops"],
            &format!(r#"/deploy run service:worker version:v7 env:staging reason:"{reason}""#),
        )
        .await;
    assert!(!requested.ephemeral, "{}", requested.content);
    let shown = format!(
        "{}{}",
        requested.content,
        serde_json::Value::Array(requested.embeds.clone())
    );
    assert!(
        shown.contains("@everyone @here xxx"),
        "the reason is shown: {shown}"
    );
    assert_within_discord_limits(&requested, "the status reply");
    assert_pings_nobody(&requested, "the status reply");

    // Everything the deploy posts until its announcement: status edits, the thread, the
    // announcement itself.
    let mut thread = None;
    loop {
        let event = bot.next_event("the deploy's posts", |_| true).await;
        if event.event == "channel_created" {
            thread = Some(event.channel_id);
            continue;
        }
        let what = format!("{} in {}", event.event, event.channel);
        assert_within_discord_limits(&event, &what);
        assert_pings_nobody(&event, &what);
        if event.event == "post"
            && event.channel == "deploys"
            && event.content.contains("**succeeded**")
        {
            break;
        }
    }
    let thread = thread.expect("the deploy has a thread");
    let posts = bot.emulator.channel_messages(thread);
    assert!(!posts.is_empty(), "the thread has the deploy's output");
    for post in posts {
        let content = post["content"].as_str().unwrap_or_default();
        assert!(content.chars().count() <= 2000, "a thread post: {content}");
    }
}
