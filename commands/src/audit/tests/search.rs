//! The audit log's text search and command-group filter after issue 14 (trigram index,
//! first-word index): the same matches as before, and a search too short for the index
//! refused with the reason, in the domain as at the web door.

use serde_json::json;
use sqlx::PgPool;

use super::{desk, invocation};
use crate::actor::Source;
use crate::audit::browse::{COUNT_BOUND, count_matching, newer_matching};
use crate::audit::{AuditQuery, NewEvent, Outcome, QUERY_MAX_LIMIT, append, query};
use crate::error::CommandError;

fn event(command: &str, args: serde_json::Value, detail: &str) -> NewEvent {
    NewEvent {
        actor_id: 7,
        actor_name: "ana".into(),
        source: Source::Discord,
        guild_id: None,
        channel_id: None,
        interaction_id: None,
        command: command.into(),
        args,
        outcome: Outcome::Ok,
        detail: detail.into(),
        correlation_id: None,
    }
}

/// Ids the page, the count and the newer-than query each match for `filter`, newest first.
async fn matched(pool: &PgPool, filter: AuditQuery) -> Vec<i64> {
    let filter = AuditQuery {
        limit: QUERY_MAX_LIMIT,
        ..filter
    };
    let page: Vec<i64> = query(pool, &filter)
        .await
        .expect("page")
        .events
        .iter()
        .map(|e| e.id)
        .collect();
    let count = count_matching(pool, &filter, COUNT_BOUND)
        .await
        .expect("count");
    assert_eq!(count as usize, page.len(), "{filter:?}");
    let mut newer: Vec<i64> = newer_matching(pool, &filter, 0, 500)
        .await
        .expect("newer")
        .iter()
        .map(|e| e.id)
        .collect();
    newer.reverse();
    assert_eq!(newer, page, "{filter:?}");
    page
}

fn text(q: &str) -> AuditQuery {
    AuditQuery {
        text: Some(q.into()),
        ..AuditQuery::default()
    }
}

fn command(c: &str) -> AuditQuery {
    AuditQuery {
        command: Some(c.into()),
        ..AuditQuery::default()
    }
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn a_word_is_found_in_the_args_the_detail_or_the_command(pool: PgPool) {
    let mut ids = Vec::new();
    for e in [
        event("deploy run", json!({"service": "Billing"}), ""),
        event("whoami", json!({}), "upstream TIMEOUT after 30s"),
        event("alerts silence", json!({}), ""),
        event("audit export csv", json!({"q": "x"}), "12 events"),
        event("deploy", json!({}), "run  {"),
    ] {
        ids.push(append(&pool, &e).await.expect("append"));
    }
    let [billing, timeout, silence, export, deploy] = ids[..] else {
        panic!("five events")
    };
    assert_eq!(matched(&pool, text("billing")).await, [billing]);
    assert_eq!(matched(&pool, text("timeout")).await, [timeout]);
    assert_eq!(matched(&pool, text("SILENC")).await, [silence]);
    // Across the seams of command, detail and args (joined by spaces for the index): no.
    assert_eq!(matched(&pool, text("run  {")).await, [deploy]);
    assert_eq!(
        matched(&pool, text("whoami upstream")).await,
        [] as [i64; 0]
    );
    // A group, a command, a command with subcommands; a prefix that is not a word is not one.
    assert_eq!(matched(&pool, command("deploy")).await, [deploy, billing]);
    assert_eq!(matched(&pool, command("deploy run")).await, [billing]);
    assert_eq!(matched(&pool, command("audit export")).await, [export]);
    assert_eq!(matched(&pool, command("audit")).await, [export]);
    assert_eq!(matched(&pool, command("dep")).await, [] as [i64; 0]);
    assert_eq!(matched(&pool, command("audit exp")).await, [] as [i64; 0]);
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn a_search_shorter_than_three_letters_or_digits_is_refused_and_audited(pool: PgPool) {
    let desk = desk(pool.clone());
    for short in ["db", "0%", "a-b"] {
        let err = desk
            .audit_recent(&invocation(&["ops"], "audit recent"), text(short))
            .await
            .expect_err(short);
        let CommandError::Invalid(why) = &err else {
            panic!("{short}: {err:?}")
        };
        assert!(
            why.contains("at least 3 letters or digits in a row"),
            "{why}"
        );
    }
    let refused: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE command = 'audit recent' AND outcome = 'invalid'",
    )
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(refused, 3);
    desk.audit_recent(&invocation(&["ops"], "audit recent"), text("dbx"))
        .await
        .expect("three letters are enough");
}
