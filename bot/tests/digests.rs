//! Digests end to end: three `opsbot run` processes on one database and one emulator, with a
//! digest every two seconds, post exactly one message per fire time over several fires, and
//! their windows chain without a gap; `opsbot digest run` posts one more through the outbox
//! (delivered by a running replica, audited); `opsbot digest list` prints the next fire times
//! in each digest's zone.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use opsbot::emulator::{EMULATOR_TOKEN, Emulator, GuildSpec};
use sqlx::PgPool;
use support::database_url;
use tokio_util::sync::CancellationToken;

/// How many fire times the test waits for.
const FIRES: usize = 4;
/// Generous: a fire every 2 s, on a busy 2-core machine.
const WAIT: Duration = Duration::from_secs(90);

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
}

fn config(channel: u64) -> String {
    format!(
        r#"
[[digests]]
name = "fast"
cron = "*/2 * * * * *"
timezone = "UTC"
channel = {channel}

[[digests]]
name = "daily"
cron = "0 30 2 * * *"
timezone = "Europe/Berlin"
channel = {channel}
include = ["incidents", "audit"]
when_empty = "skip"
"#
    )
}

fn opsbot(config: &std::path::Path, db: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_opsbot"));
    command
        .arg("--config")
        .arg(config)
        .env("DATABASE_URL", db)
        .env_remove("OPSBOT_CONFIG")
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .kill_on_drop(true);
    command
}

