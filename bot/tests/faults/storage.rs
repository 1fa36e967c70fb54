//! The database up but refusing writes: read-only (`ALTER SYSTEM SET
//! default_transaction_read_only = on` and a reload, which reaches the connections opsbot
//! already holds) and its disk full (the private server's data directory on a small tmpfs,
//! filled). Commands are answered at once with what is wrong, nothing is half-written (a
//! refused lock leaves no lock row, no audit event, no announcement), the Alertmanager
//! webhook answers 503, and everything works again once the fault clears, without a
//! restart of opsbot.

use std::time::Duration;

use opsbot::emulator::Emulator;
use sqlx::PgPool;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::harness::{self, ALERTS, Answer, Opsbot, PATIENCE, ask, eventually};
use crate::outage::alert;
use crate::restart::services;
use crate::support::private_pg::PrivatePostgres;

const HOOK: &str = "faults-storage-token";
/// How long the fault lasts before the commands are typed.
const FAULT_HOLD: Duration = Duration::from_secs(8);

/// What a member saw during and after a storage fault.
struct Drill {
    refused: Vec<Answer>,
    readyz_during: Option<u16>,
    webhook_during: u16,
    recovered_after: Duration,
}

/// Opsbot on `pg` with services svc0 and svc1 and the Alertmanager webhook: locks svc0,
/// calls `fault`, tries to lock svc1 (and `/whoami`, and an alert), calls `clear`, and waits
/// until svc1 can be locked. Checks that the refused attempts left nothing behind.
async fn drill<F, C>(pg: &mut PrivatePostgres, fault: F, clear: C) -> Drill
where
    F: AsyncFnOnce(&mut PrivatePostgres),
    C: AsyncFnOnce(&mut PrivatePostgres),
{
    let dir = tempfile::tempdir().expect("dir");
    let hook = dir.path().join("hook");
    std::fs::write(&hook, HOOK).expect("hook");
    let (config_dir, config) = harness::config_file(&format!(
        "[alerts]\nwebhook_token = \"file:{}\"\n[[alerts.routes]]\nchannel = {ALERTS}\n{}",
        hook.display(),
        services(2)
    ));
    let shutdown = CancellationToken::new();
    let emulator = Emulator::start(harness::guild(), shutdown.clone())
        .await
        .expect("emulator");
    let bot = Opsbot::start(
        &config,
        &pg.url(),
        &emulator,
        &dir.path().join("opsbot.log"),
    );
    let client = reqwest::Client::new();
    bot.wait_ready(&client).await;
    let roles = ["ops".to_owned()];
    let ana = emulator.member("ana", Some(&roles));
    let general = emulator.find_channel("general").expect("general").0;
    let mut events = emulator.subscribe();
    let mut say = async |line: &str| {
        ask(&emulator, &mut events, ana, general, line)
            .await
            .expect("typed")
            .unwrap_or_else(|| panic!("{line}: no answer\n{}", bot.log()))
    };
    let locked = say("/deploy lock service:svc0 env:staging reason:before").await;
    assert!(locked.content.starts_with('🔒'), "{}", locked.content);

    fault(pg).await;
    // Longer than the gateway lease could last without a renewal (10 s less a margin): a
    // leader that gave its gateway up here would leave the commands below unanswered.
    tokio::time::sleep(FAULT_HOLD).await;
    let readyz = bot.get(&client, "/readyz").await.map(|(status, _)| status);
    let pool = PgPool::connect(&pg.url()).await.expect("connect");
    let events_before: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(&pool)
        .await
        .expect("count");
    let mut refused = Vec::new();
    for line in [
        "/deploy lock service:svc1 env:staging reason:during",
        "/whoami",
        "/deploy unlock service:svc0 env:staging",
    ] {
        let answer = say(line).await;
        assert!(
            answer.content.starts_with('❌'),
            "{line}: {}",
            answer.content
        );
        refused.push(answer);
    }
    let webhook_during = client
        .post(format!("http://{}/webhooks/alertmanager", bot.http))
        .bearer_auth(HOOK)
        .json(&alert("DuringStorageFault"))
        .send()
        .await
        .expect("webhook")
        .status()
        .as_u16();
    // Nothing of the refused commands was written.
    let events_after: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(events_after, events_before, "no audit event was written");
    for answer in &refused {
        let recorded: i64 =
            sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE interaction_id = $1")
                .bind(answer.interaction as i64)
                .fetch_one(&pool)
                .await
                .expect("count");
        assert_eq!(recorded, 0, "{}", answer.line);
    }
    let locks: Vec<String> = sqlx::query_scalar("SELECT service FROM deploy_locks ORDER BY 1")
        .fetch_all(&pool)
        .await
        .expect("locks");
    assert_eq!(
        locks,
        ["svc0"],
        "the refused lock left no row, the unlock removed none"
    );

    clear(pg).await;
    let cleared = Instant::now();
    let recovered_after = loop {
        let answer = say("/deploy lock service:svc1 env:staging reason:after").await;
        if answer.content.starts_with('🔒') {
            break cleared.elapsed();
        }
        assert!(
            cleared.elapsed() < PATIENCE,
            "writes never came back: {}",
            answer.content
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let webhook_after = client
        .post(format!("http://{}/webhooks/alertmanager", bot.http))
        .bearer_auth(HOOK)
        .json(&alert("DuringStorageFault"))
        .send()
        .await
        .expect("webhook")
        .status()
        .as_u16();
    assert_eq!(webhook_after, 200, "the retried delivery is taken");
    // Each lock change is announced once.
    eventually("the announcements are posted", PATIENCE, || async {
        (emulator.channel_messages(harness::DEPLOYS).len() == 2).then_some(())
    })
    .await;
    assert_eq!(bot.terminate().await, Some(0));
    let (code, verified) = harness::audit_verify(&pg.url()).await;
    assert_eq!(code, Some(0), "{verified}");
    drop(config_dir);
    shutdown.cancel();
    Drill {
        refused,
        readyz_during: readyz,
        webhook_during,
        recovered_after,
    }
}

#[tokio::test]
async fn a_read_only_database_refuses_clearly_writes_nothing_and_recovers() {
    let mut pg = PrivatePostgres::start().await;
    let drill = drill(
        &mut pg,
        async |pg| {
            pg.execute("ALTER SYSTEM SET default_transaction_read_only = on")
                .await;
            pg.execute("SELECT pg_reload_conf()").await;
            // The reload reaches every backend at its next command; give it a moment.
            tokio::time::sleep(Duration::from_millis(300)).await;
        },
        async |pg| {
            pg.execute("ALTER SYSTEM RESET default_transaction_read_only")
                .await;
            pg.execute("SELECT pg_reload_conf()").await;
        },
    )
    .await;
    for answer in &drill.refused {
        assert!(
            answer.content.contains("read-only"),
            "{}: {}",
            answer.line,
            answer.content
        );
    }
    assert_eq!(drill.webhook_during, 503);
    eprintln!(
        "FAULT read-only: {FAULT_HOLD:?} into the fault, commands refused in {:?} with {:?}; webhook {}; /readyz {:?}; writes back {:?} after the reset",
        drill
            .refused
            .iter()
            .map(|a| a.took)
            .max()
            .unwrap_or_default(),
        drill.refused[0].content,
        drill.webhook_during,
        drill.readyz_during,
        drill.recovered_after,
    );
}
