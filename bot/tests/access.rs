//! One contract for every door: each command that needs a permission, typed by a member
//! without it, is refused naming the permission and recorded as `denied` — identically on
//! Discord (the real bot against the emulator) and in `opsbot shell` (the binary, whose
//! events say `shell`). Every button and select menu kind is pressed the same way. The
//! tables are checked against what is registered: a new command or component kind without
//! a row fails `every_registered_command_and_component_has_a_row`. The web door's routes
//! have the same table in `web_dashboard.rs`.

mod support;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use support::{TestBot, database_url};

const HOOK: &str = "alertmanager-webhook-token-for-the-access-test";

/// The config, with the Alertmanager webhook token kept in a file (secrets never sit in it).
fn config() -> (String, tempfile::NamedTempFile) {
    let hook = tempfile::NamedTempFile::new().expect("token file");
    std::fs::write(hook.path(), HOOK).expect("write token");
    let text = format!(
        r##"
[roles]
ops = ["*"]
nobody = []
[http]
listen = "127.0.0.1:0"
[channels]
incidents = 222000000000000222
incident_category = 444000000000000444
[incidents.severities.sev1]
description = "customer-facing outage"
[environments.production]
approvals = 1
[alerts]
webhook_token = "file:{hook}"
[[alerts.routes]]
channel = 333000000000000333
[[digests]]
name = "daily"
cron = "0 0 9 * * *"
channel = 111000000000000111
include = ["deploys"]
[[services]]
name = "api"
environments = ["staging", "production"]
backend = {{ kind = "command", program = "true", args = [], timeout = "30s" }}
"##,
        hook = hook.path().display()
    );
    (text, hook)
}

