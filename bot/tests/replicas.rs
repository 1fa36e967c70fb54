//! Several replicas on one database: real `opsbot run` processes against one emulator. Only
//! the holder of the `discord gateway` lease connects; killing it (SIGKILL) hands the gateway
//! to a standby within 15 seconds and commands keep working, answered once; a leader whose
//! database connection is cut stops its gateway, and a standby takes over; every replica
//! drains the outbox, one channel at a time.

mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use opsbot::emulator::{EMULATOR_TOKEN, Emulator, EmulatorEvent, GuildSpec};
use sqlx::PgPool;
use support::database_url;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Child;
use tokio_util::sync::CancellationToken;

/// How long a standby may take to replace a dead leader (the lease lives 10 s).
const TAKEOVER: Duration = Duration::from_secs(15);

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
}

struct Replica {
    http: SocketAddr,
    child: Child,
}

fn replica(database_url: &str, emulator: &Emulator) -> Replica {
    let http = free_addr();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_opsbot"))
        .args(["run", "--log-format", "json"])
        .env("DATABASE_URL", database_url)
        .env("OPSBOT_HTTP_LISTEN", http.to_string())
        .env("OPSBOT_DISCORD_TOKEN", EMULATOR_TOKEN)
        .env("OPSBOT_DISCORD_API_BASE", emulator.base_url())
        .env(
            "OPSBOT_DISCORD_GUILD_IDS",
            format!("[{}]", emulator.guild_id()),
        )
        .env_remove("OPSBOT_CONFIG")
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start opsbot run");
    Replica { http, child }
}

/// The gateway line of a replica's `/readyz`, if it answers.
async fn gateway_of(client: &reqwest::Client, replica: &Replica) -> Option<String> {
    let body = client
        .get(format!("http://{}/readyz", replica.http))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix("gateway: "))
        .map(str::to_owned)
}

/// Waits (at most `within`) until exactly one of `replicas` is connected and every other
/// one answering stands by; returns the leader's index.
async fn one_leader(client: &reqwest::Client, replicas: &[&Replica], within: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut states = Vec::new();
        for replica in replicas {
            states.push(gateway_of(client, replica).await);
        }
        let connected: Vec<usize> = (0..states.len())
            .filter(|&i| states[i].as_deref() == Some("connected"))
            .collect();
        let others_stand_by = (0..states.len())
            .filter(|i| !connected.contains(i))
            .all(|i| {
                states[i]
                    .as_deref()
                    .is_none_or(|s| s.starts_with("standby"))
            });
        if connected.len() == 1 && others_stand_by {
            return connected[0];
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no single leader within {within:?}: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Types `/whoami` as `name` and returns every answer to it seen within two seconds.
async fn whoami_answers(emulator: &Emulator, name: &str) -> Vec<EmulatorEvent> {
    let mut events = emulator.subscribe();
    let member = emulator.member(name, None);
    let general = emulator.find_channel("general").expect("general").0;
    let interaction = emulator
        .type_line(member, general, "/whoami")
        .expect("typed");
    let mut answers = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let wait = if answers.is_empty() {
            deadline.saturating_duration_since(tokio::time::Instant::now())
        } else {
            Duration::from_secs(2)
        };
        match tokio::time::timeout(wait, events.recv()).await {
            Ok(Ok(event)) if event.interaction_id == Some(interaction) => answers.push(event),
            Ok(Ok(_)) => {}
            _ => break,
        }
    }
    answers
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn killing_the_leader_hands_the_gateway_to_a_standby(pool: PgPool) {
    let shutdown = CancellationToken::new();
    let emulator = Emulator::start(GuildSpec::default(), shutdown.clone())
        .await
        .expect("emulator");
    let url = database_url(&pool);
    let mut replicas: Vec<Replica> = (0..3).map(|_| replica(&url, &emulator)).collect();
    let client = reqwest::Client::new();

    let leader = one_leader(
        &client,
        &replicas.iter().collect::<Vec<_>>(),
        Duration::from_secs(60),
    )
    .await;
    let answers = whoami_answers(&emulator, "ana").await;
    assert_eq!(answers.len(), 1, "answered once: {answers:?}");
    assert!(answers[0].content.contains("ana"), "{}", answers[0].content);

    replicas[leader]
        .child
        .kill()
        .await
        .expect("SIGKILL the leader");
    let killed = tokio::time::Instant::now();
    let rest: Vec<&Replica> = replicas
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, r)| r)
        .collect();
    one_leader(&client, &rest, TAKEOVER).await;
    eprintln!("takeover after {:?}", killed.elapsed());

    let answers = whoami_answers(&emulator, "bo").await;
    assert_eq!(
        answers.len(),
        1,
        "answered once after the takeover: {answers:?}"
    );
    let handled: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE command = 'whoami'")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(handled, 2, "each interaction ran once");

    // `opsbot status` names the new leader's lease.
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_opsbot"))
        .arg("status")
        .env("DATABASE_URL", &url)
        .env_remove("OPSBOT_CONFIG")
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .await
        .expect("opsbot status");
    let report = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{report}");
    assert!(report.contains("replicas seen"), "{report}");
    assert_eq!(
        report.matches("holds discord gateway").count(),
        1,
        "{report}"
    );
    shutdown.cancel();
}

