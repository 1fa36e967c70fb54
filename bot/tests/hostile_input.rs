//! Input no command accepts, requests larger than the server reads, and a database that went
//! away: through the real Discord door (poise via the emulator) and the real HTTP server,
//! against real Postgres.

mod support;

use opsbot_commands::audit::tail;
use sqlx::PgPool;
use support::TestBot;

const TOKEN: &str = "a-dashboard-token-of-at-least-32-bytes-long";

fn config(token_file: &std::path::Path) -> String {
    format!(
        r#"
[roles]
ops = ["deploy:*", "audit:*"]
[http]
listen = "127.0.0.1:0"
dashboard_tokens = ["file:{0}"]
[alerts]
webhook_token = "file:{0}"
[[services]]
name = "worker"
environments = ["staging"]
backend = {{ kind = "command", program = "true", args = [] }}
"#,
        token_file.display()
    )
}

async fn start(pool: &PgPool) -> (TestBot, tempfile::NamedTempFile, String) {
    let token_file = tempfile::NamedTempFile::new().expect("token file");
    std::fs::write(token_file.path(), format!("{TOKEN}\n")).expect("write token");
    let bot = TestBot::with_config(pool.clone(), &config(token_file.path())).await;
    let addr = bot
        .services
        .as_ref()
        .and_then(|s| s.http_addr)
        .expect("http server");
    (bot, token_file, format!("http://{addr}"))
}

