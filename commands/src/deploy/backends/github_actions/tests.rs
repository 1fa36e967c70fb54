//! The backend against a wiremock GitHub serving the documented payload shapes.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::*;

const DISPATCH: &str = "/repos/acme/api/actions/workflows/deploy.yml/dispatches";
const RUNS: &str = "/repos/acme/api/actions/workflows/deploy.yml/runs";
const RUN: &str = "/repos/acme/api/actions/runs/30433642";
const HTML_URL: &str = "https://github.com/acme/api/actions/runs/30433642";

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

fn spec(server: &MockServer) -> GithubActionsSpec {
    GithubActionsSpec {
        repo: "acme/api".into(),
        workflow: "deploy.yml".into(),
        git_ref: "main".into(),
        token: secrecy::SecretString::from("ghp_test_token"),
        api_base: server.uri(),
        poll_interval: Duration::from_millis(10),
        timeout: Duration::from_secs(20),
    }
}

/// A workflow run as GitHub's REST docs show it ("Get a workflow run"), trimmed of the
/// repository objects.
fn run(title: &str, status: &str, conclusion: Option<&str>) -> Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({
        "id": 30433642,
        "name": "Deploy",
        "node_id": "MDEyOldvcmtmbG93IFJ1bjI2OTI4OQ==",
        "check_suite_id": 42,
        "check_suite_node_id": "MDEwOkNoZWNrU3VpdGU0Mg==",
        "head_branch": "main",
        "head_sha": "acb5820ced9479c074f688cc328bf03f341a511d",
        "path": ".github/workflows/deploy.yml@main",
        "display_title": title,
        "run_number": 562,
        "event": "workflow_dispatch",
        "status": status,
        "conclusion": conclusion,
        "workflow_id": 159038,
        "url": "https://api.github.com/repos/acme/api/actions/runs/30433642",
        "html_url": HTML_URL,
        "pull_requests": [],
        "created_at": now,
        "updated_at": now,
        "actor": { "login": "opsbot", "id": 1, "type": "Bot" },
        "run_attempt": 1,
        "run_started_at": now,
        "jobs_url": "https://api.github.com/repos/acme/api/actions/runs/30433642/jobs",
        "logs_url": "https://api.github.com/repos/acme/api/actions/runs/30433642/logs",
        "check_suite_url": "https://api.github.com/repos/acme/api/check-suites/414944374",
        "artifacts_url": "https://api.github.com/repos/acme/api/actions/runs/30433642/artifacts",
        "cancel_url": "https://api.github.com/repos/acme/api/actions/runs/30433642/cancel",
        "rerun_url": "https://api.github.com/repos/acme/api/actions/runs/30433642/rerun",
        "workflow_url": "https://api.github.com/repos/acme/api/actions/workflows/159038",
        "head_commit": {
            "id": "acb5820ced9479c074f688cc328bf03f341a511d",
            "tree_id": "d23f6eedb1e1b9610bbc754ddb5197bfe7271223",
            "message": "Create linter.yaml",
            "timestamp": "2020-01-22T19:33:05Z",
            "author": { "name": "Octo Cat", "email": "octocat@github.com" },
            "committer": { "name": "GitHub", "email": "noreply@github.com" }
        }
    })
}

fn run_list(runs: Vec<Value>) -> Value {
    json!({ "total_count": runs.len(), "workflow_runs": runs })
}

async fn execute_collect(
    spec: &GithubActionsSpec,
    checkpoint: Option<Value>,
    cancel: CancellationToken,
) -> (Finish, Vec<BackendEvent>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let finish = execute(spec, &job(), checkpoint, tx, cancel).await;
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    (finish, events)
}

async fn mount_dispatch(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path(DISPATCH))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(server)
        .await;
}

/// Answers the run's status from `statuses` in turn, then keeps the last.
async fn mount_run_statuses(
    server: &MockServer,
    statuses: Vec<(&'static str, Option<&'static str>)>,
) {
    let calls = std::sync::atomic::AtomicUsize::new(0);
    Mock::given(method("GET"))
        .and(path(RUN))
        .respond_with(move |_: &Request| {
            let n = calls
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                .min(statuses.len() - 1);
            let (status, conclusion) = statuses[n];
            ResponseTemplate::new(200).set_body_json(run(
                "deploy 42 api v1.2.3 to production",
                status,
                conclusion,
            ))
        })
        .mount(server)
        .await;
}

