//! PostgreSQL restarted under load: four members lock, unlock and `/whoami` without pause
//! through the emulator against the real `opsbot run` while the private server goes down
//! (fast shutdown) for three seconds and comes back. Every command typed gets an answer
//! within Discord's 3 s (during the outage: "try again"), every acknowledged command is in
//! the audit trail, each lock change has its lock row and announcement or neither, every
//! announcement is posted once, and commands succeed again soon after the database is back
//! (the test prints the figure and holds it to the 5 s).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opsbot::emulator::Emulator;
use sqlx::PgPool;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::harness::{self, Answer, DEPLOYS, Opsbot, ask, eventually};
use crate::support::private_pg::{PrivatePostgres, Stop};

/// Members typing at once (each on a service of its own, so locks never collide).
const WORKERS: usize = 4;
/// Each member's pause between two commands.
const PAUSE: Duration = Duration::from_millis(30);
/// How long the server is down.
const OUTAGE: Duration = Duration::from_secs(3);
/// Discord's deadline for the first answer to an interaction.
const DISCORD_DEADLINE: Duration = Duration::from_secs(3);
/// The bound on service returning after the database does.
const RECOVERY_BOUND: Duration = Duration::from_secs(5);

pub fn services(count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "[[services]]\nname = \"svc{i}\"\nenvironments = [\"staging\"]\nbackend = {{ kind = \"command\", program = \"true\", args = [], timeout = \"30s\" }}\n"
            )
        })
        .collect()
}

/// What one member saw: every answer in order, and the lines that got none.
#[derive(Debug, Default)]
struct Seen {
    answers: Vec<Answer>,
    unanswered: Vec<String>,
}

/// Lock, unlock, whoami, again and again, until `stop`.
async fn member_loop(emulator: Arc<Emulator>, index: usize, stop: Arc<AtomicBool>) -> Seen {
    let roles = ["ops".to_owned()];
    let member = emulator.member(&format!("member{index}"), Some(&roles));
    let general = emulator.find_channel("general").expect("general").0;
    let mut events = emulator.subscribe();
    let mut seen = Seen::default();
    let lines = [
        format!("/deploy lock service:svc{index} env:staging reason:\"fault drill\""),
        format!("/deploy unlock service:svc{index} env:staging"),
        "/whoami".to_owned(),
    ];
    let mut step = 0;
    while !stop.load(Ordering::Relaxed) {
        let line = &lines[step % lines.len()];
        match ask(&emulator, &mut events, member, general, line).await {
            Ok(Some(answer)) => seen.answers.push(answer),
            Ok(None) => seen.unanswered.push(line.clone()),
            Err(e) => panic!("{line}: {e}"),
        }
        step += 1;
        // A short pause, so that the announcements the members queue (two commands in
        // three announce) stay near the outbox's pace of 45 a second.
        tokio::time::sleep(PAUSE).await;
    }
    seen
}

/// The audit outcome of each interaction.
async fn outcome_of(pool: &PgPool, interaction: u64) -> Option<String> {
    sqlx::query_scalar("SELECT outcome FROM audit_events WHERE interaction_id = $1")
        .bind(interaction as i64)
        .fetch_optional(pool)
        .await
        .expect("audit query")
}

