//! Secrets never appear: `opsbot run` and `opsbot shell` start with a sentinel value for
//! every secret the configuration takes (README: Configuration), logging at `trace`; the
//! test uses them (commands, deploys through every backend, HTTP calls with good and bad
//! credentials, background loops failing to reach their services) and then greps
//! everything they printed — stdout, stderr, and every file written under their working
//! directory — for each sentinel, raw and in the encodings a log could carry it
//! (URL-encoded, base64 of a basic-auth pair).

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use sqlx::PgPool;
use support::alertmanager::free_port;

/// A port nothing listens on: every backend, sink and API points there and fails.
fn dead_port() -> u16 {
    free_port()
}

/// One sentinel per secret: `(what, value)`. Each is long enough for the keys that need 32
/// bytes, and unique to this run.
fn sentinels() -> Vec<(&'static str, String)> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    [
        "discord-token",
        "discord-client-secret",
        "database-password",
        "dashboard-token",
        "session-secret",
        "audit-chain-key",
        "prometheus-bearer",
        "alertmanager-password",
        "alerts-webhook-token",
        "nats-token",
        "pubsub-access-token",
        "incidents-github-token",
        "github-actions-token",
        "webhook-backend-secret",
        "kubernetes-token",
    ]
    .into_iter()
    .map(|what| (what, format!("sentinel{}{run}", what.replace('-', ""))))
    .collect()
}

fn value<'a>(sentinels: &'a [(&str, String)], what: &str) -> &'a str {
    sentinels
        .iter()
        .find(|(w, _)| *w == what)
        .map(|(_, v)| v.as_str())
        .expect("a sentinel")
}

/// The environment variable a secret is read from (`env:NAME` references).
fn env_name(what: &str) -> String {
    format!("SENTINEL_{}", what.replace('-', "_").to_uppercase())
}

/// The configuration: every secret as `env:NAME`, the dashboard token as `file:PATH`.
fn config(dir: &Path, http: u16, dead: u16) -> String {
    let token_file = dir.join("dashboard-token");
    let kubeconfig = dir.join("kubeconfig");
    format!(
        r#"
[discord]
token = "env:{discord}"
api_base = "http://127.0.0.1:{dead}"
guild_ids = [123456789012345678]
client_id = 123456789012345678
client_secret = "env:{client}"
[http]
listen = "127.0.0.1:{http}"
dashboard_tokens = ["file:{token_file}"]
session_secret = "env:{session}"
[audit]
chain_key = "env:{chain}"
checkpoint_path = "{checkpoint}"
checkpoint_interval = "1s"
[roles]
ops = ["*"]
[channels]
deploys = 111000000000000111
incidents = 222000000000000222
incident_category = 444000000000000444
[incidents.severities.sev1]
description = "customer-facing outage"
[incidents.github]
repo = "acme/postmortems"
token = "env:{incidents_github}"
api_base = "http://127.0.0.1:{dead}"
[prometheus]
url = "http://127.0.0.1:{dead}"
bearer_token = "env:{prometheus}"
[alertmanager]
url = "http://127.0.0.1:{dead}"
username = "opsbot"
password = "env:{alertmanager}"
[alerts]
webhook_token = "env:{alerts}"
[[alerts.routes]]
channel = 333000000000000333
[events.nats]
url = "nats://127.0.0.1:{dead}"
subject = "opsbot.secrets-test"
stream = "OPSBOT_SECRETS_TEST"
token = "env:{nats}"
[events.pubsub]
project = "secrets-test"
topic = "secrets-test"
emulator_host = "127.0.0.1:{dead}"
access_token = "env:{pubsub}"
[[services]]
name = "gh"
environments = ["staging"]
backend = {{ kind = "github_actions", repo = "acme/api", workflow = "deploy.yml", token = "env:{github}", api_base = "http://127.0.0.1:{dead}", timeout = "10s" }}
[[services]]
name = "hook"
environments = ["staging"]
backend = {{ kind = "webhook", url = "http://127.0.0.1:{dead}/deploy", secret = "env:{webhook}", timeout = "10s" }}
[[services]]
name = "kube"
environments = ["staging"]
backend = {{ kind = "kubernetes", kubeconfig = "{kubeconfig}", namespace = "shop", deployment = "api", container = "api", image = "ghcr.io/acme/api:{{version}}", timeout = "10s" }}
"#,
        discord = env_name("discord-token"),
        client = env_name("discord-client-secret"),
        token_file = token_file.display(),
        session = env_name("session-secret"),
        chain = env_name("audit-chain-key"),
        checkpoint = dir.join("checkpoint.json").display(),
        incidents_github = env_name("incidents-github-token"),
        prometheus = env_name("prometheus-bearer"),
        alertmanager = env_name("alertmanager-password"),
        alerts = env_name("alerts-webhook-token"),
        nats = env_name("nats-token"),
        pubsub = env_name("pubsub-access-token"),
        github = env_name("github-actions-token"),
        webhook = env_name("webhook-backend-secret"),
        kubeconfig = kubeconfig.display(),
    )
}