fn progress(events: &[BackendEvent]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            BackendEvent::Progress(p) => Some(p.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn dispatches_finds_the_run_and_follows_it_to_success() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(DISPATCH))
        .and(header("authorization", "Bearer ghp_test_token"))
        .and(body_partial_json(json!({
            "ref": "main",
            "inputs": { "service": "api", "version": "v1.2.3", "environment": "production", "deploy_id": "42", "requested_by": "ana" }
        })))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    // An older run for another deploy (id 4 in a version-like word must not match), then ours.
    let calls = std::sync::atomic::AtomicUsize::new(0);
    Mock::given(method("GET"))
        .and(path(RUNS))
        .and(query_param("event", "workflow_dispatch"))
        .respond_with(move |_: &Request| {
            let mut other = run("deploy 41 api v42.0 to production", "in_progress", None);
            other["id"] = json!(30433641);
            let runs = if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                vec![other]
            } else {
                vec![
                    run("deploy 42 api v1.2.3 to production", "queued", None),
                    other,
                ]
            };
            ResponseTemplate::new(200).set_body_json(run_list(runs))
        })
        .mount(&server)
        .await;
    mount_run_statuses(
        &server,
        vec![
            ("queued", None),
            ("in_progress", None),
            ("in_progress", None),
            ("completed", Some("success")),
        ],
    )
    .await;

    let (finish, events) = execute_collect(&spec(&server), None, CancellationToken::new()).await;

    assert_eq!(
        finish,
        Finish::Succeeded {
            detail: format!("GitHub Actions run #562 succeeded: {HTML_URL}")
        }
    );
    assert!(matches!(&events[0], BackendEvent::Checkpoint(c) if c.get("dispatched_at").is_some()));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, BackendEvent::Checkpoint(c) if c["run_id"] == 30433642))
    );
    assert!(events.contains(&BackendEvent::Link {
        label: "GitHub Actions run".into(),
        url: HTML_URL.into()
    }));
    assert_eq!(
        progress(&events),
        [
            "dispatched deploy.yml on main in acme/api",
            "GitHub Actions run #562 is queued",
            "GitHub Actions run #562 is in progress",
        ]
    );
}

#[tokio::test]
async fn a_failed_run_names_its_conclusion_and_url() {
    let server = MockServer::start().await;
    mount_dispatch(&server).await;
    Mock::given(method("GET"))
        .and(path(RUNS))
        .respond_with(ResponseTemplate::new(200).set_body_json(run_list(vec![run(
            "deploy 42",
            "in_progress",
            None,
        )])))
        .mount(&server)
        .await;
    mount_run_statuses(
        &server,
        vec![("in_progress", None), ("completed", Some("failure"))],
    )
    .await;

    let (finish, _) = execute_collect(&spec(&server), None, CancellationToken::new()).await;

    assert_eq!(
        finish,
        Finish::Failed {
            reason: format!(
                "GitHub Actions run #562 ended with conclusion \"failure\": {HTML_URL}"
            )
        }
    );
}

#[tokio::test]
async fn resuming_from_a_checkpoint_polls_without_dispatching() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .expect(0)
        .mount(&server)
        .await;
    mount_run_statuses(
        &server,
        vec![("in_progress", None), ("completed", Some("cancelled"))],
    )
    .await;
    let checkpoint = json!({ "run_id": 30433642, "dispatched_at": chrono::Utc::now().timestamp() });

    let (finish, events) =
        execute_collect(&spec(&server), Some(checkpoint), CancellationToken::new()).await;

    assert_eq!(
        finish,
        Finish::Failed {
            reason: format!(
                "GitHub Actions run #562 ended with conclusion \"cancelled\": {HTML_URL}"
            )
        }
    );
    assert!(events.contains(&BackendEvent::Link {
        label: "GitHub Actions run".into(),
        url: HTML_URL.into()
    }));
}

