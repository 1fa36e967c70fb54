//! Events out against real Postgres with a scripted sink: order, the cursor, failures.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;
use sqlx::PgPool;
use tokio::sync::Mutex;

use super::*;
use crate::actor::Source;
use crate::audit::{NewEvent, Outcome, append, seal_pending};

fn event(n: i64, command: &str) -> NewEvent {
    NewEvent {
        actor_id: 1000 + n,
        actor_name: format!("user{n}"),
        source: Source::Shell,
        guild_id: None,
        channel_id: None,
        interaction_id: None,
        command: command.into(),
        args: json!({ "n": n }),
        outcome: Outcome::Ok,
        detail: String::new(),
        correlation_id: None,
    }
}

async fn append_sealed(pool: &PgPool, count: i64) {
    for n in 0..count {
        append(pool, &event(n, "deploy run")).await.expect("append");
    }
    seal_pending(pool).await.expect("seal");
}

/// Records what it was given; fails while `down` is set.
#[derive(Debug, Clone, Default)]
struct Recording {
    got: Arc<Mutex<Vec<Outgoing>>>,
    down: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl Sink for Recording {
    fn name(&self) -> &'static str {
        "test"
    }
    async fn publish(&self, batch: &[Outgoing]) -> Result<(), EventsError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(EventsError::Broker {
                sink: "test".into(),
                message: "down".into(),
            });
        }
        self.got.lock().await.extend_from_slice(batch);
        Ok(())
    }
}

#[test]
fn subjects_are_the_command_group_as_one_token() {
    assert_eq!(subject_token("deploy run"), "deploy");
    assert_eq!(subject_token("incident"), "incident");
    assert_eq!(subject_token("Audit verify"), "audit");
    assert_eq!(subject_token("a.b*c> d"), "a_b_c_");
    assert_eq!(subject_token("   "), "unknown");
    assert_eq!(subject_token("déploy"), "d_ploy");
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn publishes_in_chain_order_and_resumes_after_the_cursor(pool: PgPool) {
    append_sealed(&pool, 250).await;
    let sink = Recording::default();
    let publisher = Publisher::new(pool.clone(), Box::new(sink.clone()));
    assert_eq!(publisher.round().await.expect("round"), 250);
    assert_eq!(cursor::load(&pool, "test").await.expect("cursor"), 250);
    assert_eq!(publisher.round().await.expect("round"), 0, "nothing twice");

    append_sealed(&pool, 3).await;
    // A new publisher (a restart) resumes after the stored cursor.
    let restarted = Publisher::new(pool.clone(), Box::new(sink.clone()));
    assert_eq!(restarted.round().await.expect("round"), 3);
    let got = sink.got.lock().await;
    let positions: Vec<i64> = got.iter().map(|o| o.position).collect();
    assert_eq!(positions, (1..=253).collect::<Vec<_>>());
    assert!(got.iter().all(|o| o.group == "deploy"));
    // The JSON is `opsbot audit tail --json`'s line.
    let first = crate::audit::sealed_after(&pool, 0, 1).await.expect("read");
    assert_eq!(got[0].json, serde_json::to_string(&first[0]).expect("json"));
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn a_failing_sink_never_advances_the_cursor(pool: PgPool) {
    append_sealed(&pool, 5).await;
    let sink = Recording::default();
    sink.down.store(true, Ordering::SeqCst);
    let publisher = Publisher::new(pool.clone(), Box::new(sink.clone()));
    assert!(publisher.round().await.is_err());
    assert_eq!(cursor::load(&pool, "test").await.expect("cursor"), 0);
    let behind = lag(&pool, "test").await.expect("lag");
    assert_eq!(behind.events, 5);
    assert!(
        readiness_line(&pool, &["test"])
            .await
            .starts_with("events: test 5 behind")
    );

    sink.down.store(false, Ordering::SeqCst);
    // Backing off: the next round right away publishes nothing.
    assert_eq!(publisher.round().await.expect("round"), 0);
    let after_backoff = Publisher::new(pool.clone(), Box::new(sink.clone()));
    assert_eq!(after_backoff.round().await.expect("round"), 5);
    assert_eq!(
        lag(&pool, "test").await.expect("lag"),
        Lag {
            events: 0,
            seconds: 0
        }
    );
    assert_eq!(
        readiness_line(&pool, &["test"]).await,
        "events: test 0 behind"
    );
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn the_cursor_never_moves_back(pool: PgPool) {
    cursor::store(&pool, "nats", 10).await.expect("store");
    cursor::store(&pool, "nats", 7).await.expect("store");
    assert_eq!(cursor::load(&pool, "nats").await.expect("load"), 10);
    assert_eq!(cursor::load(&pool, "pubsub").await.expect("load"), 0);
}

#[test]
fn pubsub_messages_carry_position_and_ordering_key() {
    let correlation = Uuid::new_v4();
    let body = pubsub::publish_body(&[
        Outgoing {
            position: 7,
            group: "deploy".into(),
            correlation_id: Some(correlation),
            json: "{\"a\":1}".into(),
        },
        Outgoing {
            position: 8,
            group: "whoami".into(),
            correlation_id: None,
            json: "{}".into(),
        },
    ]);
    assert_eq!(body["messages"][0]["attributes"]["position"], "7");
    assert_eq!(body["messages"][0]["orderingKey"], correlation.to_string());
    assert_eq!(body["messages"][0]["data"], "eyJhIjoxfQ==");
    assert_eq!(body["messages"][1]["orderingKey"], pubsub::UNCORRELATED_KEY);
}
