//! Deploy policy and state against real Postgres: approvals, locks, freezes, one at a time,
//! rollback, expiry, and the tracker running real command backends.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;

use super::backends::BackendSpec;
use super::backends::command::CommandSpec;
use super::freeze::FreezeWindow;
use super::view::{ButtonBinding, binding_hash};
use super::*;
use crate::access::RoleMap;
use crate::audit::tail;
use crate::{Actor, CommandError, Desk, Invocation, Source};

mod rules;
mod status;

const ANNOUNCE: i64 = 4242;

fn script(body: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deploy.sh");
    std::fs::write(&path, format!("#!/usr/bin/env bash\nset -e\n{body}\n")).expect("write script");
    let mut perms = std::fs::metadata(&path).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).expect("chmod");
    (dir, path.display().to_string())
}

fn catalog(program: &str, freeze: Vec<FreezeWindow>) -> DeployCatalog {
    let backend = BackendSpec::Command(CommandSpec {
        program: program.to_owned(),
        args: vec![
            "{service}".into(),
            "{version}".into(),
            "{environment}".into(),
        ],
        timeout: Duration::from_secs(30),
        workdir: None,
    });
    DeployCatalog {
        services: BTreeMap::from([(
            "api".to_owned(),
            ServiceSpec {
                name: "api".into(),
                environments: vec!["staging".into(), "production".into()],
                backend,
            },
        )]),
        environments: BTreeMap::from([(
            "production".to_owned(),
            EnvironmentPolicy {
                approvals: 1,
                freeze,
            },
        )]),
        approval_timeout: Duration::from_secs(1800),
        announce_channel: Some(ANNOUNCE),
        public_url: None,
    }
}

fn desk(pool: &PgPool, catalog: DeployCatalog) -> Desk {
    let roles = RoleMap::new(BTreeMap::from([
        ("ops".to_owned(), vec!["deploy:*".to_owned()]),
        ("dev".to_owned(), vec!["deploy:staging".to_owned()]),
        (
            "lead".to_owned(),
            vec![
                "deploy:production".to_owned(),
                "deploy:approve:production".to_owned(),
                "deploy:lock:production".to_owned(),
            ],
        ),
    ]))
    .expect("roles");
    Desk::new(pool.clone(), roles).with_deploys(catalog)
}

fn inv(id: i64, name: &str, roles: &[&str], command: &str) -> Invocation {
    Invocation::new(
        Actor {
            id,
            name: name.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            source: Source::Discord,
        },
        command,
        json!({}),
    )
}

fn request(version: &str, env: &str) -> DeployRequest {
    DeployRequest {
        service: "api".into(),
        version: version.into(),
        environment: env.into(),
        reason: "ship it".into(),
        override_freeze: false,
    }
}

fn press(deploy: &Deploy, approve: bool) -> ButtonBinding {
    ButtonBinding {
        approve,
        deploy_id: deploy.id,
        hash: binding_hash(deploy),
    }
}

async fn outcomes(pool: &PgPool) -> Vec<String> {
    tail(pool, 50)
        .await
        .expect("tail")
        .into_iter()
        .map(|e| format!("{} {} {}", e.actor_name, e.command, e.outcome))
        .collect()
}

