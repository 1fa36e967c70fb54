//! One contract for every door: each command that needs a permission, typed by a member
//! without it, is refused naming the permission and recorded as `denied` — identically on
//! Discord (the real bot against the emulator) and in `opsbot shell` (the binary, whose
//! events say `shell`). The web door's routes have the same table in `web_dashboard.rs`.

mod support;

use std::process::Stdio;
use std::time::Duration;

use sqlx::PgPool;
use support::{TestBot, database_url};

const CONFIG: &str = r##"
[roles]
ops = ["deploy:*", "incident:*", "audit:*"]
nobody = []
[http]
listen = "127.0.0.1:0"
[channels]
incidents = 222000000000000222
incident_category = 444000000000000444
[incidents.severities.sev1]
description = "customer-facing outage"
[[services]]
name = "api"
environments = ["staging", "production"]
backend = { kind = "command", program = "true", args = [], timeout = "30s" }
"##;

/// What each line needs: the line, the command it is recorded under, the permission.
const TABLE: [(&str, &str, &str); 8] = [
    ("/audit recent", "audit recent", "audit:read"),
    ("/audit verify", "audit verify", "audit:verify"),
    (
        "/deploy run service:api version:v1 env:production",
        "deploy run",
        "deploy:production",
    ),
    (
        "/deploy run service:api version:v1 env:staging",
        "deploy run",
        "deploy:staging",
    ),
    (
        "/deploy lock service:api env:production reason:maintenance",
        "deploy lock",
        "deploy:lock:production",
    ),
    (
        "/deploy unlock service:api env:production",
        "deploy unlock",
        "deploy:lock:production",
    ),
    (
        "/rollback service:api env:production",
        "rollback",
        "deploy:production",
    ),
    (
        "/incident declare title:down severity:sev1",
        "incident declare",
        "incident:declare",
    ),
];

/// The `denied` events of `actor`, oldest first: (source, command, detail).
async fn denials(pool: &PgPool, actor: &str) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT source, command, detail FROM audit_events \
         WHERE actor_name = $1 AND outcome = 'denied' ORDER BY id",
    )
    .bind(actor)
    .fetch_all(pool)
    .await
    .expect("denials")
}

fn assert_denials_match_the_table(denied: &[(String, String, String)], source: &str) {
    assert_eq!(denied.len(), TABLE.len(), "{denied:?}");
    for ((line, command, permission), (was_source, was_command, detail)) in TABLE.iter().zip(denied)
    {
        assert_eq!(was_source, source, "{line}");
        assert_eq!(was_command, command, "{line}");
        assert!(
            detail.contains(&format!("`{permission}`")),
            "{line}: {detail}"
        );
    }
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn discord_refuses_and_audits_every_command_without_its_permission(pool: PgPool) {
    let mut bot = TestBot::with_config(pool.clone(), CONFIG).await;
    for (line, _, permission) in TABLE {
        let reply = bot.say("eve", &["nobody"], line).await;
        assert!(reply.ephemeral, "{line}: a refusal is private");
        assert!(
            reply.content.starts_with('⛔') && reply.content.contains(permission),
            "{line}: {}",
            reply.content
        );
    }
    assert_denials_match_the_table(&denials(&pool, "eve").await, "discord");
    // Nothing was changed by any of them.
    let deploys: i64 = sqlx::query_scalar("SELECT count(*) FROM deploys")
        .fetch_one(&pool)
        .await
        .expect("count");
    let incidents: i64 = sqlx::query_scalar("SELECT count(*) FROM incidents")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!((deploys, incidents), (0, 0));
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn the_shell_refuses_and_audits_every_command_without_its_permission(pool: PgPool) {
    let config = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(config.path(), CONFIG).expect("write config");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_opsbot"))
        .args([
            "shell", "--json", "--user", "eve", "--roles", "nobody", "--config",
        ])
        .arg(config.path())
        .env("DATABASE_URL", database_url(&pool))
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start opsbot shell");
    let script: String = TABLE
        .iter()
        .map(|(line, _, _)| format!("{line}\n"))
        .collect();
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(script.as_bytes()).await.expect("script");
    }
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the shell exits at end of input")
        .expect("output");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let replies: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    assert_eq!(replies.len(), TABLE.len(), "{replies:?}");
    for ((line, _, permission), reply) in TABLE.iter().zip(&replies) {
        let content = reply["content"].as_str().unwrap_or_default();
        assert!(
            content.starts_with('⛔') && content.contains(permission),
            "{line}: {reply}"
        );
    }
    assert_denials_match_the_table(&denials(&pool, "eve").await, "shell");
}
