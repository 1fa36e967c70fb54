//! Rules that once survived a one-line mutation: each test here fails when its rule breaks
//! (issue 14). A quorum counts distinct approvers; a lock needs its permission.

use super::*;

fn catalog_with_quorum(approvals: u32) -> DeployCatalog {
    let mut catalog = catalog("/bin/true", vec![]);
    catalog
        .environments
        .get_mut("production")
        .expect("production")
        .approvals = approvals;
    catalog
}

async fn state_of(pool: &PgPool, id: i64) -> String {
    sqlx::query_scalar("SELECT state FROM deploys WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("state")
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn a_quorum_of_two_needs_two_different_approvers(pool: PgPool) {
    let desk = desk(&pool, catalog_with_quorum(2));
    let deploy = desk
        .deploy_run(
            &inv(1, "ana", &["lead"], "deploy run"),
            request("v2.0.0", "production"),
        )
        .await
        .expect("run")
        .deploy;
    assert_eq!(deploy.approvals_required, 2);

    let first = desk
        .deploy_decide(
            &inv(3, "cy", &["ops"], "deploy approve"),
            &press(&deploy, true),
        )
        .await
        .expect("cy approves");
    assert_eq!(first.deploy.state, DeployState::Requested, "1 of 2");
    assert_eq!(first.deploy.approved_by, ["cy"]);
    assert_eq!(
        first.message.buttons.len(),
        2,
        "still waiting: Approve and Reject stay"
    );

    let twice = desk
        .deploy_decide(
            &inv(3, "cy", &["ops"], "deploy approve"),
            &press(&deploy, true),
        )
        .await
        .expect_err("the same approver again");
    assert!(matches!(twice, CommandError::Conflict(_)), "{twice:?}");
    assert!(twice.to_string().contains("already decided"), "{twice}");
    assert_eq!(state_of(&pool, deploy.id).await, "requested");

    let second = desk
        .deploy_decide(
            &inv(4, "di", &["ops"], "deploy approve"),
            &press(&deploy, true),
        )
        .await
        .expect("di approves");
    assert_eq!(second.deploy.state, DeployState::Approved, "2 of 2");
    assert_eq!(second.deploy.approved_by, ["cy", "di"]);
    assert_eq!(
        outcomes(&pool).await,
        [
            "ana deploy run requested",
            "cy deploy approve approved",
            "cy deploy approve conflict",
            "di deploy approve approved",
        ]
    );
    // The request and the quorum are announced; the first approval alone is not.
    assert_eq!(
        outbox_texts(&pool, ANNOUNCE).await,
        [
            "📝 deploy #1 api v2.0.0 → production **requested** (by ana)",
            "👍 deploy #1 api v2.0.0 → production **approved** (by di)",
        ]
    );
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn a_lock_without_its_permission_is_denied_audited_and_changes_nothing(pool: PgPool) {
    let desk = desk(&pool, catalog("/bin/true", vec![]));
    let denied = desk
        .deploy_lock(
            &inv(2, "bo", &["dev"], "deploy lock"),
            "api",
            "production",
            "my lock",
            Some("1h"),
        )
        .await
        .expect_err("dev cannot lock production");
    assert!(matches!(denied, CommandError::Denied { .. }), "{denied:?}");
    assert_eq!(
        denied.to_string(),
        "you need the `deploy:lock:production` permission to lock deploys to production"
    );
    let locks: i64 = sqlx::query_scalar("SELECT count(*) FROM deploy_locks")
        .fetch_one(&pool)
        .await
        .expect("locks");
    assert_eq!(locks, 0, "nothing was locked");
    assert_eq!(outcomes(&pool).await, ["bo deploy lock denied"]);
    // The environment's deploys still run.
    desk.deploy_run(
        &inv(3, "cy", &["ops"], "deploy run"),
        request("v3", "production"),
    )
    .await
    .expect("not locked");
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn only_a_deploy_that_waits_for_approval_has_an_approval_deadline(pool: PgPool) {
    let desk = desk(&pool, catalog("/bin/true", vec![]));
    let staging = desk
        .deploy_run(
            &inv(1, "ana", &["lead", "dev"], "deploy run"),
            request("v1", "staging"),
        )
        .await
        .expect("staging")
        .deploy;
    assert_eq!(staging.approvals_required, 0);
    assert_eq!(staging.approval_expires_at, None, "nothing to wait for");
    let production = desk
        .deploy_run(
            &inv(1, "ana", &["lead"], "deploy run"),
            request("v1", "production"),
        )
        .await
        .expect("production")
        .deploy;
    let expires = production.approval_expires_at.expect("a deadline");
    let left = expires - chrono::Utc::now();
    assert!(
        left > chrono::Duration::minutes(29) && left <= chrono::Duration::minutes(30),
        "the catalog's 30 minutes: {left}"
    );
}