/// A command line, the command its denial is recorded under, the permission it names.
type Row = (&'static str, &'static str, &'static str);

/// Every command that needs a permission, run inside incident #1's channel. `:apps NAME`
/// is the message context-menu command NAME on the newest message of the channel.
const COMMANDS: [Row; 22] = [
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
    // No options: the form would open; a member who may not declare is refused first.
    ("/incident declare", "incident declare", "incident:declare"),
    (
        "/incident status state:identified",
        "incident status",
        "incident:update",
    ),
    (
        "/incident severity level:sev1",
        "incident severity",
        "incident:update",
    ),
    (
        "/incident role role:commander member:eve",
        "incident role",
        "incident:update",
    ),
    (
        "/incident note text:seen",
        "incident note",
        "incident:update",
    ),
    (
        "/incident resolve summary:fixed",
        "incident resolve",
        "incident:resolve",
    ),
    ("/incident reopen", "incident reopen", "incident:resolve"),
    (
        "/incident postmortem",
        "incident postmortem",
        "incident:update",
    ),
    (
        r#"/alerts silence matchers:service="api" duration:1h reason:noisy"#,
        "alerts silence",
        "alerts:silence",
    ),
    ("/metrics query promql:up", "metrics query", "metrics:query"),
    (
        "/metrics service name:api",
        "metrics service",
        "metrics:query",
    ),
    (
        "/digest preview name:daily",
        "digest preview",
        "digest:preview",
    ),
    (
        ":apps Declare incident",
        "incident declare",
        "incident:declare",
    ),
    (
        ":apps Add to incident timeline",
        "incident note",
        "incident:update",
    ),
];

/// Commands anyone may run: no permission to deny.
const OPEN: [&str; 6] = [
    "whoami",
    "deploy status",
    "deploy history",
    "alerts active",
    "alerts silences",
    "incident list",
];

/// Each kind of button or select menu (by custom-id prefix): the command its denial is
/// recorded under and the permission it names.
const COMPONENTS: [(&str, &str, &str); 11] = [
    ("audit-older", "audit recent", "audit:read"),
    ("alerts-ack:", "alerts ack", "alerts:ack"),
    ("alerts-acksilence:", "alerts ack", "alerts:ack"),
    ("alerts-silence:", "alerts silence", "alerts:silence"),
    ("alerts-unsilence:", "alerts unsilence", "alerts:silence"),
    ("alerts-expire:", "alerts expire", "alerts:silence"),
    ("alerts-rollback:", "rollback", "deploy:staging"),
    ("alerts-declare:", "incident declare", "incident:declare"),
    (
        "deploy-approve",
        "deploy approve",
        "deploy:approve:production",
    ),
    (
        "deploy-reject",
        "deploy reject",
        "deploy:approve:production",
    ),
    ("incident-rollback:", "rollback", "deploy:staging"),
];

/// The qualified names of every registered command (subcommands one by one).
fn registered_commands() -> BTreeSet<String> {
    fn leaves(prefix: &str, command: &Value, out: &mut BTreeSet<String>) {
        let name = command["name"].as_str().unwrap_or_default();
        let qualified = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix} {name}")
        };
        let subcommands: Vec<&Value> = command["options"]
            .as_array()
            .map(|options| {
                options
                    .iter()
                    .filter(|o| o["type"] == 1 || o["type"] == 2)
                    .collect()
            })
            .unwrap_or_default();
        if subcommands.is_empty() {
            out.insert(qualified);
        } else {
            for sub in subcommands {
                leaves(&qualified, sub, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    for command in opsbot::discord::registration_json()
        .as_array()
        .expect("a list")
    {
        leaves("", command, &mut out);
    }
    out
}

/// The command a table line runs, as registered.
fn command_of(line: &str) -> String {
    if let Some(name) = line.strip_prefix(":apps ") {
        return name.to_owned();
    }
    line.trim_start_matches('/')
        .split_whitespace()
        .take_while(|word| !word.contains(':'))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn every_registered_command_and_component_has_a_row() {
    let registered = registered_commands();
    let covered: BTreeSet<String> = COMMANDS
        .iter()
        .map(|(line, _, _)| command_of(line))
        .chain(OPEN.iter().map(|c| c.to_string()))
        .collect();
    assert_eq!(
        registered, covered,
        "every registered command needs a row in COMMANDS (or OPEN, when it needs no permission)"
    );
    let kinds: BTreeSet<&str> = opsbot::discord::component_kinds().into_iter().collect();
    let rows: BTreeSet<&str> = COMPONENTS.iter().map(|(prefix, _, _)| *prefix).collect();
    assert_eq!(
        kinds, rows,
        "every component kind needs a row in COMPONENTS"
    );
}

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

fn assert_denials_match(
    denied: &[(String, String, String)],
    rows: &[(&str, &str, &str)],
    source: &str,
) {
    assert_eq!(denied.len(), rows.len(), "{denied:#?}");
    for ((what, command, permission), (was_source, was_command, detail)) in rows.iter().zip(denied)
    {
        assert_eq!(was_source, source, "{what}");
        assert_eq!(was_command, command, "{what}");
        assert!(
            detail.contains(&format!("`{permission}`")),
            "{what}: {detail}"
        );
    }
}

/// Row counts of what eve's attempts could change, and whether incident #1 is as declared.
async fn counts(pool: &PgPool) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in [
        "deploys",
        "deploy_locks",
        "deploy_approvals",
        "incidents",
        "alert_groups",
    ] {
        let count: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(pool)
                .await
                .expect("count");
        counts.push(count);
    }
    for table in ["incident_events", "incident_roles", "alert_silences"] {
        let count: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(pool)
                .await
                .expect("count");
        counts.push(count);
    }
    let acked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM alert_groups WHERE acked_by_id IS NOT NULL OR silenced_by_id IS NOT NULL",
    )
    .fetch_one(pool)
    .await
    .expect("acked");
    counts.push(acked);
    let incident: Option<(String, String)> =
        sqlx::query_as("SELECT status, severity FROM incidents WHERE id = 1")
            .fetch_optional(pool)
            .await
            .expect("incident");
    counts.push(i64::from(
        incident == Some(("investigating".into(), "sev1".into())),
    ));
    counts
}

/// ana (who may do everything) makes something for every button to act on: a staging
/// deploy (done), an alert on its service (correlated with it), incident #1 on the service
/// (its channel lists the deploy with a Rollback button), a production deploy waiting for
/// approval, and an audit page with an Older button. Returns incident #1's channel id.
async fn set_the_stage(bot: &mut TestBot) -> u64 {
    let staged = bot
        .say(
            "ana",
            &["ops"],
            "/deploy run service:api version:v0 env:staging",
        )
        .await;
    assert!(!staged.content.starts_with('⛔'), "{}", staged.content);
    let pool = bot.pool.clone();
    let deadline = tokio::time::Instant::now() + support::STATE_TIMEOUT;
    loop {
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM deploys WHERE environment = 'staging'")
                .fetch_optional(&pool)
                .await
                .expect("state");
        if state.as_deref() == Some("succeeded") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the staging deploy never succeeded: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let addr = bot
        .services
        .as_ref()
        .and_then(|s| s.http_addr)
        .expect("http server");
    let now = chrono::Utc::now().to_rfc3339();
    let alert = serde_json::json!({
        "receiver": "opsbot", "status": "firing", "version": "4",
        "groupKey": "{}:{alertname=\"HighErrorRate\"}", "truncatedAlerts": 0,
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {"alertname": "HighErrorRate", "service": "api", "severity": "critical"},
        "commonAnnotations": {"summary": "5xx above 5%"},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "HighErrorRate", "service": "api", "severity": "critical"},
            "annotations": {"summary": "5xx above 5%"},
            "startsAt": now, "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://127.0.0.1:9090/graph", "fingerprint": "abcc45788bcf7aa8"
        }]
    });
    let delivered = reqwest::Client::new()
        .post(format!("http://{addr}/webhooks/alertmanager"))
        .bearer_auth(HOOK)
        .json(&alert)
        .send()
        .await
        .expect("deliver the alert");
    assert!(delivered.status().is_success(), "{}", delivered.status());

    let declared = bot
        .say(
            "ana",
            &["ops"],
            "/incident declare title:setup severity:sev1 services:api",
        )
        .await;
    assert!(!declared.content.starts_with('⛔'), "{}", declared.content);
    let (incident_channel, _, _) = bot
        .wait_for("incident #1's channel", |emulator| {
            emulator
                .channels()
                .into_iter()
                .find(|(_, name, _)| name.starts_with("inc-1"))
        })
        .await;
    bot.general = incident_channel;
    let requested = bot
        .say(
            "ana",
            &["ops"],
            "/deploy run service:api version:v2 env:production",
        )
        .await;
    assert!(
        !requested.content.starts_with('⛔'),
        "{}",
        requested.content
    );
    let older = bot.say("ana", &["ops"], "/audit recent count:1").await;
    assert!(!older.content.starts_with('⛔'), "{}", older.content);
    incident_channel
}

