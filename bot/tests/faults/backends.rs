//! Deploy backends that fail: a command that hangs (killed at its `timeout`), a webhook
//! deployer that accepts and never reports, one that never answers the POST, GitHub
//! answering garbage, and GitHub refusing the dispatch with 401, 404, 422 and 500 (bodies
//! shaped like GitHub's). Each deploy ends `failed` in time, with a reason that says what
//! happened, in the deploy's status message, its audit event, and its row.

use std::time::Duration;

use opsbot::emulator::Emulator;
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{self, Opsbot, ask, eventually};
use crate::support::private_pg::PrivatePostgres;

/// Each backend fault, the deploy's service name, and words its reason must contain.
const CASES: [(&str, &[&str]); 8] = [
    ("cmd-hangs", &["timed out", "2s"]),
    (
        "hook-silent",
        &["reported no outcome within 3s", "deployer"],
    ),
    ("hook-stalls", &["no answer within 15s", "deployer"]),
    ("gh-garbage", &["GitHub", "<html>"]),
    ("gh-401", &["rejected the token"]),
    ("gh-404", &["not found", "acme/gh-404 deploy.yml"]),
    (
        "gh-422",
        &["refused to start", "Unexpected inputs provided"],
    ),
    ("gh-500", &["answered 500", "Server Error"]),
];

fn services(deployer: &str, github: &str, secret: &std::path::Path) -> String {
    let secret = secret.display();
    let mut text = format!(
        r#"
[[services]]
name = "cmd-hangs"
environments = ["staging"]
backend = {{ kind = "command", program = "sleep", args = ["600"], timeout = "2s" }}
[[services]]
name = "hook-silent"
environments = ["staging"]
backend = {{ kind = "webhook", url = "{deployer}/silent", secret = "file:{secret}", timeout = "3s" }}
[[services]]
name = "hook-stalls"
environments = ["staging"]
backend = {{ kind = "webhook", url = "{deployer}/stalls", secret = "file:{secret}", timeout = "5m" }}
"#
    );
    for name in ["gh-garbage", "gh-401", "gh-404", "gh-422", "gh-500"] {
        text.push_str(&format!(
            r#"[[services]]
name = "{name}"
environments = ["staging"]
backend = {{ kind = "github_actions", repo = "acme/{name}", workflow = "deploy.yml", token = "file:{secret}", api_base = "{github}", poll_interval = "1s", timeout = "30s" }}
"#
        ));
    }
    text
}

async fn github_mocks(github: &MockServer) {
    let dispatch =
        |repo: &str| format!("/repos/acme/{repo}/actions/workflows/deploy.yml/dispatches");
    Mock::given(method("POST"))
        .and(path(dispatch("gh-garbage")))
        .respond_with(ResponseTemplate::new(204))
        .mount(github)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(
            "^/repos/acme/gh-garbage/actions/workflows/deploy.yml/runs",
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("<html><body>Unicorn! GitHub is having trouble</body></html>"),
        )
        .mount(github)
        .await;
    let docs = "https://docs.github.com/rest/actions/workflows#create-a-workflow-dispatch-event";
    for (repo, status, message) in [
        ("gh-401", 401, "Bad credentials"),
        ("gh-404", 404, "Not Found"),
        ("gh-422", 422, "Unexpected inputs provided: [\"deploy_id\"]"),
        ("gh-500", 500, "Server Error"),
    ] {
        Mock::given(method("POST"))
            .and(path(dispatch(repo)))
            .respond_with(
                ResponseTemplate::new(status)
                    .set_body_json(json!({ "message": message, "documentation_url": docs, "status": status.to_string() })),
            )
            .mount(github)
            .await;
    }
}

#[tokio::test]
async fn failing_backends_fail_each_deploy_in_time_with_a_clear_reason() {
    let pg = PrivatePostgres::start().await;
    let deployer = MockServer::start().await;
    Mock::given(path("/silent"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&deployer)
        .await;
    Mock::given(path("/stalls"))
        .respond_with(ResponseTemplate::new(202).set_delay(Duration::from_secs(120)))
        .mount(&deployer)
        .await;
    let github = MockServer::start().await;
    github_mocks(&github).await;
    let dir = tempfile::tempdir().expect("dir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "faults-secret").expect("secret");
    let (config_dir, config) =
        harness::config_file(&services(&deployer.uri(), &github.uri(), &secret));
    let shutdown = CancellationToken::new();
    let emulator = Emulator::start(harness::guild(), shutdown.clone())
        .await
        .expect("emulator");
    let bot = Opsbot::start(
        &config,
        &pg.url(),
        &emulator,
        &dir.path().join("opsbot.log"),
    );
    let client = reqwest::Client::new();
    bot.wait_ready(&client).await;
    let roles = ["ops".to_owned()];
    let ana = emulator.member("ana", Some(&roles));
    let general = emulator.find_channel("general").expect("general").0;
    let mut events = emulator.subscribe();

    let pool = PgPool::connect(&pg.url()).await.expect("connect");
    for (service, _) in CASES {
        let line = format!("/deploy run service:{service} version:v1 env:staging");
        let answer = ask(&emulator, &mut events, ana, general, &line)
            .await
            .expect("typed")
            .expect("answered");
        assert!(
            !answer.content.starts_with('❌'),
            "{line}: {}",
            answer.content
        );
    }
    let mut figures = Vec::new();
    let mut unclear = Vec::new();
    for (service, words) in CASES {
        let (id, reason, seconds): (i64, String, f64) = eventually(
            &format!("{service} fails"),
            Duration::from_secs(60),
            || async {
                sqlx::query_as(
                    "SELECT id, detail, EXTRACT(EPOCH FROM finished_at - requested_at)::float8
                       FROM deploys WHERE service = $1 AND state = 'failed'",
                )
                .bind(service)
                .fetch_optional(&pool)
                .await
                .ok()
                .flatten()
            },
        )
        .await;
        for word in words {
            if !reason.contains(word) {
                unclear.push(format!("{service}: {word:?} not in {reason:?}"));
            }
        }
        let audited: String = sqlx::query_scalar(
            "SELECT e.detail FROM audit_events e JOIN deploys d ON d.correlation_id = e.correlation_id
              WHERE d.id = $1 AND e.outcome = 'failed'",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("a failed event");
        assert!(
            audited.contains(&reason),
            "{service}: audit says {audited:?}"
        );
        // The status message in #general says it too.
        let shown = eventually(
            &format!("{service}'s status shows why"),
            Duration::from_secs(30),
            || async {
                emulator
                    .channel_messages(general)
                    .iter()
                    .map(|m| m.to_string())
                    .find(|m| {
                        m.contains(&format!("#{id} {service}"))
                            && m.contains("failed")
                            && (m.contains(words[0]) || !reason.contains(words[0]))
                    })
            },
        )
        .await;
        assert!(!shown.is_empty());
        figures.push(format!(
            "{service} failed {seconds:.1} s after the request: {reason}"
        ));
    }
    assert!(
        unclear.is_empty(),
        "unclear reasons:\n{}",
        unclear.join("\n")
    );
    assert_eq!(bot.terminate().await, Some(0));
    let (code, verified) = harness::audit_verify(&pg.url()).await;
    assert_eq!(code, Some(0), "{verified}");
    eprintln!("FAULT backends:\n  {}", figures.join("\n  "));
    drop(config_dir);
    shutdown.cancel();
}
