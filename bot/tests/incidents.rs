//! Incidents end to end: the real bot against the emulator and real Postgres — declare
//! (channel under the category with a topic, pinned summary, announcement pinging the
//! responders), a change from inside the channel (topic edited, not reposted), a command in
//! the wrong channel, a denial, the deploy freeze, resolve and archive.

mod support;

use std::time::Duration;

use sqlx::PgPool;
use support::TestBot;

const INCIDENTS: u64 = 222_000_000_000_000_222;
const CATEGORY: u64 = 444_000_000_000_000_444;
const ARCHIVE: u64 = 555_000_000_000_000_555;

fn config() -> String {
    format!(
        r##"
[roles]
ops = ["incident:*", "deploy:*"]
oncall = ["incident:update"]
dev = ["deploy:production"]
[http]
listen = "127.0.0.1:0"
[channels]
incidents = {INCIDENTS}
incident_category = {CATEGORY}
incident_archive_category = {ARCHIVE}
[incidents.severities.sev1]
description = "customer-facing outage"
color = "#d83c3e"
reminder = "15m"
responders = ["oncall"]
freeze_deploys = true
[[services]]
name = "api"
environments = ["staging", "production"]
backend = {{ kind = "command", program = "true", args = [], timeout = "30s" }}
"##
    )
}

/// Waits until `check` holds (the reconciler and dispatcher run in the background).
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = tokio::time::Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn an_incident_is_declared_run_from_its_channel_and_freezes_deploys(pool: PgPool) {
    let mut bot = TestBot::with_config(pool.clone(), &config()).await;

    let denied = bot
        .say(
            "dev",
            &["dev"],
            "/incident declare title:\"x\" severity:sev1",
        )
        .await;
    assert!(
        denied.content.contains("incident:declare"),
        "{}",
        denied.content
    );

    let mut events = bot.emulator.subscribe();
    let declared = bot
        .say(
            "ana",
            &["ops"],
            "/incident declare title:\"API 5xx on checkout\" severity:sev1 services:api",
        )
        .await;
    assert!(
        declared.content.contains("#inc-1-api-5xx-on-checkout"),
        "{}",
        declared.content
    );
    let (channel, _) = bot
        .emulator
        .find_channel("inc-1-api-5xx-on-checkout")
        .expect("the incident channel");
    let json = bot.emulator.channel_json(channel).expect("channel");
    assert_eq!(json["parent_id"], CATEGORY.to_string());
    assert_eq!(
        json["topic"],
        "sev1 · investigating · commander: none yet · API 5xx on checkout"
    );

    let announcement = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let event = events.recv().await.expect("events");
            if event.channel_id == INCIDENTS && event.event == "post" {
                return event;
            }
        }
    })
    .await
    .expect("the announcement");
    assert!(
        announcement.content.contains("API 5xx on checkout"),
        "{}",
        announcement.content
    );
    assert_eq!(
        announcement.pings.roles.len(),
        1,
        "{:?}",
        announcement.pings
    );

    // The summary is posted by the outbox and pinned by the reconciler.
    eventually("the summary is pinned", || {
        bot.emulator
            .channel_messages(channel)
            .into_iter()
            .find(|m| m["pinned"] == true)
    })
    .await;

    // Outside the incident's channel, with no id: it says where to run it.
    let elsewhere = bot
        .say("ana", &["ops"], "/incident status state:identified")
        .await;
    assert!(
        elsewhere.content.contains("not an incident channel"),
        "{}",
        elsewhere.content
    );

    // Inside the channel the incident is implied; the topic is edited.
    let ana = bot.emulator.member("ana", None);
    let interaction = bot
        .emulator
        .type_line(
            ana,
            channel,
            "/incident status state:identified text:\"bad config push\"",
        )
        .expect("typed");
    let update = bot.answer_to(interaction).await;
    assert!(update.content.contains("identified"), "{}", update.content);
    eventually("the topic follows the status", || {
        let json = bot.emulator.channel_json(channel)?;
        json["topic"]
            .as_str()
            .filter(|t| t.starts_with("sev1 · identified"))
            .map(str::to_owned)
    })
    .await;

    // An open sev1 on api freezes deploys of api to production.
    let refused = bot
        .say(
            "dev",
            &["dev"],
            "/deploy run service:api version:v2 env:production",
        )
        .await;
    assert!(
        refused.content.contains("open incident #1"),
        "{}",
        refused.content
    );

    let interaction = bot
        .emulator
        .type_line(
            ana,
            channel,
            "/incident resolve summary:\"rolled back the config\"",
        )
        .expect("typed");
    let resolved = bot.answer_to(interaction).await;
    assert!(
        resolved.content.contains("resolved"),
        "{}",
        resolved.content
    );
    eventually("the channel is archived", || {
        let json = bot.emulator.channel_json(channel)?;
        (json["parent_id"].as_str() == Some(ARCHIVE.to_string().as_str())).then_some(())
    })
    .await;
    let channels: i64 =
        sqlx::query_scalar("SELECT count(*) FROM incidents WHERE channel_id IS NOT NULL")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(channels, 1);
}