/// (window start, window end) of each digest message but `except` (a message id): the two
/// times of its "From … to …".
fn windows(messages: &[serde_json::Value], except: Option<i64>) -> Vec<(i64, i64)> {
    messages
        .iter()
        .filter(|m| m["embeds"][0]["title"] == "fast digest")
        .filter(|m| {
            let this = m["id"].as_str().and_then(|text| text.parse::<i64>().ok());
            except.is_none_or(|id| this != Some(id))
        })
        .map(|m| {
            let description = m["embeds"][0]["description"].as_str().unwrap_or_default();
            let times: Vec<i64> = description
                .split("<t:")
                .skip(1)
                .filter_map(|rest| rest.split(':').next()?.parse().ok())
                .collect();
            (times[0], times[1])
        })
        .collect()
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn three_replicas_post_one_digest_per_fire_time(pool: PgPool) {
    let shutdown = CancellationToken::new();
    let spec = GuildSpec::default();
    let guild_id = spec.guild_id;
    let emulator = Emulator::start(spec, shutdown.clone())
        .await
        .expect("emulator");
    let channel = emulator.find_channel("general").expect("general").0;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("opsbot.toml");
    std::fs::write(&path, config(channel)).expect("config");
    let db = database_url(&pool);

    let mut replicas = Vec::new();
    for _ in 0..3 {
        let child = opsbot(&path, &db)
            .args(["run", "--log-format", "json"])
            .env("OPSBOT_HTTP_LISTEN", free_addr().to_string())
            .env("OPSBOT_DISCORD_TOKEN", EMULATOR_TOKEN)
            .env("OPSBOT_DISCORD_API_BASE", emulator.base_url())
            .env("OPSBOT_DISCORD_GUILD_IDS", format!("[{guild_id}]"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start opsbot run");
        replicas.push(child);
    }

    let deadline = tokio::time::Instant::now() + WAIT;
    while windows(&emulator.channel_messages(channel), None).len() < FIRES {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{FIRES} digests never arrived: {:?}",
            emulator.channel_messages(channel)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // An operator posts one now, through the outbox; a running replica delivers it.
    let run = opsbot(&path, &db)
        .args(["digest", "run", "fast"])
        .env_remove("OPSBOT_DISCORD_TOKEN")
        .output()
        .await
        .expect("opsbot digest run");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.starts_with("queued digest fast (outbox #"),
        "{stdout}"
    );
    assert!(
        stdout.trim_end().ends_with("; a running opsbot posts it"),
        "{stdout}"
    );
    let outbox_id: i64 = stdout["queued digest fast (outbox #".len()..]
        .split(')')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("outbox id");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status: String = sqlx::query_scalar("SELECT status FROM outbox WHERE id = $1")
            .bind(outbox_id)
            .fetch_one(&pool)
            .await
            .expect("outbox row");
        if status == "sent" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never delivered: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let unknown = opsbot(&path, &db)
        .args(["digest", "run", "weekly"])
        .output()
        .await
        .expect("opsbot digest run weekly");
    assert_eq!(unknown.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(
        stderr.lines().last(),
        Some("error: no digest \"weekly\"; configured: fast, daily"),
        "{stderr}"
    );

    for child in &replicas {
        let pid = nix::unistd::Pid::from_raw(child.id().expect("pid") as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    }
    for child in replicas {
        let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .expect("exits after SIGTERM")
            .expect("output");
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    // Exactly one post per claimed fire time; windows chain (no fire time lost) and no
    // window repeats (no fire time posted twice). The operator's post is the one extra.
    let manual: Option<i64> = sqlx::query_scalar("SELECT message_id FROM outbox WHERE id = $1")
        .bind(outbox_id)
        .fetch_one(&pool)
        .await
        .expect("the operator's message");
    let all = windows(&emulator.channel_messages(channel), None);
    let mut windows = windows(&emulator.channel_messages(channel), manual);
    assert_eq!(all.len(), windows.len() + 1, "the operator's post is there");
    let ends: BTreeSet<i64> = windows.iter().map(|(_, end)| *end).collect();
    assert_eq!(
        ends.len(),
        windows.len(),
        "a fire time posted twice: {windows:?}"
    );
    windows.sort();
    for pair in windows.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "windows chain: {windows:?}");
    }
    let posted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM digest_runs WHERE digest = 'fast' AND status = 'posted'",
    )
    .fetch_one(&pool)
    .await
    .expect("runs");
    // Every claim was delivered before the replicas stopped, or is still in the outbox.
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM digest_runs r JOIN outbox o ON o.id = r.outbox_id WHERE o.status <> 'sent'",
    )
    .fetch_one(&pool)
    .await
    .expect("pending");
    assert_eq!(
        usize::try_from(posted - pending).expect("count"),
        windows.len(),
        "one message per delivered claim: {windows:?}"
    );
    let audited: Vec<(String, String)> = sqlx::query_as(
        "SELECT source, command FROM audit_events WHERE command LIKE 'digest%' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("audit");
    assert!(
        audited.iter().all(
            |(source, command)| (source == "scheduler" && command == "digest post")
                || (source == "shell" && command == "digest run")
        ),
        "{audited:?}"
    );
    assert_eq!(
        audited.iter().filter(|(s, _)| s == "shell").count(),
        2,
        "the operator's run and the refused one: {audited:?}"
    );
    shutdown.cancel();
}

#[test]
fn digest_list_prints_each_next_fire_time_in_its_zone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("opsbot.toml");
    std::fs::write(&path, config(111)).expect("config");
    let list = |after: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_opsbot"))
            .arg("--config")
            .arg(&path)
            .args(["digest", "list", "--after", after])
            .env_remove("DATABASE_URL")
            .env_remove("OPSBOT_CONFIG")
            .output()
            .expect("opsbot digest list");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8")
    };
    insta::assert_snapshot!(list("2026-12-01T12:00:01Z"), @r#"
    fast: next 2026-12-01 12:00:02 UTC (2026-12-01T12:00:02Z), cron "*/2 * * * * *" in UTC, to channel 111
    daily: next 2026-12-02 02:30:00 CET (2026-12-02T01:30:00Z), cron "0 30 2 * * *" in Europe/Berlin, to channel 111
    "#);
    // Across the spring-forward gap, 02:30 (which does not exist that night) fires at 03:30.
    let spring = list("2026-03-28T02:00:00Z");
    assert!(
        spring.contains("daily: next 2026-03-29 03:30:00 CEST (2026-03-29T01:30:00Z)"),
        "{spring}"
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn preview_shows_the_digest_only_to_who_may_see_it(pool: PgPool) {
    let toml = "[roles]\nops = [\"digest:preview\"]\n\n[http]\npublic_url = \"https://ops.example.com\"\n\n[[digests]]\nname = \"daily\"\ncron = \"0 0 9 * * *\"\ntimezone = \"Europe/Berlin\"\nchannel = 1\ninclude = [\"deploys\", \"audit\"]\n";
    let mut bot = support::TestBot::with_config(pool, toml).await;
    let denied = bot.say("mallory", &[], "/digest preview name:daily").await;
    assert!(denied.ephemeral);
    assert!(
        denied.content.contains("`digest:preview`"),
        "{}",
        denied.content
    );
    let shown = bot.say("ana", &["ops"], "/digest preview name:daily").await;
    assert!(shown.ephemeral, "only ana sees it");
    let embed = &shown.embeds[0];
    assert_eq!(embed["title"], "daily digest");
    assert!(
        embed["url"]
            .as_str()
            .is_some_and(|url| url.starts_with("https://ops.example.com/?since=")),
        "{embed}"
    );
    let description = embed["description"].as_str().unwrap_or_default();
    assert!(
        description.contains("**Deploys**: none finished"),
        "{description}"
    );
    assert!(
        description.contains("mallory tried `digest preview` without digest:preview"),
        "{description}"
    );
    let unknown = bot
        .say("ana", &["ops"], "/digest preview name:weekly")
        .await;
    assert!(
        unknown
            .content
            .contains("no digest \"weekly\"; configured: daily"),
        "{}",
        unknown.content
    );
}
