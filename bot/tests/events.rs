//! Events out against real brokers: the NATS JetStream server of these machines
//! (127.0.0.1:4222, a stream and subjects of this test's own, deleted after) and Google's
//! Pub/Sub emulator (started here on a free port, stopped after). A real `opsbot run` publishes
//! through a TCP proxy the test can cut; every event arrives once and in order across a
//! restart of opsbot and an outage of the broker.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use opsbot_commands::actor::Source;
use opsbot_commands::audit::{AuditEvent, NewEvent, Outcome, append, sealed_after};
use sqlx::PgPool;
use support::database_url;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Child;
use tokio::sync::Notify;

const NATS: &str = "127.0.0.1:4222";
const EMULATOR: &str =
    "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator";
/// Long enough for a cold opsbot to migrate, seal and publish, or for the emulator's JVM.
const WITHIN: Duration = Duration::from_secs(60);

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
}

/// A TCP proxy to `to` that can be cut (every connection dropped, new ones refused) and
/// restored.
#[derive(Clone)]
struct Proxy {
    addr: SocketAddr,
    down: Arc<AtomicBool>,
    cut: Arc<Notify>,
}

impl Proxy {
    async fn start(to: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy");
        let proxy = Proxy {
            addr: listener.local_addr().expect("addr"),
            down: Arc::new(AtomicBool::new(false)),
            cut: Arc::new(Notify::new()),
        };
        let (down, cut) = (proxy.down.clone(), proxy.cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if down.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let cut = cut.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(to).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = cut.notified() => {}
                    }
                });
            }
        });
        proxy
    }

    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

/// `opsbot run` with `config` (and `env`), without Discord.
struct Opsbot {
    http: SocketAddr,
    child: Child,
}

fn opsbot(pool: &PgPool, config: &std::path::Path, env: &[(&str, String)]) -> Opsbot {
    let http = free_addr();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_opsbot"));
    command
        .arg("--config")
        .arg(config)
        .args(["run", "--log-format", "json"])
        .env("DATABASE_URL", database_url(pool))
        .env("OPSBOT_HTTP_LISTEN", http.to_string())
        .env_remove("OPSBOT_CONFIG")
        .env_remove("OPSBOT_DISCORD_TOKEN")
        .env_remove("PUBSUB_EMULATOR_HOST")
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let child = command.spawn().expect("start opsbot run");
    Opsbot { http, child }
}

impl Opsbot {
    /// SIGTERM, and waits for the exit (the loop releases its lease).
    async fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id().expect("running") as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        tokio::time::timeout(WITHIN, self.child.wait())
            .await
            .expect("opsbot stops")
            .expect("exit status");
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let response = reqwest::get(format!("http://{}{path}", self.http))
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }
}

/// Appends `count` events as a running desk would (some of a story, some not).
async fn append_events(pool: &PgPool, from: i64, count: i64) {
    let story = uuid::Uuid::new_v4();
    for n in from..from + count {
        let command = ["deploy run", "incident open", "whoami", "audit verify"][n as usize % 4];
        append(
            pool,
            &NewEvent {
                actor_id: 1000 + n,
                actor_name: format!("user{n}"),
                source: Source::Shell,
                guild_id: None,
                channel_id: None,
                interaction_id: None,
                command: command.to_owned(),
                args: serde_json::json!({ "n": n, "text": "a \"quoted\" <b>value</b> ✓" }),
                outcome: Outcome::Ok,
                detail: format!("event {n}"),
                correlation_id: (n % 2 == 0).then_some(story),
            },
        )
        .await
        .expect("append");
    }
}

async fn cursor(pool: &PgPool, sink: &str) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT position FROM events_cursor WHERE sink = $1")
        .bind(sink)
        .fetch_optional(pool)
        .await
        .expect("cursor")
        .unwrap_or(0)
}

