//! Discord answering 429 (global, with and without `X-RateLimit-Global`; per resource) and
//! 5xx in bursts while the outbox dispatcher delivers a steady stream of messages to 16
//! channels, one of them busy: nothing lost, nothing posted twice, never more than 50
//! requests in any second at the fake, and the limits the fake enforces (a bucket per
//! channel, the global 50/s) are hit by fewer than 10 % of the requests once learnt.
//!
//! The suite runs 10 s of bursts; `scripts/fault-discord-bursts` runs the full minute
//! (`OPSBOT_FAULT_BURST_SECONDS=60`).

use std::time::Duration;

use opsbot::dispatch::{DispatchSettings, Dispatcher};
use opsbot_commands::chat::Message;
use opsbot_commands::outbox;
use secrecy::SecretString;
use sqlx::PgPool;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer};

use crate::fake_discord::{GLOBAL_LIMIT, RateLimitedDiscord};
use crate::harness::eventually;
use crate::support::private_pg::PrivatePostgres;

/// Messages queued per second: near the global limit, so the dispatcher runs at its pace.
const RATE: u64 = 40;
const CHANNELS: i64 = 16;

#[expect(
    clippy::disallowed_methods,
    reason = "a knob of this test for scripts/fault-discord-bursts, not opsbot configuration"
)]
fn burst_seconds() -> u64 {
    std::env::var("OPSBOT_FAULT_BURST_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

#[tokio::test]
async fn bursts_of_429s_and_5xx_lose_nothing_post_nothing_twice_and_keep_to_the_limits() {
    let seconds = burst_seconds();
    let pg = PrivatePostgres::start().await;
    let pool = PgPool::connect(&pg.url()).await.expect("connect");
    opsbot_commands::MIGRATOR.run(&pool).await.expect("migrate");
    let server = MockServer::start().await;
    let discord = RateLimitedDiscord::new();
    Mock::given(method("POST"))
        .and(path_regex(r"^/api/v10/channels/\d+/messages$"))
        .respond_with(discord.clone())
        .mount(&server)
        .await;
    let dispatcher = Dispatcher::new(
        pool.clone(),
        &server.uri(),
        SecretString::from("faults-token"),
        DispatchSettings::default(),
    )
    .expect("dispatcher");
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(dispatcher.run(shutdown.clone()));

    let started = Instant::now();
    let total = RATE * seconds;
    let mut ids = Vec::new();
    for i in 0..total {
        // A tenth of the messages to one hot channel (4 a second, near its bucket's 5), the
        // rest spread over fifteen.
        let channel = if i % 10 == 0 {
            1
        } else {
            2 + (i as i64 % (CHANNELS - 1))
        };
        let id = outbox::enqueue(&pool, channel, &Message::text(format!("message {i}")), None)
            .await
            .expect("enqueue");
        ids.push(id);
        tokio::time::sleep_until(started + Duration::from_millis((i + 1) * 1000 / RATE)).await;
    }
    discord.stop_bursts();
    let bursts_ended = Instant::now();
    let drained = eventually(
        "every message is delivered",
        Duration::from_secs(180),
        || async {
            let open: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE status = 'pending'")
                    .fetch_one(&pool)
                    .await
                    .ok()?;
            (open == 0).then(Instant::now)
        },
    )
    .await;
    shutdown.cancel();
    running.await.expect("dispatcher task");

    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE status = 'dead'")
        .fetch_one(&pool)
        .await
        .expect("dead");
    assert_eq!(dead, 0, "nothing lost (dead-lettered)");
    let rows: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT nonce, message_id FROM outbox ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("rows");
    assert_eq!(rows.len() as u64, total);
    let (made, twice, mismatched) = discord.tally(|t| {
        let twice = t.made.values().filter(|m| m.ok_answers > 1).count();
        let mismatched = rows
            .iter()
            .filter(|(nonce, id)| t.made.get(nonce).map(|m| m.id as i64) != *id)
            .count();
        (t.made.len(), twice, mismatched)
    });
    assert_eq!(made as u64, total, "one message per row");
    assert_eq!(twice, 0, "no message acknowledged twice");
    assert_eq!(mismatched, 0, "every row holds the id of its message");
    discord.tally(|t| {
        let learnt_share = t.learnt_limit_429s as f64 / t.learnt_requests.max(1) as f64;
        let all_429s = t.limit_429s + t.burst_global_429s + t.burst_route_429s;
        eprintln!(
            "FAULT discord: {total} messages over {seconds} s of bursts to {CHANNELS} channels, delivered {:?} after the bursts ended ({:?} in all); {} requests: {} scripted global 429s, {} scripted per-resource 429s, {} scripted 5xx ({} after the message was made), {} 429s from the fake's limits ({} after the first second: {:.2} % of {} requests); {all_429s} 429s in all ({:.1} %); most requests in any second {} (limit {GLOBAL_LIMIT}); per whole second {:?}",
            drained - bursts_ended,
            drained - started,
            t.requests,
            t.burst_global_429s,
            t.burst_route_429s,
            t.burst_5xx,
            t.lost_answers,
            t.limit_429s,
            t.learnt_limit_429s,
            learnt_share * 100.0,
            t.learnt_requests,
            all_429s as f64 * 100.0 / t.requests.max(1) as f64,
            t.max_in_any_second,
            t.per_second,
        );
        assert!(
            t.max_in_any_second <= GLOBAL_LIMIT,
            "{} requests in one second",
            t.max_in_any_second
        );
        assert!(
            learnt_share < 0.10,
            "{:.1} % of requests hit a limit once learnt",
            learnt_share * 100.0
        );
    });
}
