//! Incidents and deploys, and incidents across failures, through the emulator: the incident
//! channel lists recent deploys of its services with a Rollback button each (the /rollback
//! path and policy); a deploy freeze overridden is announced in the incident's channel;
//! reminders fire once across two replicas; a channel Discord failed to create before opsbot
//! stopped is created once by the reconciler after the restart.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use opsbot::config::Config;
use opsbot::discord::GatewaySettings;
use opsbot::emulator::Emulator;
use opsbot::run::{HttpBind, Services};
use sqlx::PgPool;
use support::TestBot;
use tokio_util::sync::CancellationToken;

const INCIDENTS: u64 = 222_000_000_000_000_222;
const CATEGORY: u64 = 444_000_000_000_000_444;

fn config() -> String {
    format!(
        r##"
[roles]
ops = ["incident:*", "deploy:*"]
dev = ["deploy:production"]
viewer = []
[http]
listen = "127.0.0.1:0"
[channels]
incidents = {INCIDENTS}
incident_category = {CATEGORY}
[incidents.severities.sev1]
description = "customer-facing outage"
reminder = "15m"
freeze_deploys = true
[incidents.severities.sev3]
description = "degraded"
[[services]]
name = "api"
environments = ["staging", "production"]
backend = {{ kind = "command", program = "true", args = [], timeout = "30s" }}
"##
    )
}

