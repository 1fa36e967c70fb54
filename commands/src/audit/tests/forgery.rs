//! Issue 8, item 4: forged appends (chosen ids, backdated times), a cut-off tail and a
//! recomputed chain, as someone with the application's database role would try them.

use std::path::Path;

use sqlx::PgPool;

use super::super::canonical::{EVENT_COLUMNS, StoredEvent, chain_hash};
use super::{append_sealed, event, tamper};
use crate::audit::*;

const KEY: &[u8] = b"a chain key of at least thirty-two bytes";

/// Inserts an event as a role that may INSERT can: with a chosen id (`None`: the sequence's),
/// a chosen time (`age` before now), and queued for sealing. Returns its id.
async fn forge(pool: &PgPool, id: Option<i64>, age: &str) -> i64 {
    let id: i64 = match id {
        Some(id) => sqlx::query_scalar(
            "INSERT INTO audit_events (id, at, actor_id, actor_name, source, command, outcome)
             OVERRIDING SYSTEM VALUE
             VALUES ($1, clock_timestamp() - $2::interval, 1, 'mallory', 'web', 'deploy run', 'ok')
             RETURNING id",
        )
        .bind(id)
        .bind(age)
        .fetch_one(pool)
        .await
        .expect("forged insert"),
        None => sqlx::query_scalar(
            "INSERT INTO audit_events (at, actor_id, actor_name, source, command, outcome)
             VALUES (clock_timestamp() - $1::interval, 1, 'mallory', 'web', 'deploy run', 'ok')
             RETURNING id",
        )
        .bind(age)
        .fetch_one(pool)
        .await
        .expect("forged insert"),
    };
    sqlx::query("INSERT INTO audit_unsealed (event_id) VALUES ($1)")
        .bind(id)
        .execute(pool)
        .await
        .expect("queue");
    id
}

async fn chained(pool: &PgPool, id: i64) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM audit_chain WHERE event_id = $1)")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("chained?")
}

