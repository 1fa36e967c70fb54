//! The audit trail against real Postgres: appends, sealing, tamper detection, concurrency.

use serde_json::json;
use sqlx::PgPool;

use super::*;
use crate::access::RoleMap;
use crate::actor::{Actor, Source};
use crate::desk::{Desk, Invocation};
use crate::error::CommandError;

mod forgery;
mod search;

fn event(n: i64) -> NewEvent {
    NewEvent {
        actor_id: 1000 + n,
        actor_name: format!("user{n}"),
        source: Source::Shell,
        guild_id: Some(1),
        channel_id: Some(2),
        interaction_id: None,
        command: "whoami".into(),
        args: json!({ "n": n, "text": "<script>alert(1)</script>" }),
        outcome: Outcome::Ok,
        detail: String::new(),
        correlation_id: None,
    }
}

async fn append_sealed(pool: &PgPool, count: i64) -> Vec<i64> {
    let mut ids = Vec::new();
    for n in 0..count {
        ids.push(append(pool, &event(n)).await.expect("append"));
    }
    seal_pending(pool).await.expect("seal");
    ids
}

/// Tampering as a database superuser would: with the append-only triggers switched off.
async fn tamper(pool: &PgPool, sql: &str) {
    let mut tx = pool.begin().await.expect("begin");
    for statement in [
        "ALTER TABLE audit_events DISABLE TRIGGER USER",
        "ALTER TABLE audit_chain DISABLE TRIGGER USER",
        sql,
        "ALTER TABLE audit_events ENABLE TRIGGER USER",
        "ALTER TABLE audit_chain ENABLE TRIGGER USER",
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
            .execute(&mut *tx)
            .await
            .expect(statement);
    }
    tx.commit().await.expect("commit");
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn sealed_chain_verifies(pool: PgPool) {
    append_sealed(&pool, 5).await;
    let report = verify(&pool).await.expect("verify");
    assert_eq!(report.summary(), "ok: 5 events");
    assert_eq!(report.unsealed, 0);
    assert!(report.unsealed_warning().is_none());
    let head = report.head.expect("head");
    assert_eq!(head.position, 5);
    assert_eq!(head.hash.len(), 64);
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn unsealed_events_are_a_note_not_a_failure(pool: PgPool) {
    append_sealed(&pool, 2).await;
    append(&pool, &event(9)).await.expect("append");
    let report = verify(&pool).await.expect("verify");
    assert!(report.is_ok());
    assert_eq!(report.verified, 2);
    assert_eq!(report.unsealed, 1);
    assert_eq!(report.stale_unsealed, 0);
    assert!(
        report
            .unsealed_warning()
            .expect("note")
            .starts_with("note: 1 recent")
    );
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn updates_and_deletes_are_refused(pool: PgPool) {
    let ids = append_sealed(&pool, 1).await;
    for sql in [
        "UPDATE audit_events SET detail = 'x'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events CASCADE",
        "UPDATE audit_chain SET hash = '\\x00'",
        "DELETE FROM audit_chain",
    ] {
        let err = sqlx::query(sql).execute(&pool).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(
        verify(&pool).await.expect("verify").verified,
        ids.len() as i64
    );
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn verify_names_an_edited_event(pool: PgPool) {
    let ids = append_sealed(&pool, 5).await;
    tamper(
        &pool,
        &format!(
            "UPDATE audit_events SET outcome = 'denied' WHERE id = {}",
            ids[2]
        ),
    )
    .await;
    let report = verify(&pool).await.expect("verify");
    assert_eq!(report.verified, 2);
    let problem = report.problem.expect("problem");
    assert_eq!(problem.event_id, ids[2]);
    assert!(report.head.is_some());
    assert!(
        format!("event {}: {}", problem.event_id, problem.message).contains("altered"),
        "{problem:?}"
    );
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn verify_names_a_deleted_event(pool: PgPool) {
    let ids = append_sealed(&pool, 5).await;
    tamper(
        &pool,
        &format!("DELETE FROM audit_events WHERE id = {}", ids[1]),
    )
    .await;
    let problem = verify(&pool)
        .await
        .expect("verify")
        .problem
        .expect("problem");
    assert_eq!(problem.event_id, ids[1]);
    assert!(problem.message.contains("deleted"), "{problem:?}");
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn verify_notices_a_deleted_event_and_its_chain_entry(pool: PgPool) {
    let ids = append_sealed(&pool, 5).await;
    tamper(
        &pool,
        &format!(
            "DELETE FROM audit_chain WHERE event_id = {0}; DELETE FROM audit_events WHERE id = {0}",
            ids[1]
        ),
    )
    .await;
    let problem = verify(&pool)
        .await
        .expect("verify")
        .problem
        .expect("problem");
    assert_eq!(problem.event_id, ids[2]);
    assert!(problem.message.contains("missing"), "{problem:?}");
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn verify_names_a_swapped_pair(pool: PgPool) {
    let ids = append_sealed(&pool, 5).await;
    // Swap the chain positions of two events.
    tamper(
        &pool,
        &format!(
            "UPDATE audit_chain SET event_id = CASE event_id WHEN {a} THEN -1 ELSE event_id END WHERE event_id = {a};
             UPDATE audit_chain SET event_id = {a} WHERE event_id = {b};
             UPDATE audit_chain SET event_id = {b} WHERE event_id = -1;",
            a = ids[1],
            b = ids[3]
        ),
    )
    .await;
    let problem = verify(&pool)
        .await
        .expect("verify")
        .problem
        .expect("problem");
    assert_eq!(
        problem.event_id, ids[3],
        "the event now at position 2 is named first"
    );
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn verify_names_an_event_inserted_around_opsbot(pool: PgPool) {
    append_sealed(&pool, 2).await;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO audit_events (actor_id, actor_name, source, command, outcome)
         VALUES (1, 'mallory', 'web', 'deploy run', 'ok') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .expect("insert");
    let problem = verify(&pool)
        .await
        .expect("verify")
        .problem
        .expect("problem");
    assert_eq!(problem.event_id, id);
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn concurrent_appenders_leave_a_valid_chain(pool: PgPool) {
    const APPENDERS: i64 = 8;
    const EACH: i64 = 50;
    let sealer = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut sealed = 0;
            for _ in 0..40 {
                sealed += seal_pending(&pool).await.expect("seal");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            sealed
        })
    };
    let mut tasks = Vec::new();
    for a in 0..APPENDERS {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..EACH {
                // Half inside explicit transactions, to interleave commit order with id order.
                if n % 2 == 0 {
                    let mut tx = pool.begin().await.expect("begin");
                    append(&mut *tx, &event(a * EACH + n))
                        .await
                        .expect("append");
                    tokio::task::yield_now().await;
                    tx.commit().await.expect("commit");
                } else {
                    append(&pool, &event(a * EACH + n)).await.expect("append");
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("appender");
    }
    let during = sealer.await.expect("sealer");
    let after = seal_pending(&pool).await.expect("seal");
    assert_eq!(during + after, (APPENDERS * EACH) as usize);
    let report = verify(&pool).await.expect("verify");
    assert_eq!(report.summary(), format!("ok: {} events", APPENDERS * EACH));
    assert_eq!(report.unsealed, 0);
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn a_rolled_back_append_leaves_nothing(pool: PgPool) {
    let mut tx = pool.begin().await.expect("begin");
    append(&mut *tx, &event(1)).await.expect("append");
    tx.rollback().await.expect("rollback");
    append_sealed(&pool, 1).await;
    assert_eq!(
        verify(&pool).await.expect("verify").summary(),
        "ok: 1 events"
    );
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn a_replayed_interaction_is_refused(pool: PgPool) {
    let mut first = event(1);
    first.interaction_id = Some(777);
    append(&pool, &first).await.expect("first");
    let err = append(&pool, &first).await.expect_err("replay");
    assert!(matches!(err, CommandError::Replayed(_)), "{err:?}");
}

fn desk(pool: PgPool) -> Desk {
    let roles = RoleMap::new(
        [("ops".to_string(), vec!["audit:*".to_string()])]
            .into_iter()
            .collect(),
    )
    .expect("roles");
    Desk::new(pool, roles)
}

fn invocation(roles: &[&str], command: &str) -> Invocation {
    let actor = Actor {
        id: 42,
        name: "ana".into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        source: Source::Discord,
    };
    Invocation::new(actor, command, json!({"count": 5}))
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn a_denial_is_audited_and_names_the_permission(pool: PgPool) {
    let desk = desk(pool.clone());
    let err = desk
        .audit_recent(&invocation(&["dev"], "audit recent"), AuditQuery::default())
        .await
        .expect_err("denied");
    assert_eq!(
        err.to_string(),
        "you need the `audit:read` permission to read the audit log"
    );
    let events = tail(&pool, 10).await.expect("tail");
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(
        (e.command.as_str(), e.outcome.as_str()),
        ("audit recent", "denied")
    );
    assert_eq!(e.actor_name, "ana");
    assert_eq!(e.args, json!({"count": 5}));
    assert!(e.detail.contains("audit:read"));
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn allowed_commands_are_audited_too(pool: PgPool) {
    let desk = desk(pool.clone());
    desk.whoami(&invocation(&[], "whoami"))
        .await
        .expect("whoami");
    let recent = desk
        .audit_recent(
            &invocation(&["ops"], "audit recent"),
            AuditQuery {
                limit: 10,
                ..AuditQuery::default()
            },
        )
        .await
        .expect("recent");
    assert_eq!(
        recent.events.len(),
        1,
        "the whoami event; this command is recorded after it reads"
    );
    let report = desk
        .audit_verify(&invocation(&["ops"], "audit verify"))
        .await
        .expect("verify");
    assert!(report.is_ok());
    let outcomes: Vec<_> = tail(&pool, 10)
        .await
        .expect("tail")
        .into_iter()
        .map(|e| format!("{} {}", e.command, e.outcome))
        .collect();
    assert_eq!(
        outcomes,
        ["whoami ok", "audit recent ok", "audit verify ok"]
    );
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn query_filters_and_pages(pool: PgPool) {
    for n in 0..7 {
        let mut e = event(n);
        e.command = if n % 2 == 0 {
            "deploy run".into()
        } else {
            "whoami".into()
        };
        e.outcome = if n == 3 { Outcome::Denied } else { Outcome::Ok };
        e.detail = format!("detail {n}");
        append(&pool, &e).await.expect("append");
    }
    seal_pending(&pool).await.expect("seal");
    let q = |f: fn(&mut AuditQuery)| {
        let mut q = AuditQuery {
            limit: 50,
            ..AuditQuery::default()
        };
        f(&mut q);
        q
    };
    let count = |q: AuditQuery| {
        let pool = pool.clone();
        async move { query(&pool, &q).await.expect("query").events.len() }
    };
    assert_eq!(count(q(|q| q.command = Some("deploy".into()))).await, 4);
    assert_eq!(count(q(|q| q.command = Some("deploy run".into()))).await, 4);
    assert_eq!(count(q(|q| q.command = Some("dep".into()))).await, 0);
    assert_eq!(count(q(|q| q.outcome = Some("denied".into()))).await, 1);
    assert_eq!(count(q(|q| q.actor = Some("USER3".into()))).await, 1);
    assert_eq!(count(q(|q| q.actor = Some("1004".into()))).await, 1);
    assert_eq!(count(q(|q| q.text = Some("DETAIL 5".into()))).await, 1);
    assert_eq!(count(q(|q| q.text = Some("<script>".into()))).await, 7);
    assert_eq!(count(q(|q| q.text = Some("100%".into()))).await, 0);
    assert_eq!(count(q(|q| q.source = Some("web".into()))).await, 0);
    assert_eq!(
        count(q(
            |q| q.since = Some(chrono::Utc::now() + chrono::Duration::hours(1))
        ))
        .await,
        0
    );
    assert_eq!(
        count(q(
            |q| q.until = Some(chrono::Utc::now() + chrono::Duration::hours(1))
        ))
        .await,
        7
    );

    // Keyset pages of 3: 3 + 3 + 1, newest first, no overlap.
    let mut seen = Vec::new();
    let mut page_query = AuditQuery {
        limit: 3,
        ..AuditQuery::default()
    };
    loop {
        let page = query(&pool, &page_query).await.expect("page");
        seen.extend(page.events.iter().map(|e| e.id));
        match page.next_cursor {
            Some(c) => page_query.before_id = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    assert!(seen.windows(2).all(|w| w[0] > w[1]));
    let events = tail(&pool, 3).await.expect("tail");
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    assert!(
        events
            .iter()
            .all(|e| e.hash.is_some() && e.position.is_some())
    );
}
