//! The outbox dispatcher against a fake Discord (wiremock) and a real Postgres.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opsbot::dispatch::{DispatchSettings, Dispatcher, create_message_body};
use opsbot_commands::audit;
use opsbot_commands::chat::{Embed, Field, Message};
use opsbot_commands::outbox::{self, OutboxStatus};
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{body_json, header, method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "test-token";
const MESSAGES_PATH: &str = r"^/api/v10/channels/\d+/messages$";

/// Small delays so retries happen within the test; the real defaults otherwise.
fn settings() -> DispatchSettings {
    DispatchSettings {
        max_attempts: 4,
        base_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(40),
        poll_interval: Duration::from_millis(10),
        min_request_spacing: Duration::from_millis(1),
        ..DispatchSettings::default()
    }
}

fn dispatcher(pool: &PgPool, server: &MockServer, settings: DispatchSettings) -> Dispatcher {
    Dispatcher::new(
        pool.clone(),
        &server.uri(),
        SecretString::from(TOKEN),
        settings,
    )
    .expect("dispatcher")
}

async fn enqueue(pool: &PgPool, channel_id: i64, message: &Message) -> i64 {
    outbox::enqueue(pool, channel_id, message, None)
        .await
        .expect("enqueue")
}

async fn nonce_of(pool: &PgPool, id: i64) -> String {
    sqlx::query_scalar("SELECT nonce FROM outbox WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("nonce")
}

async fn status(pool: &PgPool, id: i64) -> OutboxStatus {
    outbox::status(pool, id)
        .await
        .expect("status")
        .expect("row exists")
}

/// Calls `deliver_due` until none of `ids` is pending any more.
async fn drain(dispatcher: &Dispatcher, pool: &PgPool, ids: &[i64]) {
    wait_until_settled(pool, ids, || async {
        dispatcher.deliver_due().await.expect("deliver_due");
    })
    .await;
}

/// Runs `step` (then a short sleep) until no row of `ids` is pending; fails after 30 s.
async fn wait_until_settled<F, Fut>(pool: &PgPool, ids: &[i64], mut step: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        step().await;
        let mut pending = 0;
        for id in ids {
            if status(pool, *id).await.status == "pending" {
                pending += 1;
            }
        }
        if pending == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{pending} rows still pending"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What the fake Discord saw for one nonce.
#[derive(Debug, Default, Clone, PartialEq)]
struct NonceRecord {
    message_id: i64,
    /// Messages created (Discord creates one per nonce at most).
    created: u32,
    /// 2xx answers given for this nonce (the dispatcher should never need a second).
    ok_answers: u32,
}

/// A Discord that honours `enforce_nonce`: a repeated nonce gets the message made for it the
/// first time. Every `bucket_every`-th answer reports an exhausted bucket.
#[derive(Clone, Default)]
struct FakeDiscord {
    nonces: Arc<Mutex<HashMap<String, NonceRecord>>>,
    answers: Arc<Mutex<u32>>,
    bucket_every: u32,
}

impl FakeDiscord {
    fn records(&self) -> HashMap<String, NonceRecord> {
        self.nonces.lock().expect("lock").clone()
    }
}

impl Respond for FakeDiscord {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = request.body_json().expect("JSON body");
        assert_eq!(body["enforce_nonce"], json!(true));
        let nonce = body["nonce"].as_str().expect("nonce").to_owned();
        let mut nonces = self.nonces.lock().expect("lock");
        let next_id = 1_000_000 + i64::try_from(nonces.len()).expect("small");
        let record = nonces.entry(nonce.clone()).or_insert_with(|| NonceRecord {
            message_id: next_id,
            created: 1,
            ok_answers: 0,
        });
        record.ok_answers += 1;
        let mut answers = self.answers.lock().expect("lock");
        *answers += 1;
        let mut response = ResponseTemplate::new(200).set_body_json(json!({
            "id": record.message_id.to_string(),
            "nonce": nonce,
            "content": body["content"],
        }));
        if self.bucket_every > 0 && answers.is_multiple_of(self.bucket_every) {
            response = response
                .insert_header("X-RateLimit-Remaining", "0")
                .insert_header("X-RateLimit-Reset-After", "0.01");
        }
        response
    }
}

fn rate_limited(retry_after: f64, global: bool) -> ResponseTemplate {
    let mut response = ResponseTemplate::new(429).set_body_json(json!({
        "message": "You are being rate limited.",
        "retry_after": retry_after,
        "global": global,
    }));
    if global {
        response = response.insert_header("X-RateLimit-Scope", "global");
    }
    response
}

fn deploy_message() -> Message {
    Message {
        content: "api v1.2.3 is live in production @everyone".into(),
        embeds: vec![Embed {
            title: "Deploy succeeded".into(),
            description: "api v1.2.3 → production".into(),
            url: Some("https://github.com/acme/api/actions/runs/42".into()),
            color: Some(0x2ecc71),
            fields: vec![
                Field {
                    name: "Requested by".into(),
                    value: "alice".into(),
                    inline: true,
                },
                Field {
                    name: "Approved by".into(),
                    value: "bob".into(),
                    inline: true,
                },
            ],
            footer: Some("deploy #17".into()),
        }],
        buttons: vec![opsbot_commands::chat::Button {
            label: "Approve".into(),
            custom_id: "deploy-approve|17|abc".into(),
            style: opsbot_commands::chat::ButtonStyle::Success,
        }],
        ..Message::default()
    }
}

#[test]
fn body_translates_the_message() {
    insta::assert_json_snapshot!(create_message_body(&deploy_message(), "0123456789abcdef01234567"), @r#"
    {
      "allowed_mentions": {
        "parse": []
      },
      "components": [
        {
          "components": [
            {
              "custom_id": "deploy-approve|17|abc",
              "label": "Approve",
              "style": 3,
              "type": 2
            }
          ],
          "type": 1
        }
      ],
      "content": "api v1.2.3 is live in production @everyone",
      "embeds": [
        {
          "color": 3066993,
          "description": "api v1.2.3 → production",
          "fields": [
            {
              "inline": true,
              "name": "Requested by",
              "value": "alice"
            },
            {
              "inline": true,
              "name": "Approved by",
              "value": "bob"
            }
          ],
          "footer": {
            "text": "deploy #17"
          },
          "title": "Deploy succeeded",
          "url": "https://github.com/acme/api/actions/runs/42"
        }
      ],
      "enforce_nonce": true,
      "nonce": "0123456789abcdef01234567"
    }
    "#);
}

fn chars(value: &Value) -> usize {
    value.as_str().map_or(0, |s| s.chars().count())
}

#[test]
fn body_is_cut_to_discord_limits() {
    let long = |n: usize| "é".repeat(n);
    let embed = Embed {
        title: long(300),
        description: long(5000).into(),
        url: None,
        color: None,
        fields: (0..30)
            .map(|_| Field {
                name: long(300),
                value: long(2000).into(),
                inline: false,
            })
            .collect(),
        footer: Some(long(3000)),
    };
    let message = Message {
        content: long(2500).into(),
        embeds: vec![embed; 12],
        ..Message::default()
    };
    let body = create_message_body(&message, "n");
    assert_eq!(chars(&body["content"]), 2000);
    assert!(body["content"].as_str().expect("content").ends_with('…'));
    let embeds = body["embeds"].as_array().expect("embeds");
    assert!(embeds.len() <= 10);
    assert_eq!(chars(&embeds[0]["title"]), 256);
    assert_eq!(chars(&embeds[0]["description"]), 4096);
    let mut total = 0;
    for embed in embeds {
        let fields = embed["fields"].as_array().map_or(&[][..], |f| &f[..]);
        assert!(fields.len() <= 25);
        total += chars(&embed["title"]) + chars(&embed["description"]);
        total += chars(&embed["footer"]["text"]);
        for field in fields {
            assert!((1..=256).contains(&chars(&field["name"])));
            assert!((1..=1024).contains(&chars(&field["value"])));
            total += chars(&field["name"]) + chars(&field["value"]);
        }
    }
    assert_eq!(total, 6000, "the embeds use the whole budget and no more");
}

#[test]
fn blank_fields_are_not_sent_empty() {
    let mut message = deploy_message();
    message.embeds[0].fields[1].value = "  ".into();
    message.embeds[0].fields[0].name = String::new();
    let body = create_message_body(&message, "n");
    let fields = &body["embeds"][0]["fields"];
    assert_eq!(fields[0]["name"], json!("\u{200b}"));
    assert_eq!(fields[1]["value"], json!("\u{200b}"));
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn posts_once_with_nonce_and_records_the_message_id(pool: PgPool) {
    let server = MockServer::start().await;
    let id = enqueue(&pool, 42, &deploy_message()).await;
    let nonce = nonce_of(&pool, id).await;
    assert_eq!(nonce.len(), 24);
    Mock::given(method("POST"))
        .and(path("/api/v10/channels/42/messages"))
        .and(header("authorization", "Bot test-token"))
        .and(header("content-type", "application/json"))
        .and(body_json(create_message_body(&deploy_message(), &nonce)))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "1234567890123456789"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let dispatcher = dispatcher(&pool, &server, settings());

    assert_eq!(dispatcher.deliver_due().await.expect("deliver"), 1);
    assert_eq!(dispatcher.deliver_due().await.expect("deliver"), 0);

    let requests = server.received_requests().await.expect("recording");
    assert_eq!(requests.len(), 1);
    let body: Value = requests[0].body_json().expect("JSON");
    assert_eq!(body["nonce"], json!(nonce));
    assert_eq!(body["enforce_nonce"], json!(true));
    assert_eq!(body["allowed_mentions"], json!({"parse": []}));
    let row = status(&pool, id).await;
    assert_eq!(
        row,
        OutboxStatus {
            id,
            status: "sent".into(),
            attempts: 1,
            rate_limited: 0,
            last_error: None,
            message_id: Some(1_234_567_890_123_456_789),
        }
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn waits_out_a_429_then_delivers_once(pool: PgPool) {
    let server = MockServer::start().await;
    let discord = FakeDiscord::default();
    Mock::given(method("POST"))
        .respond_with(rate_limited(2.0, false))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(discord.clone())
        .mount(&server)
        .await;
    let id = enqueue(&pool, 7, &Message::text("hello")).await;
    let dispatcher = dispatcher(&pool, &server, settings());

    assert_eq!(dispatcher.deliver_due().await.expect("deliver"), 0);
    let row = status(&pool, id).await;
    assert_eq!(
        (row.status.as_str(), row.attempts, row.rate_limited),
        ("pending", 0, 1)
    );
    let error = row.last_error.expect("error recorded");
    assert!(error.starts_with("HTTP 429 Too Many Requests"), "{error}");
    // Not due before retry_after: an immediate pass sends nothing.
    assert_eq!(dispatcher.deliver_due().await.expect("deliver"), 0);
    assert_eq!(
        server.received_requests().await.expect("recording").len(),
        1
    );

    drain(&dispatcher, &pool, &[id]).await;
    let row = status(&pool, id).await;
    assert_eq!(
        (row.status.as_str(), row.attempts, row.rate_limited),
        ("sent", 1, 1)
    );
    assert_eq!(
        server.received_requests().await.expect("recording").len(),
        2
    );
    let records = discord.records();
    assert_eq!(records.len(), 1);
    assert!(
        records
            .values()
            .all(|r| r.ok_answers == 1 && Some(r.message_id) == row.message_id)
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn rate_limits_do_not_count_toward_dead_lettering(pool: PgPool) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(rate_limited(0.01, false))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(FakeDiscord::default())
        .mount(&server)
        .await;
    let id = enqueue(&pool, 7, &Message::text("hello")).await;
    let dispatcher = dispatcher(
        &pool,
        &server,
        DispatchSettings {
            max_attempts: 2,
            ..settings()
        },
    );

    drain(&dispatcher, &pool, &[id]).await;
    let row = status(&pool, id).await;
    assert_eq!(
        (row.status.as_str(), row.attempts, row.rate_limited),
        ("sent", 2, 3)
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn retries_server_errors_until_delivered(pool: PgPool) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("upstream hiccup"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "99"})))
        .mount(&server)
        .await;
    let id = enqueue(&pool, 7, &Message::text("hello")).await;
    let dispatcher = dispatcher(&pool, &server, settings());

    assert_eq!(dispatcher.deliver_due().await.expect("deliver"), 0);
    let row = status(&pool, id).await;
    assert_eq!(
        row.last_error.as_deref(),
        Some("HTTP 500 Internal Server Error: upstream hiccup")
    );
    drain(&dispatcher, &pool, &[id]).await;
    let row = status(&pool, id).await;
    assert_eq!(
        (row.status.as_str(), row.attempts, row.message_id),
        ("sent", 3, Some(99))
    );
    assert_eq!(
        server.received_requests().await.expect("recording").len(),
        3
    );
}

/// The newest audit event, which must be the dead-lettering of `id` in `channel_id`.
async fn assert_dead_letter_audited(pool: &PgPool, id: i64, channel_id: i64, detail: &str) {
    let events = audit::tail(pool, 1).await.expect("audit");
    let event = events.last().expect("an audit event");
    assert_eq!(event.command, "outbox deliver");
    assert_eq!(event.outcome, "error");
    assert_eq!(event.source, "scheduler");
    assert_eq!(event.actor_name, "opsbot");
    assert_eq!(event.channel_id, Some(channel_id));
    assert_eq!(
        event.args,
        json!({"outbox_id": id, "channel_id": channel_id})
    );
    assert_eq!(event.detail, detail);
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn not_found_is_dead_at_once_and_audited(pool: PgPool) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"message": "Unknown Channel", "code": 10003})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let id = enqueue(&pool, 404, &Message::text("hello")).await;
    let dispatcher = dispatcher(&pool, &server, settings());

    assert_eq!(dispatcher.deliver_due().await.expect("deliver"), 0);
    assert_eq!(dispatcher.deliver_due().await.expect("deliver"), 0);
    let row = status(&pool, id).await;
    let error =
        "Discord refused the message: HTTP 404 Not Found: Unknown Channel (Discord code 10003)";
    assert_eq!(
        (row.status.as_str(), row.attempts, row.last_error.as_deref()),
        ("dead", 1, Some(error))
    );
    assert_dead_letter_audited(&pool, id, 404, error).await;
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn always_failing_is_dead_after_max_attempts(pool: PgPool) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .expect(3)
        .mount(&server)
        .await;
    let id = enqueue(&pool, 9, &Message::text("hello")).await;
    let dispatcher = dispatcher(
        &pool,
        &server,
        DispatchSettings {
            max_attempts: 3,
            ..settings()
        },
    );

    drain(&dispatcher, &pool, &[id]).await;
    let row = status(&pool, id).await;
    let error = "gave up after 3 failed attempts; last: HTTP 503 Service Unavailable";
    assert_eq!(
        (row.status.as_str(), row.attempts, row.last_error.as_deref()),
        ("dead", 3, Some(error))
    );
    assert_dead_letter_audited(&pool, id, 9, error).await;
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn unreachable_discord_is_retried_then_dead(pool: PgPool) {
    // A port nobody listens on: connections are refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let id = enqueue(&pool, 9, &Message::text("hello")).await;
    let dispatcher = Dispatcher::new(
        pool.clone(),
        &base,
        SecretString::from(TOKEN),
        DispatchSettings {
            max_attempts: 2,
            ..settings()
        },
    )
    .expect("dispatcher");

    drain(&dispatcher, &pool, &[id]).await;
    let row = status(&pool, id).await;
    assert_eq!((row.status.as_str(), row.attempts), ("dead", 2));
    let error = row.last_error.expect("error");
    assert!(
        error.starts_with("gave up after 2 failed attempts; last: request to Discord failed"),
        "{error}"
    );
    assert!(!error.contains(TOKEN));
}

/// Runs `dispatchers` until every row of `ids` is settled, then stops them.
async fn run_until_settled(pool: &PgPool, ids: &[i64], dispatchers: Vec<Dispatcher>) {
    let shutdown = CancellationToken::new();
    let tasks: Vec<_> = dispatchers
        .into_iter()
        .map(|d| tokio::spawn(d.run(shutdown.clone())))
        .collect();
    wait_until_settled(pool, ids, || async {
        tokio::time::sleep(Duration::from_millis(20)).await;
    })
    .await;
    shutdown.cancel();
    for task in tasks {
        task.await.expect("dispatcher task");
    }
}

/// Asserts that each nonce of `ids` was created once, answered 2xx once, and that its row
/// holds the message id Discord gave.
async fn assert_each_delivered_once(pool: &PgPool, ids: &[i64], discord: &FakeDiscord) {
    let records = discord.records();
    assert_eq!(records.len(), ids.len());
    for id in ids {
        let nonce = nonce_of(pool, *id).await;
        let record = &records[&nonce];
        assert_eq!(
            (record.created, record.ok_answers),
            (1, 1),
            "nonce of row {id}"
        );
        let row = status(pool, *id).await;
        assert_eq!(row.status, "sent");
        assert_eq!(row.message_id, Some(record.message_id));
    }
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn a_storm_of_429s_and_500s_delivers_everything_once(pool: PgPool) {
    let server = MockServer::start().await;
    let discord = FakeDiscord {
        bucket_every: 7,
        ..FakeDiscord::default()
    };
    Mock::given(path("/api/v10/channels/1/messages"))
        .respond_with(rate_limited(0.02, false))
        .up_to_n_times(6)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v10/channels/2/messages"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(5)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v10/channels/3/messages"))
        .respond_with(rate_limited(0.03, true))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path_regex(MESSAGES_PATH))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(3)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(MESSAGES_PATH))
        .respond_with(discord.clone())
        .with_priority(10)
        .mount(&server)
        .await;
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(enqueue(&pool, i % 3 + 1, &Message::text(format!("message {i}"))).await);
    }
    // More attempts than there are scripted failures: nothing may be dead-lettered.
    let settings = DispatchSettings {
        max_attempts: 10,
        ..settings()
    };

    run_until_settled(&pool, &ids, vec![dispatcher(&pool, &server, settings)]).await;

    assert_each_delivered_once(&pool, &ids, &discord).await;
    let requests = server.received_requests().await.expect("recording").len();
    assert_eq!(requests, 30 + 6 + 5 + 2 + 3);
    let mut attempts = 0;
    for id in &ids {
        let row = status(&pool, *id).await;
        attempts += row.attempts + row.rate_limited;
    }
    assert_eq!(
        usize::try_from(attempts).expect("positive"),
        requests,
        "one attempt recorded per request"
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn two_dispatchers_never_deliver_a_row_twice(pool: PgPool) {
    let server = MockServer::start().await;
    let discord = FakeDiscord::default();
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(4)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(discord.clone())
        .mount(&server)
        .await;
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(enqueue(&pool, i % 4 + 1, &Message::text(format!("message {i}"))).await);
    }
    let settings = DispatchSettings {
        batch: 5,
        ..settings()
    };

    run_until_settled(
        &pool,
        &ids,
        vec![
            dispatcher(&pool, &server, settings.clone()),
            dispatcher(&pool, &server, settings),
        ],
    )
    .await;

    assert_each_delivered_once(&pool, &ids, &discord).await;
    assert_eq!(
        server.received_requests().await.expect("recording").len(),
        34
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn a_dead_dispatchers_lease_is_taken_over(pool: PgPool) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(FakeDiscord::default())
        .mount(&server)
        .await;
    let id = enqueue(&pool, 7, &Message::text("hello")).await;
    // A dispatcher claims the row and dies without recording anything.
    let claimed = outbox::claim_due(&pool, 10, Duration::from_secs(2), uuid::Uuid::new_v4())
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    let dispatcher = dispatcher(&pool, &server, settings());

    assert_eq!(dispatcher.deliver_due().await.expect("deliver"), 0);
    drain(&dispatcher, &pool, &[id]).await;
    assert_eq!(status(&pool, id).await.status, "sent");
    assert_eq!(
        server.received_requests().await.expect("recording").len(),
        1
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn run_stops_on_shutdown_after_finishing_the_message_in_flight(pool: PgPool) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "5"}))
                .set_delay(Duration::from_secs(1)),
        )
        .mount(&server)
        .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(enqueue(&pool, 7, &Message::text(format!("message {i}"))).await);
    }
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(dispatcher(&pool, &server, settings()).run(shutdown.clone()));
    while server
        .received_requests()
        .await
        .expect("recording")
        .is_empty()
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("run returns promptly")
        .expect("run does not panic");

    assert_eq!(status(&pool, ids[0]).await.status, "sent");
    assert_eq!(status(&pool, ids[1]).await.status, "pending");
    assert_eq!(
        server.received_requests().await.expect("recording").len(),
        1
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn run_survives_database_errors(pool: PgPool) {
    let server = MockServer::start().await;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(dispatcher(&pool, &server, settings()).run(shutdown.clone()));
    // Every pass now fails to claim; the loop must keep going rather than exit or panic.
    pool.close().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!task.is_finished());
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("run returns promptly")
        .expect("run does not panic");
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn settings_are_checked(pool: PgPool) {
    let make = |base: &str, settings| {
        Dispatcher::new(pool.clone(), base, SecretString::from(TOKEN), settings)
    };
    let short_lease = DispatchSettings {
        lease: Duration::from_secs(5),
        ..DispatchSettings::default()
    };
    let error = make("https://discord.com", short_lease).expect_err("short lease");
    assert!(error.to_string().contains("lease"), "{error}");
    let error = make("discord", DispatchSettings::default()).expect_err("bad base");
    assert!(error.to_string().contains("\"discord\""), "{error}");
    let dispatcher = make("https://discord.com/", DispatchSettings::default()).expect("valid");
    assert!(!format!("{dispatcher:?}").contains(TOKEN));
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn an_edit_queued_before_its_post_lands_on_that_post(pool: PgPool) {
    let server = MockServer::start().await;
    // The post fails twice first, so the edits queued behind it must wait.
    let attempts = Arc::new(Mutex::new(0));
    let seen = attempts.clone();
    Mock::given(method("POST"))
        .and(path("/api/v10/channels/42/messages"))
        .respond_with(move |_: &Request| {
            let mut n = seen.lock().expect("lock");
            *n += 1;
            if *n <= 2 {
                ResponseTemplate::new(500)
            } else {
                ResponseTemplate::new(200).set_body_json(json!({"id": "777"}))
            }
        })
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/api/v10/channels/42/messages/777"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "777"})))
        .mount(&server)
        .await;
    let post = enqueue(&pool, 42, &Message::text("firing")).await;
    let first = outbox::enqueue_edit_of(&pool, 42, post, &Message::text("acked by ana"), None)
        .await
        .expect("edit");
    let second = outbox::enqueue_edit_of(&pool, 42, post, &Message::text("resolved"), None)
        .await
        .expect("edit");
    let dispatcher = dispatcher(&pool, &server, settings());
    drain(&dispatcher, &pool, &[post, first, second]).await;

    let requests = server.received_requests().await.expect("recording");
    let methods: Vec<String> = requests.iter().map(|r| r.method.to_string()).collect();
    assert_eq!(
        methods,
        ["POST", "POST", "POST", "PATCH"],
        "edits wait for the post"
    );
    let body: Value = requests[3].body_json().expect("JSON");
    assert_eq!(body["content"], json!("resolved"), "the newest edit wins");
    assert_eq!(status(&pool, second).await.status, "sent");
    assert_eq!(status(&pool, first).await.status, "sent", "superseded");

    // An edit of a post that was never delivered is dead-lettered, with its reason.
    Mock::given(method("POST"))
        .and(path("/api/v10/channels/43/messages"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"code": 10003})))
        .mount(&server)
        .await;
    let lost = enqueue(&pool, 43, &Message::text("to a deleted channel")).await;
    let orphan = outbox::enqueue_edit_of(&pool, 43, lost, &Message::text("edit"), None)
        .await
        .expect("edit");
    drain(&dispatcher, &pool, &[lost, orphan]).await;
    let row = status(&pool, orphan).await;
    assert_eq!(row.status, "dead");
    assert!(
        row.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("never delivered"),
        "{row:?}"
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn an_attachment_edit_sends_the_file_and_leaves_text_edits_alone(pool: PgPool) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v10/channels/42/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "777"})))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/api/v10/channels/42/messages/777"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "777"})))
        .mount(&server)
        .await;
    let post = enqueue(&pool, 42, &Message::text("firing")).await;
    let text = outbox::enqueue_edit_of(&pool, 42, post, &Message::text("acked"), None)
        .await
        .expect("edit");
    let png = b"\x89PNG\r\n\x1a\n\x00\xffbytes".to_vec();
    let mut tx = pool.begin().await.expect("tx");
    let chart = outbox::enqueue_attachment_of(
        &mut tx,
        42,
        post,
        &outbox::Attachment {
            filename: "alert.png".to_owned(),
            bytes: png.clone(),
        },
        None,
    )
    .await
    .expect("attachment edit");
    tx.commit().await.expect("commit");
    let dispatcher = dispatcher(&pool, &server, settings());
    drain(&dispatcher, &pool, &[post, text, chart]).await;

    let requests = server.received_requests().await.expect("recording");
    let methods: Vec<String> = requests.iter().map(|r| r.method.to_string()).collect();
    assert_eq!(
        methods,
        ["POST", "PATCH", "PATCH"],
        "the newer attachment edit does not supersede the text edit"
    );
    let body: Value = requests[1].body_json().expect("JSON");
    assert_eq!(body["content"], json!("acked"));
    let multipart = &requests[2];
    let content_type = multipart
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("multipart/form-data; boundary="),
        "{content_type}"
    );
    let raw = &multipart.body;
    let holds = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    assert!(holds(&png), "the file's bytes, unchanged");
    assert!(
        holds(br#"{"attachments":[{"filename":"alert.png","id":0}]}"#)
            || holds(br#"{"attachments":[{"id":0,"filename":"alert.png"}]}"#)
    );
    assert!(!holds(b"\"content\""), "the text is left alone");
    assert_eq!(status(&pool, chart).await.status, "sent");

    // A file name outside the safe set, or an empty file, is refused by the database.
    let mut tx = pool.begin().await.expect("tx");
    let refused = outbox::enqueue_attachment_of(
        &mut tx,
        42,
        post,
        &outbox::Attachment {
            filename: "../etc/passwd".to_owned(),
            bytes: png,
        },
        None,
    )
    .await;
    assert!(refused.is_err());
}
