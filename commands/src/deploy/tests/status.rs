//! `/deploy status` stays bounded however many deploys wait or however long the history is.

use super::*;

fn many_services(count: usize) -> DeployCatalog {
    let mut catalog = catalog("/bin/true", vec![]);
    let spec = catalog.services["api"].clone();
    catalog.services = (0..count)
        .map(|i| {
            let name = format!("svc-{i:02}");
            let mut service = spec.clone();
            service.name = name.clone();
            service.environments = vec!["staging".into()];
            (name, service)
        })
        .collect();
    catalog
}

async fn run(desk: &Desk, service: &str, version: &str) -> Deploy {
    let mut request = request(version, "staging");
    request.service = service.to_owned();
    desk.deploy_run(&inv(1, "ana", &["dev"], "deploy run"), request)
        .await
        .expect("run")
        .deploy
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn status_shows_at_most_twenty_five_deploys_and_counts_the_rest(pool: PgPool) {
    let desk = desk(&pool, many_services(30));
    for i in 0..30 {
        run(&desk, &format!("svc-{i:02}"), "v1").await;
    }
    let status = inv(2, "bo", &[], "deploy status");
    let report = desk.deploy_status(&status, None).await.expect("status");
    assert_eq!(report.deploys.len(), 25);
    assert_eq!(report.more_active, 5);
    // The newest 25 waiting deploys, sorted by service.
    let services: Vec<&str> = report.deploys.iter().map(|d| d.service.as_str()).collect();
    let expected: Vec<String> = (5..30).map(|i| format!("svc-{i:02}")).collect();
    assert_eq!(services, expected);

    let one = desk
        .deploy_status(&status, Some("svc-01"))
        .await
        .expect("one service");
    assert_eq!(one.deploys.len(), 1);
    assert_eq!(one.more_active, 0);
    assert!(!one.more_finished);
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn status_shows_the_latest_finished_deploy_of_each_service(pool: PgPool) {
    let desk = desk(&pool, many_services(3));
    for version in ["v1", "v2", "v3"] {
        let deploy = run(&desk, "svc-00", version).await;
        sqlx::query("UPDATE deploys SET state = 'succeeded', finished_at = now() WHERE id = $1")
            .bind(deploy.id)
            .execute(&pool)
            .await
            .expect("finish");
    }
    let failed = run(&desk, "svc-01", "v7").await;
    sqlx::query("UPDATE deploys SET state = 'failed', finished_at = now() WHERE id = $1")
        .bind(failed.id)
        .execute(&pool)
        .await
        .expect("fail");
    let waiting = run(&desk, "svc-00", "v4").await;
    let report = desk
        .deploy_status(&inv(2, "bo", &[], "deploy status"), None)
        .await
        .expect("status");
    let shown: Vec<(&str, &str)> = report
        .deploys
        .iter()
        .map(|d| (d.service.as_str(), d.version.as_str()))
        .collect();
    // svc-00: the waiting v4 first, then its latest finished (v3); svc-01's failed v7;
    // svc-02 has no deploys.
    assert_eq!(
        shown,
        [("svc-00", "v4"), ("svc-00", "v3"), ("svc-01", "v7")]
    );
    assert_eq!(report.deploys[0].id, waiting.id);
    assert_eq!((report.more_active, report.more_finished), (0, false));
}