/// Every custom id on a message in the guild, with the message it is on.
fn custom_ids(emulator: &opsbot::emulator::Emulator) -> Vec<(u64, String)> {
    let mut found = Vec::new();
    for (channel, _, _) in emulator.channels() {
        for message in emulator.channel_messages(channel) {
            let id: u64 = message["id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .unwrap_or_default();
            for row in message["components"].as_array().into_iter().flatten() {
                for component in row["components"].as_array().into_iter().flatten() {
                    if let Some(custom_id) = component["custom_id"].as_str() {
                        found.push((id, custom_id.to_owned()));
                    }
                }
            }
        }
    }
    found
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn discord_refuses_and_audits_every_command_and_component_without_its_permission(
    pool: PgPool,
) {
    let (config, _hook) = config();
    let mut bot = TestBot::with_config(pool.clone(), &config).await;
    let channel = set_the_stage(&mut bot).await;
    let before = counts(&pool).await;

    for (line, _, permission) in COMMANDS {
        let reply = if let Some(name) = line.strip_prefix(":apps ") {
            let eve = bot.emulator.member("eve", Some(&["nobody".to_owned()]));
            let message = bot
                .emulator
                .write_message(eve, channel, "the API answers 502")
                .expect("a message");
            let interaction = bot
                .emulator
                .message_command(eve, message, name)
                .unwrap_or_else(|e| panic!("{line}: {e}"));
            bot.answer_to(interaction).await
        } else {
            bot.say("eve", &["nobody"], line).await
        };
        assert!(reply.ephemeral, "{line}: a refusal is private");
        assert!(
            reply.content.starts_with('⛔') && reply.content.contains(permission),
            "{line}: {}",
            reply.content
        );
    }

    // Each kind of component, as found on the messages ana's actions left (or, for kinds
    // those messages do not show, with a custom id of that kind: a replayed interaction).
    let on_messages = custom_ids(&bot.emulator);
    let group: i64 = sqlx::query_scalar("SELECT id FROM alert_groups")
        .fetch_one(&pool)
        .await
        .expect("the alert's group");
    let eve = bot.emulator.member("eve", Some(&["nobody".to_owned()]));
    let any_message = bot
        .emulator
        .write_message(eve, channel, "a message to press on")
        .expect("a message");
    for (prefix, _, permission) in COMPONENTS {
        let (message, custom_id) = on_messages
            .iter()
            .find(|(_, id)| id.starts_with(prefix))
            .cloned()
            .unwrap_or_else(|| {
                let id = match prefix {
                    "alerts-expire:" => format!("{prefix}a-silence-id"),
                    // Incident #1, the staging deploy #1.
                    "incident-rollback:" => format!("{prefix}1:1"),
                    _ => format!("{prefix}{group}"),
                };
                (any_message, id)
            });
        let values: Option<&[&str]> = prefix.contains("silence:").then_some(&["1h"]);
        let interaction = bot
            .emulator
            .press_custom_id(eve, message, &custom_id, values)
            .unwrap_or_else(|e| panic!("{custom_id}: {e}"));
        let reply = bot.answer_to(interaction).await;
        assert!(reply.ephemeral, "{custom_id}: a refusal is private");
        assert!(
            reply.content.starts_with('⛔') && reply.content.contains(permission),
            "{custom_id}: {}",
            reply.content
        );
    }

    let rows: Vec<(&str, &str, &str)> = COMMANDS.iter().chain(COMPONENTS.iter()).copied().collect();
    assert_denials_match(&denials(&pool, "eve").await, &rows, "discord");
    assert_eq!(
        counts(&pool).await,
        before,
        "nothing was changed by any of them"
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn the_shell_refuses_and_audits_every_command_without_its_permission(pool: PgPool) {
    let config_file = tempfile::NamedTempFile::new().expect("config file");
    let (config, _hook) = config();
    std::fs::write(config_file.path(), config).expect("write config");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_opsbot"))
        .args([
            "shell", "--json", "--user", "ana", "--roles", "ops", "--config",
        ])
        .arg(config_file.path())
        .env("DATABASE_URL", database_url(&pool))
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start opsbot shell");
    let mut script = String::from(
        "/incident declare title:setup severity:sev1\n:in new\n:as eve nobody\n:write the API answers 502\n",
    );
    for (line, _, _) in COMMANDS {
        script.push_str(line);
        script.push('\n');
    }
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(script.as_bytes()).await.expect("script");
    }
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the shell exits at end of input")
        .expect("output");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    for (line, _, permission) in COMMANDS {
        let answers: Vec<&Value> = events
            .iter()
            .filter(|e| e["input"] == line && matches!(e["event"].as_str(), Some("reply" | "edit")))
            .collect();
        assert_eq!(answers.len(), 1, "{line}: {events:#?}");
        let content = answers[0]["content"].as_str().unwrap_or_default();
        assert!(
            content.starts_with('⛔') && content.contains(permission),
            "{line}: {}",
            answers[0]
        );
    }
    assert_denials_match(&denials(&pool, "eve").await, &COMMANDS, "shell");
}
