//! A Discord outage at start stops nothing: the real binary (`opsbot run`) with a token and
//! `[discord] api_base` pointing at a Discord that is not there keeps serving, says so on
//! `/readyz` and in `/metrics`, and connects once Discord (the emulator, at that address)
//! comes back, through one more 500 on `/gateway/bot`.

mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use opsbot::emulator::{EMULATOR_TOKEN, Emulator, GuildSpec};
use sqlx::PgPool;
use support::database_url;
use tokio_util::sync::CancellationToken;

/// The longest the bot may take to notice Discord is back (backoff waits grow to 16 s here).
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(60);

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
}

async fn get(client: &reqwest::Client, url: &str) -> Option<(u16, String)> {
    let response = client.get(url).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// Polls `url` until its body satisfies `done`; returns the last status and body.
async fn wait_for(
    client: &reqwest::Client,
    url: &str,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + RECONNECT_TIMEOUT;
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        if let Some((status, body)) = get(client, url).await {
            if done(&body) {
                return (status, body);
            }
            last = Some((status, body));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: never; last answer from {url}: {last:?}");
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn a_discord_outage_at_start_stops_nothing_and_the_gateway_reconnects(pool: PgPool) {
    let http = free_addr();
    // Nothing listens here until the emulator starts on it.
    let discord = free_addr();
    let spec = GuildSpec::default();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_opsbot"))
        .args(["run", "--log-format", "json"])
        .env("DATABASE_URL", database_url(&pool))
        .env("OPSBOT_HTTP_LISTEN", http.to_string())
        .env("OPSBOT_DISCORD_TOKEN", EMULATOR_TOKEN)
        .env("OPSBOT_DISCORD_API_BASE", format!("http://{discord}"))
        .env("OPSBOT_DISCORD_GUILD_IDS", format!("[{}]", spec.guild_id))
        .env_remove("OPSBOT_CONFIG")
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start opsbot run");
    let client = reqwest::Client::new();
    let readyz = format!("http://{http}/readyz");
    let metrics = format!("http://{http}/metrics");

    let (status, body) = wait_for(&client, &readyz, "/readyz reports the outage", |b| {
        b.contains("gateway: disconnected")
    })
    .await;
    assert_eq!(status, 200, "the database decides readiness: {body}");
    assert!(
        body.contains("retrying in") || body.contains("reconnecting"),
        "{body}"
    );
    assert!(
        !body.contains(EMULATOR_TOKEN),
        "no secrets on /readyz: {body}"
    );
    let (_, text) = get(&client, &metrics).await.expect("/metrics answers");
    assert!(text.contains("opsbot_gateway_connected 0"), "{text}");
    assert!(
        child.try_wait().expect("child status").is_none(),
        "opsbot run keeps running while Discord is unreachable"
    );

    // Discord comes back at that address, answering 500 on /gateway/bot once more.
    let shutdown = CancellationToken::new();
    let emulator = Emulator::start_at(spec, discord, shutdown.clone())
        .await
        .expect("emulator on the bot's api_base");
    emulator.script_failure(Some("GET"), "/gateway/bot", 500, 1, 0.0);
    let (status, body) = wait_for(&client, &readyz, "the gateway reconnects", |b| {
        b.contains("gateway: connected")
    })
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(emulator.commands_registered(), "READY ran the setup");
    let gateway_calls = emulator
        .requests()
        .iter()
        .filter(|r| r.as_str() == "GET /api/v10/gateway/bot")
        .count();
    assert!(gateway_calls >= 2, "one 500, then a retry: {gateway_calls}");
    let (_, text) = get(&client, &metrics).await.expect("/metrics answers");
    assert!(text.contains("opsbot_gateway_connected 1"), "{text}");

    // And the reconnected bot answers commands.
    let mut events = emulator.subscribe();
    let ana = emulator.member("ana", None);
    let general = emulator.find_channel("general").expect("general").0;
    let interaction = emulator
        .type_line(ana, general, "/whoami")
        .expect("a command");
    let reply = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let event = events.recv().await.expect("events");
            if event.interaction_id == Some(interaction) && event.event == "reply" {
                return event;
            }
        }
    })
    .await
    .expect("the bot answers /whoami");
    assert!(reply.content.contains("**ana**"), "{}", reply.content);

    let pid = nix::unistd::Pid::from_raw(child.id().expect("pid") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("exits after SIGTERM")
        .expect("output");
    let logs = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{logs}");
    assert!(
        logs.contains("Discord gateway not connected; retrying"),
        "{logs}"
    );
    assert!(!logs.contains(EMULATOR_TOKEN), "no token in the logs");
    shutdown.cancel();
}