#[tokio::test]
async fn a_restart_during_the_dispatch_looks_for_the_run_instead_of_dispatching_again() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .expect(0)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(RUNS))
        .respond_with(ResponseTemplate::new(200).set_body_json(run_list(vec![run(
            "deploy 42",
            "queued",
            None,
        )])))
        .mount(&server)
        .await;
    mount_run_statuses(&server, vec![("completed", Some("success"))]).await;
    let checkpoint = json!({ "dispatched_at": chrono::Utc::now().timestamp() });

    let (finish, _) =
        execute_collect(&spec(&server), Some(checkpoint), CancellationToken::new()).await;

    assert!(matches!(finish, Finish::Succeeded { .. }), "{finish:?}");
}

async fn dispatch_answer(response: ResponseTemplate) -> String {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(DISPATCH))
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;
    match execute_collect(&spec(&server), None, CancellationToken::new())
        .await
        .0
    {
        Finish::Failed { reason } => reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_rejected_token_points_at_the_config() {
    let reason = dispatch_answer(ResponseTemplate::new(401).set_body_json(json!({
        "message": "Bad credentials",
        "documentation_url": "https://docs.github.com/rest",
        "status": "401"
    })))
    .await;
    assert_eq!(
        reason,
        "GitHub rejected the token: check [[services]] backend token (expired, revoked or mistyped?)"
    );
    assert!(!reason.contains("ghp_test_token"));
}

#[tokio::test]
async fn an_unknown_repository_or_workflow_names_both() {
    let reason = dispatch_answer(ResponseTemplate::new(404).set_body_json(json!({
        "message": "Not Found",
        "documentation_url": "https://docs.github.com/rest/actions/workflows#create-a-workflow-dispatch-event",
        "status": "404"
    })))
    .await;
    assert_eq!(
        reason,
        "repository or workflow not found, or the token cannot see it: acme/api deploy.yml"
    );
}

#[tokio::test]
async fn an_unprocessable_dispatch_gives_githubs_message() {
    let reason = dispatch_answer(ResponseTemplate::new(422).set_body_json(json!({
        "message": "Workflow does not have 'workflow_dispatch' trigger",
        "documentation_url": "https://docs.github.com/rest/actions/workflows#create-a-workflow-dispatch-event",
        "status": "422"
    })))
    .await;
    assert_eq!(
        reason,
        "GitHub refused to start deploy.yml in acme/api on main: Workflow does not have 'workflow_dispatch' trigger"
    );
}

#[tokio::test]
async fn a_used_up_rate_limit_says_when_it_resets() {
    let reset = chrono::Utc::now().timestamp() + 600;
    let reason = dispatch_answer(
        ResponseTemplate::new(403)
            .insert_header("x-ratelimit-limit", "5000")
            .insert_header("x-ratelimit-remaining", "0")
            .insert_header("x-ratelimit-reset", reset.to_string().as_str())
            .set_body_json(json!({
                "message": "API rate limit exceeded for user ID 1.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
            })),
    )
    .await;
    let at = chrono::DateTime::from_timestamp(reset, 0)
        .expect("valid")
        .format("%H:%M:%S UTC")
        .to_string();
    assert!(
        reason.starts_with(&format!(
            "GitHub's API rate limit for this token is used up; it resets at {at} (in "
        )),
        "{reason}"
    );
}

#[tokio::test]
async fn an_unreachable_github_is_a_clear_failure() {
    let server = MockServer::start().await;
    let mut spec = spec(&server);
    spec.api_base = "http://127.0.0.1:9".into(); // discard port: nothing listens
    drop(server);
    let Finish::Failed { reason } = execute_collect(&spec, None, CancellationToken::new())
        .await
        .0
    else {
        panic!("should fail")
    };
    assert!(
        reason.starts_with("could not reach GitHub at http://127.0.0.1:9: client error (Connect)"),
        "{reason}"
    );
    assert!(
        !reason.contains("may still have started"),
        "nothing was sent: {reason}"
    );
}

#[tokio::test]
async fn a_workflow_without_the_deploy_id_in_its_run_name_is_explained() {
    let server = MockServer::start().await;
    mount_dispatch(&server).await;
    Mock::given(method("GET"))
        .and(path(RUNS))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(run_list(vec![run("Deploy", "queued", None)])),
        )
        .mount(&server)
        .await;
    let mut spec = spec(&server);
    spec.timeout = Duration::from_millis(200); // the lookup gives up with the overall timeout

    let Finish::Failed { reason } = execute_collect(&spec, None, CancellationToken::new())
        .await
        .0
    else {
        panic!("should fail")
    };
    assert!(reason.contains("found no run for deploy 42"), "{reason}");
    assert!(
        reason.contains("run-name: deploy ${{ inputs.deploy_id }}"),
        "{reason}"
    );
}