/// Writes the config and the secrets kept in files; returns the command to start `opsbot
/// args` with every secret in its environment.
fn prepare(
    dir: &Path,
    pool: &PgPool,
    sentinels: &[(&str, String)],
    http: u16,
    dead: u16,
    args: &[&str],
) -> tokio::process::Command {
    std::fs::write(dir.join("opsbot.toml"), config(dir, http, dead)).expect("config");
    std::fs::write(
        dir.join("dashboard-token"),
        format!("{}\n", value(sentinels, "dashboard-token")),
    )
    .expect("token file");
    std::fs::write(
        dir.join("kubeconfig"),
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{dead}\n\
             users:\n- name: u\n  user:\n    token: {}\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n    namespace: shop\n\
             current-context: x\n",
            value(sentinels, "kubernetes-token")
        ),
    )
    .expect("kubeconfig");
    let options = pool.connect_options();
    let database_url = format!(
        "postgres://{}:{}@{}:{}/{}",
        options.get_username(),
        value(sentinels, "database-password"),
        options.get_host(),
        options.get_port(),
        options.get_database().expect("a database name")
    );
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_opsbot"));
    command
        .args(args)
        .arg("--config")
        .arg(dir.join("opsbot.toml"))
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "trace")
        .env_remove("PUBSUB_EMULATOR_HOST")
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (what, value) in sentinels {
        command.env(env_name(what), value);
    }
    command
}

/// What a sentinel may look like in a log: itself, URL-encoded (the same here: sentinels are
/// alphanumeric), and inside a basic-auth header.
fn forms(sentinels: &[(&str, String)]) -> Vec<(String, String)> {
    let mut forms: Vec<(String, String)> = sentinels
        .iter()
        .map(|(what, value)| (what.to_string(), value.clone()))
        .collect();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "opsbot:{}",
        value(sentinels, "alertmanager-password")
    ));
    forms.push(("alertmanager-password (basic auth)".into(), basic));
    for (what, value) in sentinels {
        // A prefix long enough to be the secret and not chance.
        forms.push((
            format!("{what} (first 16 characters)"),
            value[..16].to_owned(),
        ));
    }
    forms
}

/// Every sentinel form found in `text` or in a file under `dir`: `(what, where)`.
fn leaks(
    forms: &[(String, String)],
    outputs: &[(&str, String)],
    dir: &Path,
) -> Vec<(String, String)> {
    let mut places: Vec<(String, String)> = outputs
        .iter()
        .map(|(name, text)| (name.to_string(), text.clone()))
        .collect();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // The files the test wrote hold the secrets on purpose; the database's own files
            // are the database's business.
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if matches!(
                name,
                "opsbot.toml" | "dashboard-token" | "kubeconfig" | "pg"
            ) {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                places.push((
                    path.display().to_string(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                ));
            }
        }
    }
    let mut found = Vec::new();
    for (what, form) in forms {
        for (place, text) in &places {
            if text.contains(form.as_str()) {
                found.push((what.clone(), place.clone()));
            }
        }
    }
    found
}

