//! `opsbot run` killed with SIGKILL mid-deploy and mid-seal, then started again on the same
//! database: three deploys are in flight (GitHub Actions polling a run, a webhook deployer
//! that has not reported yet, a local command still running) and the sealer is chaining a
//! backlog of 60,000 events when the process dies. After the restart the GitHub run is
//! followed to its end without a second dispatch, the deployer's report is accepted, the
//! command's leftover processes are stopped and its deploy fails as "outcome unknown",
//! every event is sealed exactly once, and `opsbot audit verify` passes.

use std::sync::{Arc, Mutex};

use opsbot::emulator::Emulator;
use opsbot_commands::deploy::backends::webhook;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::harness::{self, Opsbot, PATIENCE, ask, eventually};
use crate::support::private_pg::PrivatePostgres;

const SECRET: &[u8] = b"faults-sigkill-secret";
/// Events queued for the sealer before the kill (it chains 5,000 per transaction).
const BACKLOG: i64 = 60_000;

/// GitHub Actions for repo `acme/gh`: dispatches are counted, each creates a run named
/// after its deploy, in progress until the test completes it.
#[derive(Clone, Default)]
struct Actions {
    state: Arc<Mutex<ActionsState>>,
}

#[derive(Default)]
struct ActionsState {
    dispatched: Vec<i64>,
    completed: bool,
}

impl Actions {
    fn lock(&self) -> std::sync::MutexGuard<'_, ActionsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn run(&self, deploy: i64) -> Value {
        let completed = self.lock().completed;
        json!({
            "id": 9000 + deploy, "name": "deploy", "run_number": 1,
            "display_title": format!("deploy {deploy} gh v1 to staging"),
            "status": if completed { "completed" } else { "in_progress" },
            "conclusion": if completed { Value::from("success") } else { Value::Null },
            "html_url": format!("https://github.com/acme/gh/actions/runs/{}", 9000 + deploy),
            "created_at": chrono::Utc::now().to_rfc3339(),
        })
    }
}

impl Respond for Actions {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let url = request.url.path();
        if url.ends_with("/dispatches") {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
            let id = body["inputs"]["deploy_id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            self.lock().dispatched.push(id);
            return ResponseTemplate::new(204);
        }
        if let Some(run) = url.strip_prefix("/repos/acme/gh/actions/runs/") {
            let deploy = run.parse::<i64>().unwrap_or(0) - 9000;
            return ResponseTemplate::new(200).set_body_json(self.run(deploy));
        }
        let dispatched = self.lock().dispatched.clone();
        let runs: Vec<Value> = dispatched.into_iter().map(|id| self.run(id)).collect();
        ResponseTemplate::new(200)
            .set_body_json(json!({ "total_count": runs.len(), "workflow_runs": runs }))
    }
}