#[tokio::test]
async fn server_errors_while_polling_are_ridden_out() {
    let server = MockServer::start().await;
    let calls = std::sync::atomic::AtomicUsize::new(0);
    Mock::given(method("GET"))
        .and(path(RUN))
        .respond_with(move |_: &Request| {
            match calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => {
                    ResponseTemplate::new(200).set_body_json(run("deploy 42", "in_progress", None))
                }
                1 | 2 => ResponseTemplate::new(502).set_body_string("<html>Bad gateway</html>"),
                _ => ResponseTemplate::new(200).set_body_json(run(
                    "deploy 42",
                    "completed",
                    Some("success"),
                )),
            }
        })
        .mount(&server)
        .await;

    let (finish, events) = execute_collect(
        &spec(&server),
        Some(json!({ "run_id": 30433642 })),
        CancellationToken::new(),
    )
    .await;

    assert!(matches!(finish, Finish::Succeeded { .. }), "{finish:?}");
    let progress = progress(&events);
    assert!(
        progress.contains(&"GitHub answered 502: <html>Bad gateway</html>; still trying"),
        "{progress:?}"
    );
    assert!(progress.contains(&"GitHub answers again"), "{progress:?}");
}

#[tokio::test]
async fn cancel_interrupts_between_polls() {
    let server = MockServer::start().await;
    mount_run_statuses(&server, vec![("in_progress", None)]).await;
    let cancel = CancellationToken::new();
    let mut spec = spec(&server);
    spec.poll_interval = Duration::from_secs(3600);
    spec.timeout = Duration::from_secs(7200);
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        trigger.cancel();
    });

    let (finish, _) = execute_collect(&spec, Some(json!({ "run_id": 30433642 })), cancel).await;

    assert_eq!(finish, Finish::Interrupted);
}

#[tokio::test]
async fn a_server_error_on_the_dispatch_is_not_retried_and_says_what_to_check() {
    let reason = dispatch_answer(
        ResponseTemplate::new(502).set_body_string("<html>\n<h1>502 Bad Gateway</h1></html>"),
    )
    .await;
    assert_eq!(
        reason,
        "GitHub answered 502: <html> <h1>502 Bad Gateway</h1></html> — the dispatch may still have started a run: \
         check the Actions tab of acme/api before deploying again"
    );
}

#[test]
fn the_deploy_id_must_be_a_word_of_the_title() {
    let with = |title: &str| WorkflowRun {
        id: 1,
        name: Some("Deploy".into()),
        display_title: Some(title.into()),
        run_number: None,
        status: None,
        conclusion: None,
        html_url: String::new(),
        created_at: None,
    };
    assert!(with("deploy 42 api v1 to staging").is_for(42));
    assert!(with("Deploy #42: api").is_for(42));
    assert!(!with("deploy 420 api").is_for(42));
    assert!(!with("deploy 7 api v42.1").is_for(42));
}

#[tokio::test]
async fn a_malformed_repo_fails_before_any_request() {
    let server = MockServer::start().await;
    let mut spec = spec(&server);
    spec.repo = "acme".into();
    let (finish, _) = execute_collect(&spec, None, CancellationToken::new()).await;
    assert_eq!(
        finish,
        Finish::Failed {
            reason: "invalid repo \"acme\": expected \"owner/name\"".into()
        }
    );
}
