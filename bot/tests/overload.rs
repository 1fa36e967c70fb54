//! Load shedding through the emulator: with `[discord] max_in_flight = 1`, a command that
//! takes long (a `/metrics query` against a Prometheus that answers after two seconds) holds
//! the one place; a `/whoami` meanwhile is answered at once, ephemerally, "busy, try again"
//! (nothing ran: no `whoami` event), the refusals are recorded as one audit event with their
//! count, and once the place is free commands run again.

mod support;

use std::time::{Duration, Instant};

use sqlx::PgPool;
use support::TestBot;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn config(prometheus: &str) -> String {
    format!(
        r#"
[roles]
ops = ["metrics:query"]
[http]
listen = "127.0.0.1:0"
[discord]
max_in_flight = 1
[prometheus]
url = "{prometheus}"
timeout = "10s"
"#
    )
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn past_max_in_flight_a_command_is_answered_busy_at_once_and_audited(pool: PgPool) {
    let prometheus = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({
                    "status": "success",
                    "data": {"resultType": "vector", "result": []}
                }))
                .set_delay(Duration::from_secs(2)),
        )
        .mount(&prometheus)
        .await;
    let mut bot = TestBot::with_config(pool.clone(), &config(&prometheus.uri())).await;
    let ana = bot.emulator.member("ana", Some(&["ops".to_owned()]));
    let slow = bot
        .emulator
        .type_line(ana, bot.general, "/metrics query promql:slow_metric")
        .expect("typed");
    // The slow command holds the place once Prometheus has its query (opsbot also asks
    // Prometheus other things, e.g. for autocomplete and readiness).
    let started = Instant::now();
    while !prometheus
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .any(|r| String::from_utf8_lossy(&r.body).contains("slow_metric"))
    {
        if started.elapsed() > Duration::from_secs(20) {
            let answer = bot.answer_to(slow).await;
            panic!("never queried; the answer: {answer:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = Instant::now();
    let busy = bot.say("bo", &[], "/whoami").await;
    let waited = asked.elapsed();
    assert!(busy.ephemeral, "{busy:?}");
    assert!(
        busy.content.contains("busy") && busy.content.contains("nothing was changed"),
        "{}",
        busy.content
    );
    eprintln!("busy answer after {waited:?}");
    bot.answer_to(slow).await;

    let again = bot.say("bo", &[], "/whoami").await;
    assert!(again.content.contains("bo"), "{}", again.content);
    let whoami_runs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE command = 'whoami' AND outcome = 'ok'",
    )
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(whoami_runs, 1, "the refused one never ran");
    let desk = &bot.services.as_ref().expect("services").desk;
    desk.flush_refusals(true).await.expect("flush");
    let shed: Vec<(serde_json::Value, String)> = sqlx::query_as(
        "SELECT args, outcome FROM audit_events WHERE command = 'whoami' AND outcome = 'error'",
    )
    .fetch_all(&pool)
    .await
    .expect("audit");
    assert_eq!(shed.len(), 1, "{shed:?}");
    assert_eq!(shed[0].0["shed"], 1);
    assert_eq!(shed[0].0["capacity"], 1);
}