/// A TCP proxy to the database that the test can cut: every connection and the listener.
async fn cuttable_proxy(to: SocketAddr, cut: CancellationToken) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = cut.cancelled() => return,
            };
            let Ok((mut inbound, _)) = accepted else {
                continue;
            };
            let cut = cut.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = TcpStream::connect(to).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    () = cut.cancelled() => {}
                }
            });
        }
    });
    addr
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn a_leader_that_loses_the_database_stops_its_gateway(pool: PgPool) {
    let shutdown = CancellationToken::new();
    let emulator = Emulator::start(GuildSpec::default(), shutdown.clone())
        .await
        .expect("emulator");
    let options = pool.connect_options();
    let db: SocketAddr = format!("{}:{}", options.get_host(), options.get_port())
        .parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], options.get_port())));
    let cut = CancellationToken::new();
    let proxy = cuttable_proxy(db, cut.clone()).await;
    let direct = database_url(&pool);
    let through_proxy = direct.replace(
        &format!("{}:{}", options.get_host(), options.get_port()),
        &proxy.to_string(),
    );
    assert_ne!(direct, through_proxy);
    let client = reqwest::Client::new();

    // The replica behind the proxy starts first and leads.
    let cut_off = replica(&through_proxy, &emulator);
    one_leader(&client, &[&cut_off], Duration::from_secs(60)).await;
    let standby = replica(&direct, &emulator);
    let leader = one_leader(&client, &[&cut_off, &standby], Duration::from_secs(60)).await;
    assert_eq!(leader, 0, "the first replica keeps the lease");

    cut.cancel();
    // It stops its gateway on its own (it can no longer renew), and the standby takes over.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (old, new) = (
            gateway_of(&client, &cut_off).await,
            gateway_of(&client, &standby).await,
        );
        if old.as_deref().is_some_and(|s| s.starts_with("standby"))
            && new.as_deref() == Some("connected")
        {
            assert!(
                old.as_deref()
                    .is_some_and(|s| s.contains("could not be renewed")),
                "{old:?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no handover after the cut: old {old:?}, new {new:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answers = whoami_answers(&emulator, "cy").await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    shutdown.cancel();
}

/// Every replica drains the outbox: messages queued for six channels are delivered exactly
/// once each, in order within each channel, by more than one replica.
#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn every_replica_drains_the_outbox_one_channel_at_a_time(pool: PgPool) {
    use opsbot_commands::chat::Message;
    let shutdown = CancellationToken::new();
    let channels: Vec<(u64, String)> = (1..=6)
        .map(|n| (700_000_000_000_000_000 + n, format!("room-{n}")))
        .collect();
    let spec = GuildSpec {
        channels: channels.clone(),
        ..GuildSpec::default()
    };
    let emulator = Emulator::start(spec, shutdown.clone())
        .await
        .expect("emulator");
    let url = database_url(&pool);
    let replicas: Vec<Replica> = (0..3).map(|_| replica(&url, &emulator)).collect();
    let client = reqwest::Client::new();
    one_leader(
        &client,
        &replicas.iter().collect::<Vec<_>>(),
        Duration::from_secs(60),
    )
    .await;

    const PER_CHANNEL: usize = 10;
    for (channel, _) in &channels {
        for n in 0..PER_CHANNEL {
            opsbot_commands::outbox::enqueue(
                &pool,
                *channel as i64,
                &Message::text(format!("message {n}")),
                None,
            )
            .await
            .expect("enqueue");
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE status <> 'sent'")
            .fetch_one(&pool)
            .await
            .expect("count");
        if pending == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{pending} messages never delivered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (channel, name) in &channels {
        let texts: Vec<String> = emulator
            .channel_messages(*channel)
            .iter()
            .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
            .collect();
        let expected: Vec<String> = (0..PER_CHANNEL).map(|n| format!("message {n}")).collect();
        assert_eq!(texts, expected, "#{name}: each once, in order");
    }
    let claimers: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT claimed_by) FROM outbox WHERE status = 'sent'")
            .fetch_one(&pool)
            .await
            .expect("count");
    eprintln!("delivered by {claimers} replicas");
    assert!(claimers >= 2, "delivered by {claimers} replica(s) only");
    let known: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox o WHERE NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = o.claimed_by)",
    )
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(
        known, 0,
        "every claimer is a replica of the heartbeat table"
    );
    shutdown.cancel();
}
