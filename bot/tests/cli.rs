//! The real binary against real Postgres: migrate, run (health, readiness, metrics, graceful
//! shutdown), audit verify and tail, and the embedded database.

mod support;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use opsbot_commands::actor::Source;
use opsbot_commands::audit::{NewEvent, Outcome, append, seal_pending};
use serde_json::json;
use sqlx::PgPool;
use support::database_url;

fn opsbot(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opsbot"))
        .args(args)
        .env("DATABASE_URL", url)
        .env_remove("OPSBOT_CONFIG")
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .expect("run opsbot")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn append_events(pool: &PgPool, n: i64) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let event = NewEvent {
            actor_id: 10 + i,
            actor_name: format!("user{i}"),
            source: Source::Discord,
            guild_id: Some(1),
            channel_id: Some(2),
            interaction_id: None,
            command: "whoami".into(),
            args: json!({"i": i}),
            outcome: Outcome::Ok,
            detail: String::new(),
            correlation_id: None,
        };
        ids.push(append(pool, &event).await.expect("append"));
    }
    ids
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn audit_verify_reports_ok_then_names_the_tampered_event(pool: PgPool) {
    let url = database_url(&pool);
    let ids = append_events(&pool, 4).await;
    seal_pending(&pool).await.expect("seal");

    let ok = opsbot(&url, &["audit", "verify"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(stdout(&ok), "ok: 4 events\n");

    // One more event, not sealed: still ok, with a note on stderr.
    append_events(&pool, 1).await;
    let pending = opsbot(&url, &["audit", "verify"]);
    assert_eq!(pending.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&pending.stderr).contains("not sealed yet"));

    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER TABLE audit_events DISABLE TRIGGER USER;
         UPDATE audit_events SET actor_name = 'mallory' WHERE id = {};
         ALTER TABLE audit_events ENABLE TRIGGER USER;",
        ids[2]
    )))
    .execute(&pool)
    .await
    .expect("tamper");
    let bad = opsbot(&url, &["audit", "verify"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stdout(&bad).starts_with(&format!("event {}: ", ids[2])),
        "{}",
        stdout(&bad)
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn audit_tail_prints_json_lines_in_order(pool: PgPool) {
    let url = database_url(&pool);
    let ids = append_events(&pool, 5).await;
    seal_pending(&pool).await.expect("seal");
    let output = opsbot(&url, &["audit", "tail", "-n", "3", "--json"]);
    assert!(output.status.success());
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 3);
    let got: Vec<i64> = lines
        .iter()
        .map(|l| l["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(got, ids[2..]);
    for field in [
        "id",
        "at",
        "actor_id",
        "actor_name",
        "source",
        "command",
        "args",
        "outcome",
        "detail",
        "hash",
    ] {
        assert!(lines[0].get(field).is_some(), "missing {field}");
    }
    assert_eq!(lines[0]["hash"].as_str().map(str::len), Some(64));

    let text = opsbot(&url, &["audit", "tail", "-n", "1"]);
    assert!(
        stdout(&text).starts_with(&format!("#{} ", ids[4])),
        "{}",
        stdout(&text)
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn run_serves_health_and_shuts_down_cleanly(pool: PgPool) {
    let url = database_url(&pool);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_opsbot"))
        .args(["run", "--log-format", "json"])
        .env("DATABASE_URL", &url)
        .env("OPSBOT_HTTP_LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("OPSBOT_DISCORD_TOKEN")
        .env_remove("OPSBOT_CONFIG")
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start opsbot run");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            ready = r.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "/readyz never answered 200");
    let health = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    assert!(
        metrics.contains("opsbot_build_info{version=\""),
        "{metrics}"
    );

    // An event appended while it runs is sealed by its sealer, at the latest on shutdown.
    append_events(&pool, 2).await;
    let pid = nix::unistd::Pid::from_raw(child.id().expect("pid") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("exits after SIGTERM")
        .expect("output");
    let logs = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{logs}");
    assert!(output.stdout.is_empty(), "stdout stays clean");
    assert!(
        logs.lines().all(|l| l.starts_with('{')),
        "JSON logs: {logs}"
    );
    assert!(logs.contains("no Discord token configured"), "{logs}");
    let report = opsbot_commands::audit::verify(&pool).await.expect("verify");
    assert_eq!(report.summary(), "ok: 2 events");
    assert_eq!(report.unsealed, 0);
}

#[test]
fn embedded_database_starts_migrates_and_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_opsbot"))
        .args(["migrate"])
        .env_remove("DATABASE_URL")
        .env_remove("OPSBOT_DATABASE_URL")
        .env_remove("OPSBOT_CONFIG")
        .current_dir(dir.path())
        .output()
        .expect("run opsbot");
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{logs}");
    assert!(dir.path().join(".opsbot/pg/PG_VERSION").exists());
    assert!(logs.contains("embedded PostgreSQL stopped"), "{logs}");
    // A second command reuses the data directory (no second initdb) and sees the schema.
    let verify = Command::new(env!("CARGO_BIN_EXE_opsbot"))
        .args(["audit", "verify"])
        .env_remove("DATABASE_URL")
        .env_remove("OPSBOT_CONFIG")
        .current_dir(dir.path())
        .output()
        .expect("run opsbot");
    assert_eq!(
        String::from_utf8_lossy(&verify.stdout),
        "ok: 0 events\n",
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(!String::from_utf8_lossy(&verify.stderr).contains("initialising"));
}

#[test]
fn unknown_subcommands_and_bad_flags_are_refused_with_help() {
    let output = Command::new(env!("CARGO_BIN_EXE_opsbot"))
        .args(["audit", "tial"])
        .output()
        .expect("run opsbot");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("tail"));
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn shell_reads_a_script_and_prints_json_events(pool: PgPool) {
    let url = database_url(&pool);
    let config = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(
        config.path(),
        "[roles]\nops = [\"audit:*\"]\ndev = [\"deploy:staging\"]\n[http]\nlisten = \"127.0.0.1:0\"\n",
    )
    .expect("write config");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_opsbot"))
        .args([
            "shell", "--json", "--user", "ana", "--roles", "ops", "--config",
        ])
        .arg(config.path())
        .env("DATABASE_URL", &url)
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start opsbot shell");
    let script = "/whoami\n:as bo dev\n/audit recent\n/audit\n/nope\n:as ana\n/audit verify\n:select Silence 4h\n:select Silence\n";
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(script.as_bytes())
            .await
            .expect("write script");
    }
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the shell exits at end of input")
        .expect("output");
    let logs = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{logs}");
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let summary: Vec<String> = events
        .iter()
        .map(|e| format!("{} {} {}", e["event"], e["input"], e["channel"]))
        .collect();
    insta::assert_snapshot!(summary.join("\n"), @r#"
    "reply" "/whoami" "general"
    "reply" "/audit recent" "general"
    "error" "/audit" null
    "error" "/nope" null
    "edit" "/audit verify" "general"
    "error" ":select Silence 4h" null
    "error" ":select Silence" null
    "#);
    assert!(
        events[1]["content"]
            .as_str()
            .expect("content")
            .contains("audit:read")
    );
    assert!(
        events[2]["content"]
            .as_str()
            .expect("content")
            .contains("recent, verify"),
        "{}",
        events[2]
    );
    assert!(
        events[3]["content"]
            .as_str()
            .expect("content")
            .contains("/alerts, /audit, /deploy, /digest, /incident, /metrics, /rollback, /whoami"),
        "{}",
        events[3]
    );
    assert!(
        events[4]["content"]
            .as_str()
            .expect("content")
            .starts_with("✅ audit chain ok"),
        "{}",
        events[4]
    );
    assert!(
        events[5]["content"]
            .as_str()
            .expect("content")
            .contains("no menus at all"),
        "{}",
        events[5]
    );
    assert!(
        events[6]["content"]
            .as_str()
            .expect("content")
            .contains(":select Silence 4h"),
        "{}",
        events[6]
    );
    // The graceful shutdown sealed everything the session audited.
    let report = opsbot_commands::audit::verify(&pool).await.expect("verify");
    assert_eq!((report.verified, report.unsealed), (3, 0), "{report:?}");
    // The trail says these came through the shell, not from Discord.
    let sources: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT source FROM audit_events ORDER BY source")
            .fetch_all(&pool)
            .await
            .expect("sources");
    assert_eq!(sources, ["shell"]);
}

/// `opsbot` with extra environment variables (the `[audit]` settings).
fn opsbot_env(url: &str, args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opsbot"))
        .args(args)
        .env("DATABASE_URL", url)
        .env_remove("OPSBOT_CONFIG")
        .envs(vars.iter().copied())
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .expect("run opsbot")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn audit_verify_names_an_event_forged_with_a_chosen_id(pool: PgPool) {
    let url = database_url(&pool);
    append_events(&pool, 2).await;
    sqlx::raw_sql(
        "INSERT INTO audit_events (id, actor_id, actor_name, source, command, outcome)
         OVERRIDING SYSTEM VALUE VALUES (-1, 1, 'mallory', 'web', 'deploy run', 'ok');
         INSERT INTO audit_unsealed (event_id) VALUES (-1);",
    )
    .execute(&pool)
    .await
    .expect("forge");
    seal_pending(&pool).await.expect("seal");
    let output = opsbot(&url, &["audit", "verify"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stdout(&output)
            .starts_with("event -1: the sealer refused to chain it: its id -1 was never issued"),
        "{}",
        stdout(&output)
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn run_checkpoints_the_head_and_verify_holds_the_chain_to_it(pool: PgPool) {
    const KEY: &str = "a chain key of at least thirty-two bytes";
    let url = database_url(&pool);
    let dir = tempfile::tempdir().expect("tempdir");
    let checkpoint = dir.path().join("audit-head.json");
    let checkpoint_arg = checkpoint.display().to_string();
    let audit_env = [
        ("OPSBOT_AUDIT_CHAIN_KEY", KEY),
        ("OPSBOT_AUDIT_CHECKPOINT_PATH", checkpoint_arg.as_str()),
    ];
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_opsbot"))
        .args(["run"])
        .env("DATABASE_URL", &url)
        .env("OPSBOT_HTTP_LISTEN", "127.0.0.1:0")
        .env("OPSBOT_AUDIT_CHECKPOINT_INTERVAL", "1s")
        .envs(audit_env)
        .env_remove("OPSBOT_DISCORD_TOKEN")
        .env_remove("OPSBOT_CONFIG")
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start opsbot run");

    // While it runs, the head is checkpointed every second.
    append_events(&pool, 3).await;
    let mut written = None;
    for _ in 0..100 {
        if let Ok(Some(c)) = opsbot_commands::audit::Checkpoint::read(&checkpoint)
            && c.position == 3
        {
            written = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let periodic = written.expect("a checkpoint of the 3 events within 10 s");
    assert!(periodic.mac.is_some());
    // And once more at shutdown, after the last seal.
    append_events(&pool, 1).await;
    let pid = nix::unistd::Pid::from_raw(child.id().expect("pid") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("exits after SIGTERM")
        .expect("output");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let last = opsbot_commands::audit::Checkpoint::read(&checkpoint)
        .expect("readable")
        .expect("written");
    assert_eq!(last.position, 4);

    let ok = opsbot_env(&url, &["audit", "verify"], &audit_env);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert_eq!(stdout(&ok), "ok: 4 events\n");
    assert!(
        stderr(&ok).contains("its MAC is verified"),
        "{}",
        stderr(&ok)
    );
    let head = format!("{}:{}", last.position, last.hash);
    assert!(
        stderr(&ok).contains(&format!("record `{head}` elsewhere")),
        "{}",
        stderr(&ok)
    );
    let expect = opsbot(&url, &["audit", "verify", "--expect-head", &head]);
    assert_eq!(expect.status.code(), Some(0), "{}", stderr(&expect));

    // Cut the newest event off, chain entry and all: the chain verifies, the anchors do not.
    sqlx::raw_sql(
        "ALTER TABLE audit_events DISABLE TRIGGER USER;
         ALTER TABLE audit_chain DISABLE TRIGGER USER;
         WITH cut AS (DELETE FROM audit_chain WHERE position = 4 RETURNING event_id)
         DELETE FROM audit_events WHERE id IN (SELECT event_id FROM cut);
         ALTER TABLE audit_events ENABLE TRIGGER USER;
         ALTER TABLE audit_chain ENABLE TRIGGER USER;",
    )
    .execute(&pool)
    .await
    .expect("truncate");
    assert!(
        opsbot_commands::audit::verify(&pool)
            .await
            .expect("verify")
            .is_ok()
    );
    let cut = opsbot_env(
        &url,
        &["audit", "verify", "--expect-head", &head],
        &audit_env,
    );
    assert_eq!(cut.status.code(), Some(1), "{}", stderr(&cut));
    insta::assert_snapshot!(
        stdout(&cut).replace(&checkpoint_arg, "CHECKPOINT").replace(&last.hash, "HASH"),
        @r"
    expected head 4:HASH: the chain has no position 4, it ends at position 3: events were cut off its tail (truncated)
    checkpoint: the chain no longer holds the checkpoint CHECKPOINT: the chain has no position 4, it ends at position 3: events were cut off its tail (truncated)
    "
    );

    // A checkpoint rewritten to match, without the key, is refused.
    let head3 = opsbot_commands::audit::verify(&pool)
        .await
        .expect("verify")
        .head
        .expect("head");
    let forged = serde_json::json!({
        "position": 3, "event_id": head3.event_id, "hash": head3.hash,
        "written_at": last.written_at, "mac": last.mac,
    });
    std::fs::write(&checkpoint, forged.to_string()).expect("forge the checkpoint");
    let forged = opsbot_env(
        &url,
        &["audit", "verify", "--checkpoint", &checkpoint_arg],
        &audit_env,
    );
    assert_eq!(forged.status.code(), Some(1), "{}", stderr(&forged));
    assert!(
        stdout(&forged).contains("does not match [audit] chain_key: it was forged or edited"),
        "{}",
        stdout(&forged)
    );
}
