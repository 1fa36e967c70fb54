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

/// The tmpfs the full-disk drill runs on: the cluster takes ~40 MB of it.
const TMPFS_MB: u32 = 80;

#[tokio::test]
async fn a_full_disk_refuses_clearly_writes_nothing_and_recovers() {
    let Some(mut pg) = PrivatePostgres::start_on_tmpfs(TMPFS_MB).await else {
        // Mounting needs root; RELIABILITY.md says where this ran.
        eprintln!("FAULT disk-full: skipped (not root: cannot mount a tmpfs)");
        return;
    };
    let filler = std::sync::Arc::new(std::sync::Mutex::new(None));
    let (fill, clear) = (filler.clone(), filler.clone());
    let drill = drill(
        &mut pg,
        async move |pg| {
            *fill.lock().expect("filler") = Some(pg.fill_disk(0));
            // The pages the audit trail already has keep some room: use it up, as the events
            // a busy bot writes meanwhile would, until the table must grow and cannot.
            let pool = PgPool::connect(&pg.url()).await.expect("connect");
            for n in 0.. {
                let appended = sqlx::query(
                    "WITH e AS (INSERT INTO audit_events (actor_id, actor_name, source, command, args, outcome, detail)
                                VALUES (0, 'drill', 'scheduler', 'fault drill', jsonb_build_object('n', $1::int), 'ok', '')
                                RETURNING id)
                     INSERT INTO audit_unsealed (event_id) SELECT id FROM e",
                )
                .bind(n)
                .execute(&pool)
                .await;
                match appended {
                    Ok(_) => assert!(n < 100_000, "the disk never filled"),
                    Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("53100") => break,
                    Err(e) => panic!("filling the audit trail's pages: {e}"),
                }
            }
            pool.close().await;
        },
        async move |_| {
            let path = clear.lock().expect("filler").take().expect("filled");
            std::fs::remove_file(path).expect("free the disk");
        },
    )
    .await;
    for answer in &drill.refused {
        assert!(
            answer.content.contains("out of disk space"),
            "{}: {}",
            answer.line,
            answer.content
        );
    }
    assert_eq!(drill.webhook_during, 503);
    eprintln!(
        "FAULT disk-full: {FAULT_HOLD:?} into the fault, commands refused in {:?} with {:?}; webhook {}; /readyz {:?}; writes back {:?} after the disk was freed",
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