/// The content of each post queued for `channel`, as CommonMark.
async fn outbox_texts(pool: &PgPool, channel: i64) -> Vec<String> {
    sqlx::query_scalar::<_, serde_json::Value>(
        "SELECT payload FROM outbox WHERE channel_id = $1 AND edit_message_id IS NULL ORDER BY id",
    )
    .bind(channel)
    .fetch_all(pool)
    .await
    .expect("outbox")
    .into_iter()
    .map(|payload| {
        serde_json::from_value::<crate::chat::Message>(payload)
            .expect("a message")
            .content
            .markdown()
    })
    .collect()
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn staging_needs_no_approval_and_everything_is_recorded(pool: PgPool) {
    let desk = desk(&pool, catalog("/bin/true", vec![]));
    let outcome = desk
        .deploy_run(
            &inv(1, "ana", &["dev"], "deploy run"),
            request("v1.0.0", "staging"),
        )
        .await
        .expect("run");
    assert_eq!(outcome.deploy.state, DeployState::Approved);
    assert!(outcome.message.buttons.is_empty());
    assert_eq!(
        outcome.message.embeds[0].description.markdown(),
        "**starting** (no approval needed)",
        "nobody approved it: it is not announced as approved"
    );
    let mut running = outcome.deploy.clone();
    running.state = DeployState::Running;
    assert_eq!(
        super::view::status_message(&running, desk.deploys()).embeds[0]
            .description
            .markdown(),
        "**running**: /bin/true",
        "the backend in words, not its kind"
    );
    assert_eq!(
        outcomes(&pool).await,
        ["ana deploy run requested", "opsbot deploy run approved"]
    );
    let events = tail(&pool, 2).await.expect("tail");
    assert!(
        events
            .iter()
            .all(|e| e.correlation_id == Some(outcome.deploy.correlation_id))
    );
    assert_eq!(
        outbox_texts(&pool, ANNOUNCE).await,
        ["▶️ deploy #1 api v1.0.0 → staging **starting** (by ana)"]
    );
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn production_needs_another_approver(pool: PgPool) {
    let desk = desk(&pool, catalog("/bin/true", vec![]));
    let denied = desk
        .deploy_run(
            &inv(2, "bo", &["dev"], "deploy run"),
            request("v1.0.0", "production"),
        )
        .await
        .expect_err("dev cannot");
    assert_eq!(
        denied.to_string(),
        "you need the `deploy:production` permission to deploy to production"
    );

    let outcome = desk
        .deploy_run(
            &inv(1, "ana", &["lead"], "deploy run"),
            request("v1.0.0", "production"),
        )
        .await
        .expect("run");
    let deploy = outcome.deploy;
    assert_eq!(deploy.state, DeployState::Requested);
    let labels: Vec<&str> = outcome
        .message
        .buttons
        .iter()
        .map(|b| b.label.as_str())
        .collect();
    assert_eq!(labels, ["Approve", "Reject"]);

    let own = desk
        .deploy_decide(
            &inv(1, "ana", &["lead"], "deploy approve"),
            &press(&deploy, true),
        )
        .await
        .expect_err("self-approval");
    assert!(matches!(own, CommandError::Forbidden(_)), "{own:?}");
    let no_right = desk
        .deploy_decide(
            &inv(2, "bo", &["dev"], "deploy approve"),
            &press(&deploy, true),
        )
        .await
        .expect_err("bo lacks it");
    assert!(no_right.to_string().contains("deploy:approve:production"));
    let mut stale = press(&deploy, true);
    stale.hash = "0000000000000000".into();
    let mismatch = desk
        .deploy_decide(&inv(3, "cy", &["ops"], "deploy approve"), &stale)
        .await
        .expect_err("binding");
    assert!(matches!(mismatch, CommandError::Invalid(_)), "{mismatch:?}");

    let approved = desk
        .deploy_decide(
            &inv(3, "cy", &["ops"], "deploy approve"),
            &press(&deploy, true),
        )
        .await
        .expect("cy approves");
    assert_eq!(approved.deploy.state, DeployState::Approved);
    assert_eq!(approved.deploy.approved_by, ["cy"]);
    assert!(approved.message.buttons.is_empty());
    let again = desk
        .deploy_decide(
            &inv(4, "di", &["ops"], "deploy approve"),
            &press(&deploy, true),
        )
        .await
        .expect_err("too late");
    assert!(again.to_string().contains("already approved"), "{again}");
    assert_eq!(
        outcomes(&pool).await,
        [
            "bo deploy run denied",
            "ana deploy run requested",
            "ana deploy approve denied",
            "bo deploy approve denied",
            "cy deploy approve invalid",
            "cy deploy approve approved",
            "di deploy approve conflict",
        ]
    );
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn a_rejection_ends_the_request(pool: PgPool) {
    let desk = desk(&pool, catalog("/bin/true", vec![]));
    let deploy = desk
        .deploy_run(
            &inv(1, "ana", &["lead"], "deploy run"),
            request("v2", "production"),
        )
        .await
        .expect("run")
        .deploy;
    let rejected = desk
        .deploy_decide(
            &inv(3, "cy", &["ops"], "deploy reject"),
            &press(&deploy, false),
        )
        .await
        .expect("reject");
    assert_eq!(rejected.deploy.state, DeployState::Rejected);
    assert!(
        outbox_texts(&pool, ANNOUNCE)
            .await
            .last()
            .expect("announced")
            .contains("**rejected**")
    );
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn one_deploy_at_a_time_per_service_and_environment(pool: PgPool) {
    let desk = desk(&pool, catalog("/bin/true", vec![]));
    let mut attempts = Vec::new();
    for i in 0..6 {
        let desk = desk.clone();
        attempts.push(tokio::spawn(async move {
            desk.deploy_run(
                &inv(10 + i, &format!("user{i}"), &["ops"], "deploy run"),
                request(&format!("v{i}"), "production"),
            )
            .await
        }));
    }
    let mut ok = 0;
    let mut conflicts = Vec::new();
    for attempt in attempts {
        match attempt.await.expect("task") {
            Ok(_) => ok += 1,
            Err(CommandError::Conflict(text)) => conflicts.push(text),
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(conflicts.len(), 5);
    assert!(
        conflicts
            .iter()
            .all(|c| c.contains("deploy #") && c.contains("one deploy at a time")),
        "{conflicts:?}"
    );
    // Another environment is independent.
    desk.deploy_run(
        &inv(1, "ana", &["ops"], "deploy run"),
        request("v9", "staging"),
    )
    .await
    .expect("staging");
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn locks_refuse_deploys_and_say_whose_they_were(pool: PgPool) {
    let desk = desk(&pool, catalog("/bin/true", vec![]));
    let lead = inv(1, "ana", &["lead"], "deploy lock");
    desk.deploy_lock(&lead, "api", "production", "db migration", Some("2h"))
        .await
        .expect("lock");
    let bad = desk
        .deploy_lock(&lead, "api", "production", "again", Some("soon"))
        .await
        .expect_err("bad duration");
    assert!(bad.to_string().contains("not a duration"), "{bad}");
    let taken = desk
        .deploy_lock(
            &inv(3, "cy", &["ops"], "deploy lock"),
            "api",
            "production",
            "mine",
            None,
        )
        .await
        .expect_err("held");
    assert!(
        taken
            .to_string()
            .contains("already locked in production by ana"),
        "{taken}"
    );
    let refused = desk
        .deploy_run(
            &inv(3, "cy", &["ops"], "deploy run"),
            request("v3", "production"),
        )
        .await
        .expect_err("locked");
    assert!(
        refused
            .to_string()
            .starts_with("api is locked in production by ana until "),
        "{refused}"
    );
    assert!(refused.to_string().contains("db migration"));
    let dev = desk
        .deploy_unlock(
            &inv(2, "bo", &["dev"], "deploy unlock"),
            "api",
            "production",
        )
        .await
        .expect_err("dev cannot");
    assert!(dev.to_string().contains("deploy:lock:production"));
    let lifted = desk
        .deploy_unlock(
            &inv(3, "cy", &["ops"], "deploy unlock"),
            "api",
            "production",
        )
        .await
        .expect("cy lifts ana's lock");
    assert_eq!(lifted.lock.locked_by_name, "ana");
    let none = desk
        .deploy_unlock(
            &inv(3, "cy", &["ops"], "deploy unlock"),
            "api",
            "production",
        )
        .await
        .expect_err("not locked");
    assert_eq!(none.to_string(), "api is not locked in production");
    desk.deploy_run(
        &inv(3, "cy", &["ops"], "deploy run"),
        request("v3", "production"),
    )
    .await
    .expect("unlocked");
}

fn window_around_now() -> FreezeWindow {
    let now = chrono::Utc::now();
    let text = format!(
        "{} - {} UTC",
        (now - chrono::Duration::hours(1)).format("%Y-%m-%d %H:%M"),
        (now + chrono::Duration::hours(1)).format("%Y-%m-%d %H:%M")
    );
    FreezeWindow::parse(&text).expect("window")
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn freeze_windows_refuse_unless_overridden_by_someone_allowed(pool: PgPool) {
    let desk = desk(&pool, catalog("/bin/true", vec![window_around_now()]));
    let frozen = desk
        .deploy_run(
            &inv(1, "ana", &["lead"], "deploy run"),
            request("v1", "production"),
        )
        .await
        .expect_err("frozen");
    assert!(
        frozen.to_string().starts_with("production is frozen ("),
        "{frozen}"
    );
    assert!(frozen.to_string().contains("override:true"));
    assert_eq!(
        outcomes(&pool).await,
        ["ana deploy run refused"],
        "a freeze refuses by rule: not `conflict`"
    );
    let mut forced = request("v1", "production");
    forced.override_freeze = true;
    let not_allowed = desk
        .deploy_run(&inv(1, "ana", &["lead"], "deploy run"), forced.clone())
        .await
        .expect_err("lead cannot override");
    assert!(not_allowed.to_string().contains("deploy:override"));
    let overridden = desk
        .deploy_run(&inv(3, "cy", &["ops"], "deploy run"), forced)
        .await
        .expect("ops overrides");
    assert!(overridden.deploy.freeze_overridden);
    assert!(outbox_texts(&pool, ANNOUNCE).await[0].starts_with("🚨 **FREEZE OVERRIDDEN** by cy"));
    // Staging has no freeze.
    desk.deploy_run(
        &inv(2, "bo", &["dev"], "deploy run"),
        request("v1", "staging"),
    )
    .await
    .expect("staging");
}

async fn finish_as(pool: &PgPool, id: i64, state: &str) {
    sqlx::query("UPDATE deploys SET state = $2 WHERE id = $1")
        .bind(id)
        .bind(state)
        .execute(pool)
        .await
        .expect("state");
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn rollback_goes_to_the_previous_succeeded_version(pool: PgPool) {
    let desk = desk(&pool, catalog("/bin/true", vec![]));
    let ops = inv(3, "cy", &["ops"], "rollback");
    let none = desk
        .rollback(&ops, "api", "staging", None)
        .await
        .expect_err("nothing yet");
    assert!(none.to_string().contains("nothing to roll back"), "{none}");
    for (version, state) in [("v1", "succeeded"), ("v2", "failed"), ("v3", "succeeded")] {
        let d = desk
            .deploy_run(
                &inv(3, "cy", &["ops"], "deploy run"),
                request(version, "staging"),
            )
            .await
            .expect("run")
            .deploy;
        finish_as(&pool, d.id, state).await;
    }
    let rollback = desk
        .rollback(&ops, "api", "staging", None)
        .await
        .expect("rollback");
    assert_eq!(rollback.deploy.version, "v1");
    assert!(rollback.deploy.is_rollback);
    assert_eq!(rollback.deploy.rollback_of, Some(3));
    assert!(
        rollback.message.embeds[0]
            .title
            .starts_with("rollback #4 api v1")
    );
    finish_as(&pool, rollback.deploy.id, "cancelled").await;
    let chosen = desk
        .rollback(&ops, "api", "staging", Some("v0.9".into()))
        .await
        .expect("to");
    assert_eq!(chosen.deploy.version, "v0.9");
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn unknown_names_are_invalid_and_list_what_exists(pool: PgPool) {
    let desk = desk(&pool, catalog("/bin/true", vec![]));
    let ops = inv(3, "cy", &["ops"], "deploy run");
    let mut r = request("v1", "staging");
    r.service = "apii".into();
    assert_eq!(
        desk.deploy_run(&ops, r)
            .await
            .expect_err("service")
            .to_string(),
        "unknown service \"apii\"; known services: api"
    );
    assert_eq!(
        desk.deploy_run(&ops, request("v1", "prod"))
            .await
            .expect_err("env")
            .to_string(),
        "api does not deploy to \"prod\"; its environments: staging, production"
    );
    assert!(
        desk.deploy_run(&ops, request("v1 with spaces", "staging"))
            .await
            .expect_err("version")
            .to_string()
            .starts_with("version \"v1 with spaces\" is not valid")
    );
    assert_eq!(
        outcomes(&pool).await,
        [
            "cy deploy run invalid",
            "cy deploy run invalid",
            "cy deploy run invalid"
        ]
    );
}

async fn wait_for(pool: &PgPool, id: i64, state: DeployState) -> Deploy {
    for _ in 0..300 {
        let d = deploy_by_id(pool, id).await.expect("read").expect("exists");
        if d.state == state {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("deploy {id} never reached {state}");
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn the_tracker_runs_the_backend_to_success_or_failure(pool: PgPool) {
    let (_dir, program) = script(
        "echo \"deploying $1 $2 to $3\"\nif [[ \"$2\" == *bad* ]]; then echo 'it broke' >&2; exit 3; fi\necho done",
    );
    let desk = desk(&pool, catalog(&program, vec![]));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let tracker = tokio::spawn(tracker::run(desk.clone(), shutdown.clone()));
    let ops = inv(3, "cy", &["ops"], "deploy run");
    let good = desk
        .deploy_run(&ops, request("v1.0.0", "staging"))
        .await
        .expect("run")
        .deploy;
    let good = wait_for(&pool, good.id, DeployState::Succeeded).await;
    assert!(good.detail.contains("done"), "{}", good.detail);
    let bad = desk
        .deploy_run(&ops, request("v1.0.1-bad", "staging"))
        .await
        .expect("run")
        .deploy;
    let bad = wait_for(&pool, bad.id, DeployState::Failed).await;
    assert!(bad.detail.contains("it broke"), "{}", bad.detail);
    shutdown.cancel();
    tracker.await.expect("tracker");
    let story: Vec<String> = tail(&pool, 20)
        .await
        .expect("tail")
        .into_iter()
        .filter(|e| e.correlation_id == Some(good.correlation_id))
        .map(|e| format!("{} {}", e.actor_name, e.outcome))
        .collect();
    assert_eq!(
        story,
        [
            "cy requested",
            "opsbot approved",
            "opsbot started",
            "opsbot succeeded"
        ]
    );
    let announced = outbox_texts(&pool, ANNOUNCE).await;
    assert!(
        announced
            .iter()
            .any(|t| t.starts_with("✅ deploy #1 api v1.0.0 → staging **succeeded**")),
        "{announced:?}"
    );
    assert!(
        announced
            .iter()
            .any(|t| t.starts_with("❌ deploy #2 api v1.0.1-bad → staging **failed**")),
        "{announced:?}"
    );
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn approvals_expire(pool: PgPool) {
    let desk = desk(&pool, catalog("/bin/true", vec![]));
    let deploy = desk
        .deploy_run(
            &inv(1, "ana", &["lead"], "deploy run"),
            request("v1", "production"),
        )
        .await
        .expect("run")
        .deploy;
    sqlx::query(
        "UPDATE deploys SET approval_expires_at = now() - interval '1 second' WHERE id = $1",
    )
    .bind(deploy.id)
    .execute(&pool)
    .await
    .expect("age");
    let late = desk
        .deploy_decide(
            &inv(3, "cy", &["ops"], "deploy approve"),
            &press(&deploy, true),
        )
        .await
        .expect_err("closed");
    assert!(late.to_string().contains("approval window"), "{late}");
    let shutdown = tokio_util::sync::CancellationToken::new();
    tracker::tick(&desk, &tokio_util::task::TaskTracker::new(), &shutdown)
        .await
        .expect("tick");
    assert_eq!(
        wait_for(&pool, deploy.id, DeployState::Expired).await.state,
        DeployState::Expired
    );
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn a_restart_while_running_resumes_tracking(pool: PgPool) {
    let (_dir, program) = script("echo step; sleep 0.3; echo done");
    let desk = desk(&pool, catalog(&program, vec![]));
    let deploy = desk
        .deploy_run(
            &inv(3, "cy", &["ops"], "deploy run"),
            request("v7", "staging"),
        )
        .await
        .expect("run")
        .deploy;
    // A replica started it and died holding the lease: state running, lease lapsed, a checkpoint.
    sqlx::query("UPDATE deploys SET state = 'running', started_at = now(), tracked_until = now() - interval '1 second', checkpoint = '{\"pid\": 1}' WHERE id = $1")
        .bind(deploy.id)
        .execute(&pool)
        .await
        .expect("simulate");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let tracker = tokio::spawn(tracker::run(desk.clone(), shutdown.clone()));
    // A command cannot outlive opsbot: its outcome is unknown, and the deploy says so.
    let failed = wait_for(&pool, deploy.id, DeployState::Failed).await;
    assert!(failed.detail.contains("restarted"), "{}", failed.detail);
    shutdown.cancel();
    tracker.await.expect("tracker");
}