/// Waits until `check` holds (the tracker, reconciler and dispatcher run in the background).
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let started = tokio::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `content` with Discord timestamps (`<t:1796137556:R>`) replaced by `<t:…:R>`.
fn without_times(content: &str) -> String {
    let mut out = String::new();
    let mut rest = content;
    while let Some(start) = rest.find("<t:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 3..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        out.push_str("<t:…");
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

async fn succeeded_deploys(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM deploys WHERE state = 'succeeded'")
        .fetch_one(pool)
        .await
        .expect("count")
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn the_incident_channel_offers_rollback_of_recent_deploys(pool: PgPool) {
    let mut bot = TestBot::with_config(pool.clone(), &config()).await;
    for version in ["v1", "v2"] {
        let line = format!("/deploy run service:api version:{version} env:production");
        bot.say("ana", &["ops"], &line).await;
        let want = if version == "v1" { 1 } else { 2 };
        eventually("the deploy succeeds", async || {
            (succeeded_deploys(&pool).await == want).then_some(())
        })
        .await;
    }
    let declared = bot
        .say(
            "ana",
            &["ops"],
            "/incident declare title:\"checkout 500s\" severity:sev3 services:api",
        )
        .await;
    assert!(declared.content.contains("#inc-1-"), "{}", declared.content);
    let (channel, _) = bot
        .emulator
        .find_channel("inc-1-checkout-500s")
        .expect("channel");
    let listed = eventually("the recent deploys are listed", async || {
        bot.emulator
            .channel_messages(channel)
            .into_iter()
            .find(|m| {
                m["content"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("**Recent deploys"))
            })
    })
    .await;
    let content = listed["content"].as_str().expect("content");
    insta::assert_snapshot!(without_times(content), @r"
    **Recent deploys of the affected services**
    <t:…:R> · #2 deploy of api → production (v2) by ana
    <t:…:R> · #1 deploy of api → production (v1) by ana
    Rollback goes back to the previous succeeded version, as /rollback does.
    ");
    let buttons: Vec<&str> = listed["components"][0]["components"]
        .as_array()
        .expect("buttons")
        .iter()
        .filter_map(|b| b["label"].as_str())
        .collect();
    assert_eq!(
        buttons,
        ["Rollback api in production"],
        "one per service and environment"
    );

    // The same policy as /rollback: a member without deploy:production is refused.
    let denied = bot.click("vic", "Rollback api in production").await;
    assert!(
        denied.content.contains("deploy:production"),
        "{}",
        denied.content
    );

    let rolled = bot.click("ana", "Rollback api in production").await;
    let shown = format!("{} {:?}", rolled.content, rolled.embeds);
    assert!(shown.contains("v1"), "{shown}");
    let (version, is_rollback): (String, bool) =
        sqlx::query_as("SELECT version, is_rollback FROM deploys ORDER BY id DESC LIMIT 1")
            .fetch_one(&pool)
            .await
            .expect("rollback row");
    assert_eq!((version.as_str(), is_rollback), ("v1", true));
    let audited: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT outcome, args FROM audit_events WHERE command = 'rollback' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("audit");
    assert_eq!(audited[0].0, "denied");
    assert!(
        audited
            .iter()
            .any(|(o, a)| o != "denied" && a["incident"] == 1 && a["deploy_id"] == 2),
        "{audited:?}"
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn a_freeze_override_is_announced_in_the_incident_channel(pool: PgPool) {
    let mut bot = TestBot::with_config(pool.clone(), &config()).await;
    bot.say(
        "ana",
        &["ops"],
        "/incident declare title:\"API down\" severity:sev1 services:api",
    )
    .await;
    let (channel, _) = bot
        .emulator
        .find_channel("inc-1-api-down")
        .expect("channel");
    let refused = bot
        .say(
            "dev",
            &["dev"],
            "/deploy run service:api version:v9 env:production override:true",
        )
        .await;
    assert!(
        refused.content.contains("deploy:override"),
        "{}",
        refused.content
    );
    let overridden = bot
        .say(
            "ana",
            &["ops"],
            "/deploy run service:api version:v9 env:production override:true",
        )
        .await;
    assert!(!overridden.content.contains('❌'), "{}", overridden.content);
    let notice = eventually(
        "the override is announced in the incident channel",
        async || {
            bot.emulator
                .channel_messages(channel)
                .into_iter()
                .find(|m| {
                    m["content"]
                        .as_str()
                        .is_some_and(|c| c.contains("overrode the deploy freeze"))
                })
        },
    )
    .await;
    let content = notice["content"].as_str().expect("content");
    assert!(
        content.contains("ana overrode the deploy freeze"),
        "{content}"
    );
    assert!(content.contains("of incident #1"), "{content}");
    assert!(
        content.contains("api") && content.contains("v9"),
        "{content}"
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn a_reminder_fires_once_across_two_replicas(pool: PgPool) {
    let mut bot = TestBot::with_config(pool.clone(), &config()).await;
    bot.say(
        "ana",
        &["ops"],
        "/incident declare title:\"API down\" severity:sev1 services:api",
    )
    .await;
    // A second replica on the same database.
    let file = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(file.path(), config()).expect("write config");
    let env = BTreeMap::from([("DATABASE_URL".to_owned(), support::database_url(&pool))]);
    let second_config = Config::load_with_env(Some(file.path()), &env).expect("config");
    let shutdown = CancellationToken::new();
    let second = Services::start(&second_config, None, HttpBind::Optional, shutdown.clone())
        .await
        .expect("second replica");
    let first = bot.services.as_ref().expect("services").desk.clone();

    // 16 minutes on: the 15 minute update reminder (and the commander reminder) are due.
    let later = chrono::Utc::now() + chrono::Duration::minutes(16);
    let (a, b) = tokio::join!(
        first.incident_remind(later),
        second.desk.incident_remind(later)
    );
    let sent = a.expect("first") + b.expect("second");
    assert_eq!(
        sent, 2,
        "one update and one commander reminder, from either replica"
    );
    // Asked again, at the same or a slightly later time, neither sends it twice.
    let again = first
        .incident_remind(later + chrono::Duration::seconds(30))
        .await
        .expect("again")
        + second.desk.incident_remind(later).await.expect("again");
    assert_eq!(again, 0);
    let claimed: Vec<(String, i64)> =
        sqlx::query_as("SELECT kind, count(*) FROM incident_reminders GROUP BY kind ORDER BY kind")
            .fetch_all(&pool)
            .await
            .expect("reminders");
    assert_eq!(
        claimed,
        [("commander".to_owned(), 1), ("update".to_owned(), 1)]
    );
    let (channel, _) = bot
        .emulator
        .find_channel("inc-1-api-down")
        .expect("channel");
    let reminders = eventually("both reminders are posted", async || {
        let posted: Vec<String> = bot
            .emulator
            .channel_messages(channel)
            .into_iter()
            .filter_map(|m| m["content"].as_str().map(str::to_owned))
            .filter(|c| c.contains("⏰"))
            .collect();
        (posted.len() >= 2).then_some(posted)
    })
    .await;
    assert_eq!(reminders.len(), 2, "{reminders:#?}");
    shutdown.cancel();
    second.stop().await.expect("stop");
}

/// A replica of the bot on `config`, connected to `emulator`, stopped by `stop` alone (the
/// emulator keeps running, as Discord does when opsbot dies).
async fn replica(config: &Config, emulator: &Emulator, stop: CancellationToken) -> Services {
    let settings = GatewaySettings {
        token: emulator.token().to_owned(),
        guild_ids: vec![emulator.guild_id()],
        api_base: emulator.base_url().to_owned(),
        source: opsbot_commands::Source::Discord,
    };
    Services::start(config, Some(settings), HttpBind::Optional, stop)
        .await
        .expect("services")
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn a_channel_not_created_before_a_restart_is_created_once_after_it(pool: PgPool) {
    let file = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(file.path(), config()).expect("write config");
    let env = BTreeMap::from([("DATABASE_URL".to_owned(), support::database_url(&pool))]);
    let config = Config::load_with_env(Some(file.path()), &env).expect("config");
    let discord = CancellationToken::new();
    let _stop_discord = discord.clone().drop_guard();
    let emulator = Emulator::start(opsbot::shell::guild_spec(&config), discord.clone())
        .await
        .expect("emulator");
    let mut events = emulator.subscribe();
    let guild = emulator.guild_id();
    let first_life = discord.child_token();
    let first = replica(&config, &emulator, first_life.clone()).await;
    eventually("the bot registers its commands", async || {
        emulator.commands_registered().then_some(())
    })
    .await;

    // The incident commits, then Discord fails to create its channel; opsbot stops before
    // its reconciler gets another chance.
    emulator.script_failure(
        Some("POST"),
        &format!("/guilds/{guild}/channels"),
        500,
        1,
        0.0,
    );
    let ana = emulator.member("ana", Some(&["ops".to_owned()]));
    let general = emulator.find_channel("general").expect("general").0;
    let interaction = emulator
        .type_line(
            ana,
            general,
            "/incident declare title:\"API down\" severity:sev3",
        )
        .expect("typed");
    let declared = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let event = events.recv().await.expect("events");
            if event.interaction_id == Some(interaction) && event.event == "reply" {
                return event;
            }
        }
    })
    .await
    .expect("the declare answer");
    assert!(
        declared.content.contains("its channel is being created"),
        "{}",
        declared.content
    );
    first.stop().await.expect("stop");
    assert!(emulator.find_channel("inc-1-api-down").is_none());
    let unplaced: i64 =
        sqlx::query_scalar("SELECT count(*) FROM incidents WHERE channel_id IS NULL")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(unplaced, 1, "committed without a channel");

    // After the restart the reconciler creates it, once.
    let second = replica(&config, &emulator, discord.child_token()).await;
    let (channel, _) = eventually("the reconciler creates the channel", async || {
        emulator.find_channel("inc-1-api-down")
    })
    .await;
    // Discord has the channel a moment before the reconciler's transaction stores its id.
    let stored: i64 = eventually("the channel id is stored", async || {
        sqlx::query_scalar::<_, Option<i64>>("SELECT channel_id FROM incidents WHERE id = 1")
            .fetch_one(&pool)
            .await
            .expect("incident")
    })
    .await;
    assert_eq!(stored, channel as i64);
    // More reconciler rounds change nothing: still one channel, with its summary pinned.
    second.desk.incident_reconcile().await.expect("reconcile");
    second.desk.incident_reconcile().await.expect("reconcile");
    let channels: Vec<String> = emulator
        .channels()
        .into_iter()
        .map(|c| c.1)
        .filter(|name| name.starts_with("inc-1-"))
        .collect();
    assert_eq!(channels, ["inc-1-api-down"]);
    let creates = emulator
        .requests()
        .iter()
        .filter(|r| r.as_str() == format!("POST /api/v10/guilds/{guild}/channels"))
        .count();
    assert_eq!(
        creates, 2,
        "the failed attempt before the restart, one after"
    );
    eventually("the summary is pinned", async || {
        emulator
            .channel_messages(channel)
            .into_iter()
            .find(|m| m["pinned"] == true)
    })
    .await;
    second.stop().await.expect("stop");
}

/// Discord creates the channel but its answer is lost: the declare says the channel is on its
/// way, and the reconciler adopts the channel Discord made (by its name) instead of making a
/// second one.
#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn a_channel_whose_answer_was_lost_is_adopted_not_made_twice(pool: PgPool) {
    let mut bot = TestBot::with_config(pool.clone(), &config()).await;
    let guild = bot.emulator.guild_id();
    bot.emulator
        .script_lost_answer(Some("POST"), &format!("/guilds/{guild}/channels"), 1);
    let declared = bot
        .say(
            "ana",
            &["ops"],
            "/incident declare title:\"Queue stuck\" severity:sev3",
        )
        .await;
    assert!(
        declared.content.contains("its channel is being created"),
        "{}",
        declared.content
    );
    let (made, _) = bot
        .emulator
        .find_channel("inc-1-queue-stuck")
        .expect("Discord made the channel");
    let desk = &bot.services.as_ref().expect("services").desk;
    desk.incident_reconcile().await.expect("reconcile");
    desk.incident_reconcile().await.expect("reconcile");
    let stored: Option<i64> = sqlx::query_scalar("SELECT channel_id FROM incidents WHERE id = 1")
        .fetch_one(&pool)
        .await
        .expect("incident");
    assert_eq!(
        stored,
        Some(made as i64),
        "the channel Discord made, adopted"
    );
    let channels = bot
        .emulator
        .channels()
        .into_iter()
        .filter(|c| c.1.starts_with("inc-1-"))
        .count();
    assert_eq!(channels, 1);
    let creates = bot
        .emulator
        .requests()
        .iter()
        .filter(|r| r.as_str() == format!("POST /api/v10/guilds/{guild}/channels"))
        .count();
    assert_eq!(creates, 1, "never asked to create it again");
    eventually("the summary is posted in the adopted channel", async || {
        (!bot.emulator.channel_messages(made).is_empty()).then_some(())
    })
    .await;
}