#[tokio::test]
async fn a_postgres_restart_under_load_loses_nothing_acknowledged() {
    let mut pg = PrivatePostgres::start().await;
    let (dir, config) = harness::config_file(&services(WORKERS));
    let shutdown = CancellationToken::new();
    let emulator = Arc::new(
        Emulator::start(harness::guild(), shutdown.clone())
            .await
            .expect("emulator"),
    );
    let bot = Opsbot::start(
        &config,
        &pg.url(),
        &emulator,
        &dir.path().join("opsbot.log"),
    );
    let client = reqwest::Client::new();
    bot.wait_ready(&client).await;

    let stop = Arc::new(AtomicBool::new(false));
    let members: Vec<_> = (0..WORKERS)
        .map(|i| tokio::spawn(member_loop(emulator.clone(), i, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let down_at = Instant::now();
    pg.stop(Stop::Fast).await;
    tokio::time::sleep(OUTAGE).await;
    let up_at = pg.start_again().await;
    let up_wall = chrono::Utc::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for member in members {
        seen.push(member.await.expect("member task"));
    }

    let pool = PgPool::connect(&pg.url()).await.expect("connect");
    let all: Vec<&Answer> = seen.iter().flat_map(|s| &s.answers).collect();
    let unanswered: Vec<&String> = seen.iter().flat_map(|s| &s.unanswered).collect();
    assert!(
        unanswered.is_empty(),
        "commands without an answer: {unanswered:?}\n{}",
        bot.log()
    );
    let try_again = all.iter().filter(|a| a.is_try_again()).count();
    let internal: Vec<&&Answer> = all.iter().filter(|a| a.content.starts_with('⚠')).collect();
    assert!(
        internal.is_empty(),
        "an outage is not an internal error: {internal:?}"
    );
    assert!(try_again > 0, "no command fell into the outage");
    let slowest = all.iter().map(|a| a.took).max().unwrap_or_default();
    assert!(
        slowest < DISCORD_DEADLINE,
        "an answer took {slowest:?}, past Discord's 3 s"
    );

    // Every acknowledged command is in the trail, as `ok`.
    let mut acknowledged = 0;
    for answer in all.iter().filter(|a| !a.content.starts_with('❌')) {
        acknowledged += 1;
        assert_eq!(
            outcome_of(&pool, answer.interaction).await.as_deref(),
            Some("ok"),
            "{} was answered {:?} but is not in the trail as ok",
            answer.line,
            answer.content
        );
    }
    // Nothing half-written: every lock change has its announcement and the other way round,
    // and each service's lock row matches its last recorded change.
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events e
          WHERE e.command IN ('deploy lock', 'deploy unlock') AND e.outcome = 'ok'
            AND (SELECT count(*) FROM outbox o WHERE o.audit_event_id = e.id) <> 1",
    )
    .fetch_one(&pool)
    .await
    .expect("orphans");
    assert_eq!(orphans, 0, "lock changes without exactly one announcement");
    for i in 0..WORKERS {
        let last: Option<String> = sqlx::query_scalar(
            "SELECT command FROM audit_events
              WHERE command IN ('deploy lock', 'deploy unlock') AND outcome = 'ok'
                AND args->>'service' = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(format!("svc{i}"))
        .fetch_optional(&pool)
        .await
        .expect("last change");
        let locked: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM deploy_locks WHERE service = $1 AND environment = 'staging')",
        )
        .bind(format!("svc{i}"))
        .fetch_one(&pool)
        .await
        .expect("lock row");
        assert_eq!(
            locked,
            last.as_deref() == Some("deploy lock"),
            "svc{i}: lock row vs last change {last:?}"
        );
    }

    // Recovery: the first command answered `ok` after the database was back, and the
    // moment every member had one.
    let recovered = |answers: &[Answer]| {
        answers
            .iter()
            .find(|a| a.at > up_at && !a.content.starts_with('❌'))
            .map(|a| a.at - up_at)
    };
    let per_member: Vec<Duration> = seen
        .iter()
        .map(|s| recovered(&s.answers).expect("a member never recovered"))
        .collect();
    let first = per_member.iter().min().copied().unwrap_or_default();
    let every = per_member.iter().max().copied().unwrap_or_default();

    // Every announcement is posted once, after the outbox catches up.
    let announcements: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .expect("outbox");
    let drained = eventually("the outbox drains", Duration::from_secs(60), || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE status <> 'sent'")
            .fetch_one(&pool)
            .await
            .ok()?;
        (left == 0).then(Instant::now)
    })
    .await;
    let resumed: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT min(sent_at) FROM outbox WHERE sent_at > $1")
            .bind(up_wall)
            .fetch_one(&pool)
            .await
            .expect("first post after the outage");
    let resumed = resumed.map(|at| (at - up_wall).to_std().unwrap_or_default());
    let posted = emulator.channel_messages(DEPLOYS).len();
    assert_eq!(
        posted as i64, announcements,
        "each announcement posted once"
    );

    assert_eq!(bot.terminate().await, Some(0));
    let (code, report) = harness::audit_verify(&pg.url()).await;
    assert_eq!(code, Some(0), "{report}");
    eprintln!(
        "FAULT restart: {} commands ({acknowledged} acknowledged, {try_again} told to try again); outage {:?}; slowest answer {slowest:?}; first ok {first:?} after the database was back, every member ok within {every:?}; {announcements} announcements posted once; the outbox resumed {resumed:?} and drained {:?} after the database was back",
        all.len(),
        up_at - down_at,
        drained - up_at,
    );
    assert!(
        first < RECOVERY_BOUND,
        "service returned {first:?} after the database"
    );
    drop(dir);
    shutdown.cancel();
}