async fn get(base: &str, path: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get");
    (
        response.status().as_u16(),
        response.text().await.expect("body"),
    )
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn a_nul_byte_is_refused_clearly_and_audited_with_a_cleaned_copy(pool: PgPool) {
    let (mut bot, _token, base) = start(&pool).await;
    for line in [
        "/audit recent actor:bo\u{0}b",
        "/deploy lock service:worker env:staging reason:hot\u{0}fix",
        "/deploy run service:worker version:v1\u{0} env:staging",
    ] {
        let reply = bot.say("ana", &["ops"], line).await;
        assert!(reply.ephemeral, "{line}");
        assert!(
            reply.content.contains("contains a NUL byte"),
            "{line}: {}",
            reply.content
        );
    }
    let events = tail(&pool, 10).await.expect("tail");
    // Oldest first.
    let recorded: Vec<(String, String, String)> = events
        .iter()
        .map(|e| (e.command.clone(), e.outcome.clone(), e.args.to_string()))
        .collect();
    assert_eq!(recorded.len(), 3, "{recorded:?}");
    assert!(recorded.iter().all(|(_, outcome, _)| outcome == "invalid"));
    assert!(recorded[0].2.contains("bo␀b"), "{:?}", recorded[0]);
    assert!(recorded[1].2.contains("hot␀fix"), "{:?}", recorded[1]);
    let locks: i64 = sqlx::query_scalar("SELECT count(*) FROM deploy_locks")
        .fetch_one(&pool)
        .await
        .expect("locks");
    assert_eq!(locks, 0, "nothing was locked");

    for path in [
        "/api/audit?q=%00",
        "/api/audit?actor=a%00",
        "/api/audit?command=%00run",
        "/api/audit.csv?q=%00",
        "/api/audit.jsonl?actor=%00",
        "/?q=%00",
    ] {
        let (status, body) = get(&base, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("NUL"), "{path}: {body}");
    }
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn a_dropped_or_unmigrated_database_is_503_at_every_door(pool: PgPool) {
    let (bot, _token, base) = start(&pool).await;
    assert_eq!(get(&base, "/readyz").await.0, 200);
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .expect("name");
    let server = support::database_url(&pool);
    let admin_url = format!("{}/postgres", server.rsplit_once('/').expect("url").0);
    let admin = PgPool::connect(&admin_url).await.expect("admin connection");
    let drop = format!("DROP DATABASE \"{database}\" WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(drop))
        .execute(&admin)
        .await
        .expect("drop");

    let webhook_headers = [
        (
            "X-Opsbot-Timestamp",
            chrono::Utc::now().timestamp().to_string(),
        ),
        ("X-Opsbot-Signature", format!("v2={}", "ab".repeat(32))),
    ];
    let post_report = || async {
        let mut request = reqwest::Client::new()
            .post(format!("{base}/webhooks/deploy/1"))
            .body(r#"{"status":"running"}"#);
        for (name, value) in &webhook_headers {
            request = request.header(*name, value);
        }
        request.send().await.expect("post").status().as_u16()
    };
    for phase in ["dropped", "recreated empty"] {
        for path in ["/readyz", "/api/audit", "/api/audit.csv", "/", "/deploys"] {
            let (status, body) = get(&base, path).await;
            assert_eq!(status, 503, "{phase}: {path}: {body}");
        }
        assert_eq!(post_report().await, 503, "{phase}: the webhook");
        if phase == "dropped" {
            let create = format!("CREATE DATABASE \"{database}\"");
            sqlx::query(sqlx::AssertSqlSafe(create))
                .execute(&admin)
                .await
                .expect("create");
        }
    }
    let (_, body) = get(&base, "/readyz").await;
    assert!(body.contains("schema not migrated"), "{body}");
    drop_bot(bot).await;
}

/// Stops the bot before the test's database is dropped by `#[sqlx::test]`.
async fn drop_bot(mut bot: TestBot) {
    if let Some(services) = bot.services.take() {
        let _ = services.stop().await;
    }
}

/// Sends `head` (and then `chunks`, each written separately) on a fresh connection and
/// returns the status line of the answer: the server answers without the rest of the body.
async fn raw_request(base: &str, head: &str, chunks: &[Vec<u8>]) -> String {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // A head past hyper's buffer is refused while it is still being written.
    let _ = stream.write_all(head.as_bytes()).await;
    for chunk in chunks {
        // The server may answer and close before every chunk is sent: that is the point.
        if stream.write_all(chunk).await.is_err() {
            break;
        }
    }
    let mut reader = tokio::io::BufReader::new(stream);
    let mut status = String::new();
    // The body is never finished: an answer at all shows the server did not wait for it.
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        reader.read_line(&mut status),
    )
    .await
    .expect("an answer before the body is complete")
    .map(|_| status.trim().to_owned())
    .unwrap_or_else(|e| format!("connection closed: {e}"))
}

/// A chunked body of `size` bytes in 8 KiB chunks, without the closing chunk.
fn chunks(size: usize) -> Vec<Vec<u8>> {
    let piece = 8 * 1024;
    (0..size.div_ceil(piece))
        .map(|_| {
            let mut chunk = format!("{piece:x}\r\n").into_bytes();
            chunk.extend(std::iter::repeat_n(b'{', piece));
            chunk.extend(b"\r\n");
            chunk
        })
        .collect()
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn oversized_bodies_and_headers_are_refused_before_they_are_read(pool: PgPool) {
    use opsbot::web::limits::{MAX_BODY, MAX_HEADER_BYTES, MAX_HEADERS};
    let (bot, _token, base) = start(&pool).await;
    let alertmanager_limit = opsbot_commands::alerts::ingest::MAX_BODY;

    // A Content-Length over the limit: 413 at once, no byte of the body sent.
    for (path, length) in [
        ("/webhooks/deploy/1", 100 * 1024 * 1024),
        ("/webhooks/deploy/1", MAX_BODY + 1),
        ("/webhooks/alertmanager", alertmanager_limit + 1),
        ("/login", MAX_BODY + 1),
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: opsbot\r\nContent-Type: application/json\r\n\
             Authorization: Bearer {TOKEN}\r\nContent-Length: {length}\r\n\r\n"
        );
        let status = raw_request(&base, &head, &[]).await;
        assert!(
            status.starts_with("HTTP/1.1 413"),
            "{path} {length}: {status}"
        );
    }

    // No Content-Length (chunked): cut at the limit, 413 without the closing chunk.
    for (path, limit) in [
        ("/webhooks/deploy/1", MAX_BODY),
        ("/webhooks/alertmanager", alertmanager_limit),
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: opsbot\r\nContent-Type: application/json\r\n\
             Authorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        let status = raw_request(&base, &head, &chunks(limit + 16 * 1024)).await;
        assert!(
            status.starts_with("HTTP/1.1 413"),
            "{path} chunked: {status}"
        );
    }

    // Headers: too many bytes, or too many of them: 431. Just under both: served.
    let big = "a".repeat(MAX_HEADER_BYTES);
    let head = format!("GET /healthz HTTP/1.1\r\nHost: opsbot\r\nX-Big: {big}\r\n\r\n");
    let status = raw_request(&base, &head, &[]).await;
    assert!(status.starts_with("HTTP/1.1 431"), "big header: {status}");
    let many: String = (0..=MAX_HEADERS)
        .map(|i| format!("X-Header-{i}: {i}\r\n"))
        .collect();
    let head = format!("GET /healthz HTTP/1.1\r\nHost: opsbot\r\n{many}\r\n");
    let status = raw_request(&base, &head, &[]).await;
    assert!(status.starts_with("HTTP/1.1 431"), "many headers: {status}");
    let fine = "a".repeat(MAX_HEADER_BYTES / 2);
    let few: String = (0..MAX_HEADERS / 2)
        .map(|i| format!("X-Header-{i}: {i}\r\n"))
        .collect();
    let head = format!("GET /healthz HTTP/1.1\r\nHost: opsbot\r\nX-Big: {fine}\r\n{few}\r\n");
    let status = raw_request(&base, &head, &[]).await;
    assert!(
        status.starts_with("HTTP/1.1 200"),
        "within the bounds: {status}"
    );
    // Far past hyper's own buffer (about 400 KiB): refused, not buffered without end.
    let huge = "a".repeat(1024 * 1024);
    let head = format!("GET /healthz HTTP/1.1\r\nHost: opsbot\r\nX-Huge: {huge}\r\n\r\n");
    let status = raw_request(&base, &head, &[]).await;
    assert!(
        status.starts_with("HTTP/1.1 431")
            || status.starts_with("connection closed")
            || status.is_empty(),
        "huge header: {status}"
    );
    drop_bot(bot).await;
}
