//! The `github_actions` backend against a wiremock GitHub serving the documented payloads.

use std::time::Duration;

use opsbot_commands::deploy::backends::github_actions::{GithubActionsSpec, execute};
use opsbot_commands::deploy::backends::{BackendEvent, DeployJob, Finish};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DISPATCH: &str = "/repos/acme/api/actions/workflows/deploy.yml/dispatches";
const RUNS: &str = "/repos/acme/api/actions/workflows/deploy.yml/runs";
const RUN: &str = "/repos/acme/api/actions/runs/9001";

fn spec(server: &MockServer) -> GithubActionsSpec {
    GithubActionsSpec {
        repo: "acme/api".into(),
        workflow: "deploy.yml".into(),
        git_ref: "main".into(),
        token: secrecy::SecretString::from("ghp_test".to_owned()),
        api_base: server.uri(),
        poll_interval: Duration::from_millis(10),
        timeout: Duration::from_secs(20),
    }
}

fn job() -> DeployJob {
    DeployJob {
        deploy_id: 42,
        correlation_id: uuid::Uuid::nil(),
        service: "api".into(),
        version: "v1.2.3".into(),
        environment: "production".into(),
        requested_by: "ana".into(),
        is_rollback: false,
    }
}

/// A workflow run as GitHub's REST API documents it (the fields opsbot reads, and more).
fn run(id: u64, title: &str, status: &str, conclusion: Option<&str>) -> Value {
    json!({
        "id": id,
        "name": "Deploy",
        "display_title": title,
        "node_id": "WFR_kwLOA",
        "head_branch": "main",
        "head_sha": "acb5820ced9479c074f688cc328bf03f341a511d",
        "run_number": 562,
        "event": "workflow_dispatch",
        "status": status,
        "conclusion": conclusion,
        "workflow_id": 159038,
        "url": format!("https://api.github.com/repos/acme/api/actions/runs/{id}"),
        "html_url": format!("https://github.com/acme/api/actions/runs/{id}"),
        "created_at": "2026-11-28T10:00:00Z",
        "updated_at": "2026-11-28T10:01:00Z",
        "run_attempt": 1,
    })
}

fn runs(list: Vec<Value>) -> Value {
    json!({ "total_count": list.len(), "workflow_runs": list })
}

async fn execute_collect(
    spec: &GithubActionsSpec,
    checkpoint: Option<Value>,
) -> (Finish, Vec<BackendEvent>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let finish = execute(spec, &job(), checkpoint, tx, CancellationToken::new()).await;
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    (finish, events)
}

#[tokio::test]
async fn dispatches_finds_its_run_and_follows_it_to_success() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(DISPATCH))
        .and(header("authorization", "Bearer ghp_test"))
        .and(body_partial_json(json!({
            "ref": "main",
            "inputs": {"service": "api", "version": "v1.2.3", "environment": "production", "deploy_id": "42", "requested_by": "ana"}
        })))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    // First lookup: only someone else's run; then ours appears.
    Mock::given(method("GET"))
        .and(path(RUNS))
        .and(query_param("event", "workflow_dispatch"))
        .respond_with(ResponseTemplate::new(200).set_body_json(runs(vec![run(
            8000,
            "deploy 4 api v0.9",
            "completed",
            Some("success"),
        )])))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(RUNS))
        .respond_with(ResponseTemplate::new(200).set_body_json(runs(vec![
            run(9001, "deploy 42 api v1.2.3", "queued", None),
            run(8000, "deploy 4 api v0.9", "completed", Some("success")),
        ])))
        .mount(&server)
        .await;
    for (times, status, conclusion) in [(1, "queued", None), (2, "in_progress", None)] {
        Mock::given(method("GET"))
            .and(path(RUN))
            .respond_with(ResponseTemplate::new(200).set_body_json(run(
                9001,
                "deploy 42 api v1.2.3",
                status,
                conclusion,
            )))
            .up_to_n_times(times)
            .with_priority(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path(RUN))
        .respond_with(ResponseTemplate::new(200).set_body_json(run(
            9001,
            "deploy 42 api v1.2.3",
            "completed",
            Some("success"),
        )))
        .mount(&server)
        .await;

    let (finish, events) = execute_collect(&spec(&server), None).await;
    assert_eq!(
        finish,
        Finish::Succeeded {
            detail:
                "GitHub Actions run 9001 succeeded: https://github.com/acme/api/actions/runs/9001"
                    .into()
        }
    );
    assert!(events.contains(&BackendEvent::Checkpoint(json!({"run_id": 9001}))));
    assert!(events.contains(&BackendEvent::Link {
        label: "GitHub Actions run".into(),
        url: "https://github.com/acme/api/actions/runs/9001".into()
    }));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, BackendEvent::Progress(p) if p.ends_with("in progress"))),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_failed_conclusion_fails_the_deploy_and_resuming_skips_the_dispatch() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .expect(0)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(RUN))
        .respond_with(ResponseTemplate::new(200).set_body_json(run(
            9001,
            "deploy 42",
            "completed",
            Some("failure"),
        )))
        .mount(&server)
        .await;
    let (finish, _) = execute_collect(&spec(&server), Some(json!({"run_id": 9001}))).await;
    assert_eq!(
        finish,
        Finish::Failed { reason: "GitHub Actions run 9001 ended: failure (https://github.com/acme/api/actions/runs/9001)".into() }
    );
}

async fn dispatch_answers(status: u16, body: Value, headers: &[(&str, &str)]) -> String {
    let server = MockServer::start().await;
    let mut template = ResponseTemplate::new(status).set_body_json(body);
    for (name, value) in headers {
        template = template.insert_header(*name, *value);
    }
    Mock::given(method("POST"))
        .and(path(DISPATCH))
        .respond_with(template)
        .mount(&server)
        .await;
    match execute_collect(&spec(&server), None).await.0 {
        Finish::Failed { reason } => reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn githubs_errors_become_clear_reasons() {
    let doc = "https://docs.github.com/rest";
    let unauthorized = dispatch_answers(
        401,
        json!({"message": "Bad credentials", "documentation_url": doc}),
        &[],
    )
    .await;
    assert!(
        unauthorized.starts_with("GitHub rejected the token"),
        "{unauthorized}"
    );
    let missing = dispatch_answers(
        404,
        json!({"message": "Not Found", "documentation_url": doc}),
        &[],
    )
    .await;
    assert!(
        missing.contains("no repository acme/api with workflow deploy.yml"),
        "{missing}"
    );
    let refused = dispatch_answers(422, json!({"message": "Workflow does not have 'workflow_dispatch' trigger", "documentation_url": doc}), &[]).await;
    assert!(
        refused.contains("Workflow does not have 'workflow_dispatch' trigger"),
        "{refused}"
    );
    let limited = dispatch_answers(
        403,
        json!({"message": "API rate limit exceeded for installation ID 1.", "documentation_url": doc}),
        &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1800000000")],
    )
    .await;
    assert!(
        limited.starts_with("GitHub's rate limit was reached"),
        "{limited}"
    );
}

#[tokio::test]
async fn a_run_that_never_appears_is_reported_with_the_fix() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(DISPATCH))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(RUNS))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(runs(vec![run(1, "Deploy", "queued", None)])),
        )
        .mount(&server)
        .await;
    // Cancel stops the lookup at once (opsbot shutting down): tracking resumes later.
    let (tx, _rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let spec = spec(&server);
    let job = job();
    let run = tokio::spawn({
        let cancel = cancel.clone();
        async move { execute(&spec, &job, None, tx, cancel).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    cancel.cancel();
    assert_eq!(run.await.expect("task"), Finish::Interrupted);
}