fn finding(verification: &Verification, id: i64) -> String {
    verification
        .findings
        .iter()
        .find(|f| f.event_id == id)
        .map(|f| f.message.clone())
        .unwrap_or_else(|| panic!("no finding names event {id}: {verification:#?}"))
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn the_sealer_refuses_ids_the_sequence_never_issued(pool: PgPool) {
    append_sealed(&pool, 2).await;
    let negative = forge(&pool, Some(-1), "0s").await;
    let beyond = forge(&pool, Some(1_000_000), "0s").await;
    let genuine = append(&pool, &event(3)).await.expect("append");
    assert_eq!(
        seal_pending(&pool).await.expect("seal"),
        1,
        "only the genuine one"
    );
    assert!(!chained(&pool, negative).await && !chained(&pool, beyond).await);
    assert!(chained(&pool, genuine).await);

    let verification = verify_all(&pool).await.expect("verify");
    assert!(!verification.is_ok());
    assert_eq!(verification.report.verified, 3);
    assert_eq!(
        verification.report.problem.as_ref().map(|p| p.event_id),
        Some(-1)
    );
    for id in [negative, beyond] {
        let message = finding(&verification, id);
        assert!(
            message.starts_with("the sealer refused to chain it: its id"),
            "{message}"
        );
        assert!(message.contains("never issued"), "{message}");
    }
    assert_eq!(verification.report.unsealed, 0);
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn the_sealer_refuses_a_backdated_event(pool: PgPool) {
    append_sealed(&pool, 1).await;
    let backdated = forge(&pool, None, "1 day").await;
    // Before any sealer runs, verify already says what the sealer will do.
    let waiting = verify(&pool).await.expect("verify");
    let problem = waiting.problem.expect("reported while queued");
    assert_eq!(problem.event_id, backdated);
    assert!(
        problem.message.contains("the sealer will refuse it"),
        "{problem:?}"
    );

    assert_eq!(seal_pending(&pool).await.expect("seal"), 0);
    assert!(!chained(&pool, backdated).await);
    let message = finding(&verify_all(&pool).await.expect("verify"), backdated);
    assert!(message.contains("backdated"), "{message}");
    assert!(message.contains("1d 0h before it was queued"), "{message}");
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn the_queue_time_cannot_be_chosen(pool: PgPool) {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO audit_events (at, actor_id, actor_name, source, command, outcome)
         VALUES (now() - interval '1 day', 1, 'mallory', 'web', 'deploy run', 'ok') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .expect("insert");
    sqlx::query(
        "INSERT INTO audit_unsealed (event_id, queued_at) VALUES ($1, now() - interval '1 day')",
    )
    .bind(id)
    .execute(&pool)
    .await
    .expect("queue");
    let stamped: bool = sqlx::query_scalar(
        "SELECT queued_at > now() - interval '1 minute' FROM audit_unsealed WHERE event_id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .expect("queued_at");
    assert!(stamped, "the trigger stamps the queue time");
    seal_pending(&pool).await.expect("seal");
    assert!(!chained(&pool, id).await);
}

/// Chains the queued event `id` by hand, as an attacker who skips the sealer would.
async fn chain_by_hand(pool: &PgPool, id: i64) -> Result<(), sqlx::Error> {
    let (position, prev_hash): (i64, Vec<u8>) =
        sqlx::query_as("SELECT position, hash FROM audit_chain ORDER BY position DESC LIMIT 1")
            .fetch_one(pool)
            .await?;
    let stored: StoredEvent = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events e WHERE e.id = $1"
    )))
    .bind(id)
    .fetch_one(pool)
    .await?;
    let hash = chain_hash(&prev_hash, &stored.canonical()).to_vec();
    sqlx::query(
        "INSERT INTO audit_chain (position, event_id, prev_hash, hash) VALUES ($1, $2, $3, $4)",
    )
    .bind(position + 1)
    .bind(id)
    .bind(prev_hash)
    .bind(hash)
    .execute(pool)
    .await?;
    Ok(())
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn verify_names_a_backdated_event_chained_around_the_sealer(pool: PgPool) {
    append_sealed(&pool, 3).await;
    let backdated = forge(&pool, None, "2 hours").await;
    chain_by_hand(&pool, backdated)
        .await
        .expect("chained by hand");
    sqlx::query("DELETE FROM audit_unsealed WHERE event_id = $1")
        .bind(backdated)
        .execute(&pool)
        .await
        .expect("dequeue");

    let report = verify(&pool).await.expect("verify");
    assert_eq!(report.verified, 4, "its hash is right");
    let problem = report.problem.expect("but it is backdated");
    assert_eq!(problem.event_id, backdated);
    assert!(problem.message.contains("backdated"), "{problem:?}");

    // Chaining an event that was never queued (so has no queue time) is refused outright.
    let unqueued: i64 = sqlx::query_scalar(
        "INSERT INTO audit_events (actor_id, actor_name, source, command, outcome)
         VALUES (1, 'mallory', 'web', 'whoami', 'ok') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .expect("insert");
    let err = chain_by_hand(&pool, unqueued).await.expect_err("refused");
    assert!(err.to_string().contains("not queued for sealing"), "{err}");
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn verify_names_an_event_that_goes_back_in_time(pool: PgPool) {
    append_sealed(&pool, 2).await;
    // Backdated by less than the sealer refuses, but far more than commit order explains.
    let earlier = forge(&pool, None, "30 seconds").await;
    let later = append(&pool, &event(5)).await.expect("append");
    assert_eq!(seal_pending(&pool).await.expect("seal"), 2);
    let verification = verify_all(&pool).await.expect("verify");
    assert_eq!(verification.findings.len(), 1, "{verification:#?}");
    let message = finding(&verification, earlier);
    assert!(message.contains("before event"), "{message}");
    assert!(
        message.contains("at the chain position before it"),
        "{message}"
    );
    // The genuine event after it is not blamed for the forged one.
    assert!(verification.findings.iter().all(|f| f.event_id != later));
}

/// Cuts the newest `n` events off the chain, rows and chain entries, as a superuser would.
async fn cut_tail(pool: &PgPool, n: i64) {
    tamper(
        pool,
        &format!(
            "WITH cut AS (DELETE FROM audit_chain WHERE position > (SELECT max(position) - {n} FROM audit_chain) RETURNING event_id)
             DELETE FROM audit_events WHERE id IN (SELECT event_id FROM cut)"
        ),
    )
    .await;
}

/// Edits one event, then recomputes the whole chain through the real sealer.
async fn rewrite_chain(pool: &PgPool, id: i64) {
    tamper(
        pool,
        &format!(
            "UPDATE audit_events SET detail = 'nothing to see' WHERE id = {id};
             DELETE FROM audit_chain;"
        ),
    )
    .await;
    sqlx::query("INSERT INTO audit_unsealed (event_id) SELECT id FROM audit_events")
        .execute(pool)
        .await
        .expect("requeue");
    seal_pending(pool).await.expect("reseal");
}

fn expected(head: &ChainHead) -> ExpectedHead {
    format!("{}:{}", head.position, head.hash)
        .parse()
        .expect("a head parses")
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn an_expected_head_shows_a_cut_off_tail(pool: PgPool) {
    append_sealed(&pool, 5).await;
    let head = verify(&pool).await.expect("verify").head.expect("head");
    assert_eq!(
        check_expected_head(&pool, &expected(&head))
            .await
            .expect("check"),
        Ok(())
    );
    cut_tail(&pool, 2).await;
    assert!(
        verify(&pool).await.expect("verify").is_ok(),
        "the chain alone cannot tell"
    );
    let mismatch = check_expected_head(&pool, &expected(&head))
        .await
        .expect("check")
        .expect_err("truncated");
    assert_eq!(
        mismatch,
        HeadMismatch::Truncated {
            position: 5,
            last: Some(3)
        }
    );
    assert!(mismatch.to_string().contains("truncated"), "{mismatch}");
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn an_expected_head_shows_a_recomputed_chain(pool: PgPool) {
    let ids = append_sealed(&pool, 4).await;
    let head = verify(&pool).await.expect("verify").head.expect("head");
    rewrite_chain(&pool, ids[1]).await;
    assert!(
        verify(&pool).await.expect("verify").is_ok(),
        "the chain alone cannot tell"
    );
    let mismatch = check_expected_head(&pool, &expected(&head))
        .await
        .expect("check")
        .expect_err("rewritten");
    assert!(
        matches!(&mismatch, HeadMismatch::Rewritten { position: 4, expected, .. } if *expected == head.hash),
        "{mismatch:?}"
    );
    assert!(mismatch.to_string().contains("rewritten"), "{mismatch}");
}

fn read(path: &Path) -> Checkpoint {
    Checkpoint::read(path)
        .expect("readable")
        .expect("a checkpoint")
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn checkpoints_follow_the_chain_and_refuse_a_rewrite(pool: PgPool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("audit-head.json");
    let key = ChainKey::new(KEY).expect("key");
    assert_eq!(
        write_checkpoint(&pool, &path, Some(&key))
            .await
            .expect("empty chain"),
        None
    );
    assert!(!path.exists(), "nothing to anchor yet");

    let ids = append_sealed(&pool, 3).await;
    let first = write_checkpoint(&pool, &path, Some(&key))
        .await
        .expect("write")
        .expect("written");
    assert_eq!((first.position, first.event_id), (3, ids[2]));
    assert_eq!(first.mac, Some(key.head_mac(3, &first.hash)));
    assert_eq!(read(&path), first);

    append_sealed(&pool, 2).await;
    let second = write_checkpoint(&pool, &path, Some(&key))
        .await
        .expect("write")
        .expect("written");
    assert_eq!(second.position, 5);
    let (checked, authenticity) = check_checkpoint(&pool, &path, Some(&key))
        .await
        .expect("holds")
        .expect("present");
    assert_eq!(
        (checked, authenticity),
        (second.clone(), Authenticity::Verified)
    );

    rewrite_chain(&pool, ids[0]).await;
    let err = check_checkpoint(&pool, &path, Some(&key))
        .await
        .expect_err("the checkpoint shows the rewrite");
    assert!(matches!(err, CheckpointError::Diverged { .. }), "{err}");
    let err = write_checkpoint(&pool, &path, Some(&key))
        .await
        .expect_err("a rewritten chain is not checkpointed");
    assert!(err.to_string().contains("rewritten"), "{err}");
    assert_eq!(read(&path), second, "the evidence stays");
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn a_checkpoint_forged_without_the_key_is_refused(pool: PgPool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("audit-head.json");
    let key = ChainKey::new(KEY).expect("key");
    let ids = append_sealed(&pool, 3).await;
    write_checkpoint(&pool, &path, Some(&key))
        .await
        .expect("write");

    // Rewrite the chain, then the file to match it: without the key the MAC cannot follow.
    rewrite_chain(&pool, ids[0]).await;
    let head = verify(&pool).await.expect("verify").head.expect("head");
    let mut forged = read(&path);
    forged.hash = head.hash.clone();
    std::fs::write(&path, serde_json::to_string(&forged).expect("json")).expect("forge");
    let err = check_checkpoint(&pool, &path, Some(&key))
        .await
        .expect_err("forged");
    assert!(matches!(err, CheckpointError::MacMismatch { .. }), "{err}");
    // Without the key the MAC cannot be checked, and the forged head matches the chain.
    let (_, authenticity) = check_checkpoint(&pool, &path, None)
        .await
        .expect("matches")
        .expect("present");
    assert_eq!(authenticity, Authenticity::Unchecked);

    forged.mac = None;
    std::fs::write(&path, serde_json::to_string(&forged).expect("json")).expect("forge");
    let err = check_checkpoint(&pool, &path, Some(&key))
        .await
        .expect_err("no MAC");
    assert!(matches!(err, CheckpointError::MacMissing { .. }), "{err}");

    std::fs::write(&path, "{\"position\": 1}").expect("garbage");
    let err = check_checkpoint(&pool, &path, Some(&key))
        .await
        .expect_err("garbage");
    assert!(matches!(err, CheckpointError::Invalid { .. }), "{err}");
}