async fn status_of(request: reqwest::RequestBuilder) -> u16 {
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            status
        }
        Err(_) => 0,
    }
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn opsbot_run_never_prints_a_secret(pool: PgPool) {
    let dir = tempfile::tempdir().expect("dir");
    let sentinels = sentinels();
    let port = free_port();
    let mut child = prepare(dir.path(), &pool, &sentinels, port, dead_port(), &["run"])
        .spawn()
        .expect("start opsbot run");
    // Drained as it runs: at trace level a full pipe would stop the process.
    let drain = |pipe: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>| {
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt as _;
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes).await;
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let started = tokio::time::Instant::now();
    while status_of(client.get(format!("{base}/healthz"))).await != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "opsbot run never answered /healthz"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = value(&sentinels, "dashboard-token");
    let hook = value(&sentinels, "alerts-webhook-token");
    let payload =
        std::fs::read("/work/shared/fixtures/alertmanager/01-firing-1x-HighErrorRate.json")
            .or_else(|_| {
                std::fs::read(format!(
                    "{}/../../shared/fixtures/alertmanager/01-firing-1x-HighErrorRate.json",
                    env!("CARGO_MANIFEST_DIR")
                ))
            })
            .expect("an Alertmanager payload");
    let calls = [
        ("readyz", client.get(format!("{base}/readyz")), 200),
        ("metrics", client.get(format!("{base}/metrics")), 200),
        (
            "api with the token",
            client.get(format!("{base}/api/audit")).bearer_auth(token),
            200,
        ),
        (
            "api with a wrong token",
            client
                .get(format!("{base}/api/audit"))
                .bearer_auth(format!("{token}x")),
            401,
        ),
        (
            "alert with the token",
            client
                .post(format!("{base}/webhooks/alertmanager"))
                .bearer_auth(hook)
                .header("content-type", "application/json")
                .body(payload.clone()),
            200,
        ),
        (
            "alert with a wrong token",
            client
                .post(format!("{base}/webhooks/alertmanager"))
                .bearer_auth("not-the-token")
                .body(payload),
            401,
        ),
        (
            "a forged deploy report",
            client
                .post(format!("{base}/webhooks/deploy/1"))
                .header(
                    "X-Opsbot-Timestamp",
                    chrono::Utc::now().timestamp().to_string(),
                )
                .header("X-Opsbot-Signature", format!("v2={}", "ab".repeat(32)))
                .body(r#"{"status":"succeeded"}"#),
            401,
        ),
        (
            "a forged session cookie",
            client
                .get(format!("{base}/"))
                .header("cookie", "opsbot_session=forged.cookie"),
            303,
        ),
    ];
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    for (what, request, expected) in calls {
        let request = request.build().expect("request");
        let status = no_redirects
            .execute(request)
            .await
            .map(|r| r.status().as_u16());
        assert_eq!(status.as_ref().ok(), Some(&expected), "{what}: {status:?}");
    }
    // The background loops (gateway, event sinks, checkpoints) fail and retry meanwhile.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let pid = child.id().expect("pid");
    // SIGTERM to the child this test started: a graceful shutdown logs too.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let output = tokio::time::timeout(Duration::from_secs(60), async {
        let _ = child.wait().await;
        (
            stdout.await.unwrap_or_default(),
            stderr.await.unwrap_or_default(),
        )
    })
    .await
    .expect("opsbot run stops on SIGTERM");
    let stderr = String::from_utf8_lossy(&output.1).into_owned();
    assert!(
        stderr.contains("TRACE") || stderr.contains("trace"),
        "logs at trace: {}",
        &stderr[..stderr.len().min(2000)]
    );
    let found = leaks(
        &forms(&sentinels),
        &[
            ("stdout", String::from_utf8_lossy(&output.0).into_owned()),
            ("stderr", stderr),
        ],
        dir.path(),
    );
    assert!(found.is_empty(), "secrets printed: {found:#?}");
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn opsbot_shell_never_prints_a_secret(pool: PgPool) {
    let dir = tempfile::tempdir().expect("dir");
    let sentinels = sentinels();
    let args = ["shell", "--json", "--user", "ana", "--roles", "ops"];
    let mut child = prepare(dir.path(), &pool, &sentinels, 0, dead_port(), &args)
        .spawn()
        .expect("start opsbot shell");
    let script = [
        "/whoami",
        "/audit recent",
        "/deploy run service:gh version:v1 env:staging",
        "/deploy run service:hook version:v1 env:staging",
        "/deploy run service:kube version:v1 env:staging",
        "/metrics query promql:up",
        "/alerts silences",
        r#"/alerts silence matchers:service="api" duration:1h reason:noisy"#,
        "/incident declare title:down severity:sev1",
        "/incident postmortem id:1",
        ":sleep 4",
        "/deploy status",
        "/audit verify",
    ]
    .map(|line| format!("{line}\n"))
    .concat();
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(script.as_bytes()).await.expect("script");
    }
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the shell exits at end of input")
        .expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    // The deploys failed for want of their backends, and said so.
    assert!(stdout.contains("failed"), "{stdout}");
    let found = leaks(
        &forms(&sentinels),
        &[("stdout", stdout), ("stderr", stderr)],
        dir.path(),
    );
    assert!(found.is_empty(), "secrets printed: {found:#?}");
}

#[test]
fn the_search_finds_every_sentinel_in_every_form() {
    let sentinels = sentinels();
    let forms = forms(&sentinels);
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("a.log"), format!("x{}x", forms[0].1)).expect("log");
    for (what, form) in &forms {
        let found = leaks(&forms, &[("probe", format!("... {form} ..."))], dir.path());
        assert!(
            found.iter().any(|(w, p)| w == what && p == "probe"),
            "{what}"
        );
    }
    let in_file = leaks(&forms, &[], dir.path());
    assert!(
        in_file.iter().any(|(_, place)| place.ends_with("a.log")),
        "{in_file:?}"
    );
}