/// Waits until every appended event is sealed and `sink` has published it.
async fn caught_up(pool: &PgPool, sink: &str) -> i64 {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
            .fetch_one(pool)
            .await
            .expect("count");
        let published = cursor(pool, sink).await;
        if published == total {
            return total;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{sink}: {published} of {total} events published within {WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `/readyz` (still 200) reports `sink` `behind` events behind, and `/metrics`
/// the same lag.
async fn lag_shows(bot: &Opsbot, sink: &str, behind: i64) {
    let deadline = tokio::time::Instant::now() + WITHIN;
    let wanted = format!("{sink} {behind} behind");
    loop {
        let ready = bot.get("/readyz").await;
        let metrics = bot.get("/metrics").await.map(|(_, body)| body);
        let gauge = format!("opsbot_events_lag_events{{sink=\"{sink}\"}} {behind}");
        if let (Some((status, body)), Some(metrics)) = (&ready, &metrics)
            && body
                .lines()
                .any(|l| l.starts_with("events: ") && l.contains(&wanted))
            && metrics.lines().any(|l| l == gauge)
        {
            assert_eq!(*status, 200, "a broker outage keeps opsbot ready: {body}");
            assert!(metrics.contains(&format!("opsbot_events_lag_seconds{{sink=\"{sink}\"}}")));
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no lag of {behind} for {sink}: /readyz {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the three phases against a broker behind `proxy`: publish, restart, outage.
async fn restart_and_outage(
    pool: &PgPool,
    sink: &str,
    proxy: &Proxy,
    start: impl Fn() -> Opsbot,
) -> Vec<AuditEvent> {
    let bot = start();
    append_events(pool, 0, 15).await;
    assert_eq!(caught_up(pool, sink).await, 15);

    // A restart: events appended while opsbot is down are published after it starts again.
    bot.stop().await;
    append_events(pool, 15, 10).await;
    let bot = start();
    assert_eq!(caught_up(pool, sink).await, 25);

    // An outage of the broker: nothing is acknowledged, so the cursor stays, the lag shows,
    // and everything goes out once the broker is back.
    proxy.cut();
    append_events(pool, 25, 12).await;
    lag_shows(&bot, sink, 12).await;
    assert_eq!(
        cursor(pool, sink).await,
        25,
        "nothing acknowledged while cut"
    );
    proxy.restore();
    assert_eq!(caught_up(pool, sink).await, 37);
    lag_shows(&bot, sink, 0).await;
    bot.stop().await;
    sealed_after(pool, 0, 1000).await.expect("chain")
}

fn write_config(dir: &tempfile::TempDir, toml: &str) -> std::path::PathBuf {
    let path = dir.path().join("opsbot.toml");
    std::fs::write(&path, toml).expect("config");
    path
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .subsec_nanos();
    format!("{prefix}{}x{nanos}", std::process::id())
}

/// Deletes the test's stream when dropped, also when the test fails before its end.
struct DeleteStream(String);

impl Drop for DeleteStream {
    fn drop(&mut self) {
        let name = self.0.clone();
        // A runtime of its own on a thread of its own: drop cannot await.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(client) = async_nats::connect(NATS).await {
                    let _ = async_nats::jetstream::new(client)
                        .delete_stream(&name)
                        .await;
                }
            });
        })
        .join();
    }
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn nats_jetstream_gets_every_event_once_in_order(pool: PgPool) {
    if !support::prerequisites::service(
        NATS,
        "a NATS server with JetStream; Debian: apt install nats-server, then nats-server -js",
    ) {
        return;
    }
    let id = unique("t");
    let subject = format!("opsbot_test.{id}");
    let stream_name = format!("OPSBOT_TEST_{id}");
    let _cleanup = DeleteStream(stream_name.clone());
    let proxy = Proxy::start(NATS.parse().expect("addr")).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        &dir,
        &format!(
            "[events.nats]\nurl = \"nats://{}\"\nsubject = \"{subject}\"\nstream = \"{stream_name}\"\n",
            proxy.addr
        ),
    );

    let chain = restart_and_outage(&pool, "nats", &proxy, || opsbot(&pool, &config, &[])).await;

    // Read the whole stream back (`_cleanup` deletes it).
    let client = async_nats::connect(NATS)
        .await
        .expect("NATS at 127.0.0.1:4222");
    let jetstream = async_nats::jetstream::new(client);
    let mut stream = jetstream
        .get_stream(&stream_name)
        .await
        .expect("stream created");
    let info = stream.info().await.expect("info").clone();
    let mut messages = Vec::new();
    for sequence in 1..=info.state.messages {
        messages.push(stream.get_raw_message(sequence).await.expect("message"));
    }

    assert_eq!(info.config.subjects, vec![format!("{subject}.>")]);
    assert_eq!(chain.len(), 37);
    assert_eq!(messages.len(), chain.len(), "each event once");
    for (message, event) in messages.iter().zip(&chain) {
        let position = event.position.expect("sealed");
        assert_eq!(
            message.headers.get("Nats-Msg-Id").map(|v| v.as_str()),
            Some(position.to_string().as_str())
        );
        let group = event.command.split(' ').next().expect("group");
        assert_eq!(message.subject.as_str(), format!("{subject}.{group}"));
        // The JSON `opsbot audit tail --json` prints for the event.
        assert_eq!(
            std::str::from_utf8(&message.payload).expect("utf-8"),
            serde_json::to_string(event).expect("json")
        );
    }
    let positions: Vec<i64> = chain.iter().filter_map(|e| e.position).collect();
    assert_eq!(positions, (1..=37).collect::<Vec<_>>(), "in chain order");
}

/// The Pub/Sub emulator on a free port, stopped (by its PID) when dropped.
struct PubsubEmulator {
    addr: SocketAddr,
    child: Child,
}

impl PubsubEmulator {
    /// `None` only when the emulator is not installed.
    async fn start() -> Option<PubsubEmulator> {
        if !std::path::Path::new(EMULATOR).exists() {
            return None;
        }
        let addr = free_addr();
        let child = tokio::process::Command::new(EMULATOR)
            .arg(format!("--host={}", addr.ip()))
            .arg(format!("--port={}", addr.port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the Pub/Sub emulator");
        let emulator = PubsubEmulator { addr, child };
        // The JVM takes a few seconds: poll until it answers HTTP.
        let deadline = tokio::time::Instant::now() + WITHIN;
        let client = reqwest::Client::new();
        while client
            .get(format!("http://{addr}/v1/projects/p/topics"))
            .send()
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the Pub/Sub emulator did not answer within {WITHIN:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Some(emulator)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/v1/{path}", self.addr)
    }
}

impl Drop for PubsubEmulator {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn pubsub_gets_every_event_once_in_order(pool: PgPool) {
    if !support::prerequisites::program(
        EMULATOR,
        "Google's Pub/Sub emulator: apt install google-cloud-cli-pubsub-emulator (Google's apt repository) and a Java runtime",
    ) {
        return;
    }
    let Some(emulator) = PubsubEmulator::start().await else {
        panic!("the Pub/Sub emulator at {EMULATOR} vanished");
    };
    let (project, topic, subscription) = ("opsbot-test", unique("audit-"), unique("sub-"));
    let client = reqwest::Client::new();
    // The subscription must exist before anything is published to be delivered it.
    let created = client
        .put(emulator.url(&format!("projects/{project}/topics/{topic}")))
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("topic");
    assert!(created.status().is_success(), "{created:?}");
    let created = client
        .put(emulator.url(&format!("projects/{project}/subscriptions/{subscription}")))
        .json(&serde_json::json!({
            "topic": format!("projects/{project}/topics/{topic}"),
            "enableMessageOrdering": true,
        }))
        .send()
        .await
        .expect("subscription");
    assert!(created.status().is_success(), "{created:?}");

    let proxy = Proxy::start(emulator.addr).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        &dir,
        &format!("[events.pubsub]\nproject = \"{project}\"\ntopic = \"{topic}\"\n"),
    );
    let env = [("PUBSUB_EMULATOR_HOST", proxy.addr.to_string())];
    let chain = restart_and_outage(&pool, "pubsub", &proxy, || opsbot(&pool, &config, &env)).await;

    // Pull everything, acknowledging as we go.
    let mut received: Vec<(i64, Option<String>, String)> = Vec::new();
    let deadline = tokio::time::Instant::now() + WITHIN;
    while received.len() < chain.len() && tokio::time::Instant::now() < deadline {
        let pulled: serde_json::Value = client
            .post(emulator.url(&format!(
                "projects/{project}/subscriptions/{subscription}:pull"
            )))
            .json(&serde_json::json!({ "maxMessages": 100 }))
            .send()
            .await
            .expect("pull")
            .json()
            .await
            .expect("pull body");
        let mut acks = Vec::new();
        for item in pulled["receivedMessages"].as_array().into_iter().flatten() {
            let message = &item["message"];
            let position = message["attributes"]["position"]
                .as_str()
                .and_then(|p| p.parse::<i64>().ok())
                .expect("a position attribute");
            let data = base64::engine::general_purpose::STANDARD
                .decode(message["data"].as_str().expect("data"))
                .expect("base64");
            let key = message["orderingKey"].as_str().map(str::to_owned);
            received.push((position, key, String::from_utf8(data).expect("utf-8")));
            acks.push(item["ackId"].clone());
        }
        if !acks.is_empty() {
            client
                .post(emulator.url(&format!(
                    "projects/{project}/subscriptions/{subscription}:acknowledge"
                )))
                .json(&serde_json::json!({ "ackIds": acks }))
                .send()
                .await
                .expect("acknowledge");
        }
    }
    drop(emulator);

    assert_eq!(chain.len(), 37);
    let mut by_position = BTreeMap::new();
    for (position, key, json) in &received {
        assert!(
            by_position
                .insert(*position, (key.clone(), json.clone()))
                .is_none(),
            "position {position} delivered twice"
        );
    }
    assert_eq!(by_position.len(), chain.len(), "every event once");
    for event in &chain {
        let (key, json) = &by_position[&event.position.expect("sealed")];
        assert_eq!(json, &serde_json::to_string(event).expect("json"));
        let expected_key = event
            .correlation_id
            .map_or_else(|| "opsbot".to_owned(), |id| id.to_string());
        assert_eq!(key.as_deref(), Some(expected_key.as_str()));
    }
    // In chain order within each ordering key (Pub/Sub's ordering guarantee).
    let mut last: BTreeMap<Option<String>, i64> = BTreeMap::new();
    for (position, key, _) in &received {
        let before = last.insert(key.clone(), *position).unwrap_or(0);
        assert!(before < *position, "key {key:?}: {position} after {before}");
    }
}