/// Processes on this machine whose environment carries the deploy's correlation id.
fn processes_of(correlation_id: Uuid) -> usize {
    let needle = format!("OPSBOT_CORRELATION_ID={correlation_id}");
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    std::fs::read(e.path().join("environ"))
                        .map(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}

async fn deploy_of(pool: &PgPool, service: &str) -> (i64, String, Uuid, Option<Value>) {
    sqlx::query_as("SELECT id, state, correlation_id, checkpoint FROM deploys WHERE service = $1")
        .bind(service)
        .fetch_one(pool)
        .await
        .expect("deploy")
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("count")
}

#[tokio::test]
async fn sigkill_mid_deploy_and_mid_seal_loses_nothing_and_seals_nothing_twice() {
    let pg = PrivatePostgres::start().await;
    let deployer = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&deployer)
        .await;
    let github = MockServer::start().await;
    let actions = Actions::default();
    Mock::given(path_regex("^/repos/acme/gh/"))
        .respond_with(actions.clone())
        .mount(&github)
        .await;
    let dir = tempfile::tempdir().expect("dir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).expect("secret");
    // A deploy script that starts a process of its own and waits for it.
    let script = dir.path().join("deploy.sh");
    std::fs::write(&script, "#!/bin/sh\necho deploying\nsleep 600 &\nwait\n").expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let (config_dir, config) = harness::config_file(&format!(
        r#"
[[services]]
name = "hooked"
environments = ["staging"]
backend = {{ kind = "webhook", url = "{}/hooks/opsbot", secret = "file:{}", timeout = "5m" }}
[[services]]
name = "gh"
environments = ["staging"]
backend = {{ kind = "github_actions", repo = "acme/gh", workflow = "deploy.yml", token = "file:{}", api_base = "{}", poll_interval = "1s", timeout = "10m" }}
[[services]]
name = "cmd"
environments = ["staging"]
backend = {{ kind = "command", program = "{}", args = [], timeout = "10m" }}
"#,
        deployer.uri(),
        secret.display(),
        secret.display(),
        github.uri(),
        script.display(),
    ));
    let shutdown = CancellationToken::new();
    let emulator = Emulator::start(harness::guild(), shutdown.clone())
        .await
        .expect("emulator");
    let log = dir.path().join("opsbot.log");
    let mut bot = Opsbot::start(&config, &pg.url(), &emulator, &log);
    let client = reqwest::Client::new();
    bot.wait_ready(&client).await;
    let roles = ["ops".to_owned()];
    let ana = emulator.member("ana", Some(&roles));
    let general = emulator.find_channel("general").expect("general").0;
    let mut events = emulator.subscribe();
    for service in ["hooked", "gh", "cmd"] {
        let line = format!("/deploy run service:{service} version:v1 env:staging");
        let answer = ask(&emulator, &mut events, ana, general, &line)
            .await
            .expect("typed")
            .expect("answered");
        assert!(!answer.content.starts_with('❌'), "{}", answer.content);
    }
    let pool = PgPool::connect(&pg.url()).await.expect("connect");
    // In flight: the run found (its id checkpointed), the command started, the deployer
    // waited for.
    eventually("the three deploys are in flight", PATIENCE, || async {
        let gh = deploy_of(&pool, "gh").await;
        let cmd = deploy_of(&pool, "cmd").await;
        let hooked: Option<bool> = sqlx::query_scalar(
            "SELECT callback_deadline IS NOT NULL FROM deploys WHERE service = 'hooked'",
        )
        .fetch_one(&pool)
        .await
        .ok();
        (gh.3.as_ref().is_some_and(|c| c.get("run_id").is_some())
            && cmd.1 == "running"
            && processes_of(cmd.2) >= 2
            && hooked == Some(true))
        .then_some(())
    })
    .await;
    let (cmd_id, _, cmd_correlation, _) = deploy_of(&pool, "cmd").await;

    // The backlog, then the kill while a sealing transaction holds the sealer's lock.
    let before: i64 = count(&pool, "SELECT count(*) FROM audit_events").await;
    for _ in 0..BACKLOG / 10_000 {
        sqlx::raw_sql(
            "WITH e AS (
                INSERT INTO audit_events (actor_id, actor_name, source, command, args, outcome, detail)
                SELECT 0, 'drill', 'scheduler', 'fault drill', jsonb_build_object('n', g), 'ok', ''
                  FROM generate_series(1, 10000) g
                RETURNING id)
             INSERT INTO audit_unsealed (event_id) SELECT id FROM e",
        )
        .execute(&pool)
        .await
        .expect("backlog");
    }
    let (sealed_at_kill, sealing) = eventually("the sealer is mid-backlog", PATIENCE, || async {
        let sealed: i64 = count(&pool, "SELECT count(*) FROM audit_chain").await;
        let sealing: bool = sqlx::query_scalar(
            // The sealer's transaction lock (key 0x6f70_7362_7365_616c, split in two halves).
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                              AND classid = 1869640546 AND objid = 1936023916)",
        )
        .fetch_one(&pool)
        .await
        .ok()?;
        (sealing && sealed > before && sealed < before + BACKLOG).then_some((sealed, sealing))
    })
    .await;
    bot.child.kill().await.expect("SIGKILL");
    let killed = Instant::now();
    let orphans = processes_of(cmd_correlation);
    let unsealed_at_kill: i64 = count(&pool, "SELECT count(*) FROM audit_unsealed").await;

    let bot = Opsbot::start(&config, &pg.url(), &emulator, &log);
    bot.wait_ready(&client).await;
    let restarted = Instant::now();
    let restarted_wall = chrono::Utc::now();
    actions.lock().completed = true;
    let chained = eventually("every event is sealed", PATIENCE, || async {
        (count(&pool, "SELECT count(*) FROM audit_unsealed").await == 0).then(Instant::now)
    })
    .await;
    // The deployer reports after the restart.
    let (hooked_id, _, _, _) = deploy_of(&pool, "hooked").await;
    let body = json!({ "status": "succeeded", "message": "done" }).to_string();
    let now = chrono::Utc::now().timestamp();
    let target = webhook::target("POST", &webhook::report_path(hooked_id));
    let reported = client
        .post(format!("http://{}/webhooks/deploy/{hooked_id}", bot.http))
        .header("content-type", "application/json")
        .header(webhook::TIMESTAMP_HEADER, now.to_string())
        .header(
            webhook::SIGNATURE_HEADER,
            webhook::sign(SECRET, now, &target, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .expect("report");
    assert_eq!(reported.status(), 200);
    let mut resumed = Vec::new();
    for (service, state) in [
        ("gh", "succeeded"),
        ("cmd", "failed"),
        ("hooked", "succeeded"),
    ] {
        eventually(&format!("{service} ends {state}"), PATIENCE, || async {
            (deploy_of(&pool, service).await.1 == state).then_some(())
        })
        .await;
        let finished: chrono::DateTime<chrono::Utc> =
            sqlx::query_scalar("SELECT finished_at FROM deploys WHERE service = $1")
                .bind(service)
                .fetch_one(&pool)
                .await
                .expect("finished_at");
        let after = (finished - restarted_wall).to_std().unwrap_or_default();
        resumed.push(format!("{service} {state} {after:.1?} after the restart"));
    }
    assert_eq!(actions.lock().dispatched.len(), 1, "dispatched once");
    let reason: String = sqlx::query_scalar("SELECT detail FROM deploys WHERE id = $1")
        .bind(cmd_id)
        .fetch_one(&pool)
        .await
        .expect("reason");
    assert!(reason.contains("outcome is unknown"), "{reason}");
    assert!(reason.contains("have been stopped"), "{reason}");
    assert_eq!(
        processes_of(cmd_correlation),
        0,
        "no process of the deploy is left"
    );

    // Every event sealed once: positions 1..n without gaps, one per event (counted after a
    // graceful stop, which seals what is left, so that nothing is appended meanwhile).
    assert_eq!(bot.terminate().await, Some(0));
    let events_total = count(&pool, "SELECT count(*) FROM audit_events").await;
    let refused = count(&pool, "SELECT count(*) FROM audit_refused").await;
    let chain = count(&pool, "SELECT count(*) FROM audit_chain").await;
    let distinct = count(&pool, "SELECT count(DISTINCT event_id) FROM audit_chain").await;
    let top = count(&pool, "SELECT coalesce(max(position), 0) FROM audit_chain").await;
    assert_eq!(refused, 0, "nothing refused");
    assert_eq!(
        (chain, distinct, top),
        (events_total, events_total, events_total)
    );
    let (code, verified) = harness::audit_verify(&pg.url()).await;
    assert_eq!(code, Some(0), "{verified}");
    eprintln!(
        "FAULT sigkill: killed with {unsealed_at_kill} of {} events unsealed ({sealed_at_kill} sealed, sealer lock held: {sealing}) and 3 deploys in flight; {orphans} processes of the command deploy outlived the kill; restarted and ready {:.1?} after the kill; backlog sealed {:.1?} after the restart; {}; {events_total} events chained once each, verify: {}",
        before + BACKLOG,
        restarted - killed,
        chained - restarted,
        resumed.join(", "),
        verified.lines().next().unwrap_or_default(),
    );
    drop(config_dir);
    shutdown.cancel();
}
