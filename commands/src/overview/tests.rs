//! The overview on a fixture history with known answers: deploys, incidents, denials and
//! alerts at fixed times, read at a fixed `now`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::*;
use crate::access::RoleMap;
use crate::actor::{Actor, Source};

/// The fixture is read at noon on 2026-12-01: a 7-day window is 2026-11-25 to now, the
/// previous one 2026-11-18 to 2026-11-25.
const NOW: &str = "2026-12-01T12:00:00Z";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("a fixture time")
        .with_timezone(&Utc)
}

fn desk(pool: &PgPool) -> Desk {
    let roles = RoleMap::new(
        [("ops".to_owned(), vec!["audit:read".to_owned()])]
            .into_iter()
            .collect(),
    )
    .expect("roles");
    Desk::new(pool.clone(), roles)
}

fn reader() -> Invocation {
    Invocation::new(
        Actor {
            id: 1,
            name: "ana".to_owned(),
            roles: vec!["ops".to_owned()],
            source: Source::Web,
        },
        "overview api",
        serde_json::json!({ "window": "7" }),
    )
}

/// One deploy row: `(service, environment, state, requested, finished, rollback, override)`.
struct Fixture<'a> {
    service: &'a str,
    environment: &'a str,
    state: &'a str,
    requested: &'a str,
    finished: Option<&'a str>,
    is_rollback: bool,
    rollback_of: Option<i64>,
    overridden: bool,
}

async fn deploy(pool: &PgPool, d: Fixture<'_>) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO deploys (correlation_id, service, environment, version, state, is_rollback,
                              rollback_of, freeze_overridden, requested_by_id, requested_by_name,
                              requested_at, started_at, finished_at, backend)
         VALUES (gen_random_uuid(), $1, $2, 'v', $3, $4, $5, $6, 7, 'ana', $7, $7, $8, 'command')
         RETURNING id",
    )
    .bind(d.service)
    .bind(d.environment)
    .bind(d.state)
    .bind(d.is_rollback)
    .bind(d.rollback_of)
    .bind(d.overridden)
    .bind(at(d.requested))
    .bind(d.finished.map(at))
    .fetch_one(pool)
    .await
    .expect("insert a deploy")
}

fn done<'a>(
    service: &'a str,
    state: &'a str,
    requested: &'a str,
    finished: &'a str,
) -> Fixture<'a> {
    Fixture {
        service,
        environment: if service == "api" {
            "production"
        } else {
            "staging"
        },
        state,
        requested,
        finished: Some(finished),
        is_rollback: false,
        rollback_of: None,
        overridden: false,
    }
}

async fn incident(pool: &PgPool, services: &[&str], started: &str, resolved: Option<&str>) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO incidents (correlation_id, title, slug, severity, status, services,
                                declared_by_id, declared_by_name, started_at, resolved_at)
         VALUES (gen_random_uuid(), 'API down', 'api-down', 'sev1', $1, $2, 7, 'ana', $3, $4)
         RETURNING id",
    )
    .bind(if resolved.is_some() {
        "resolved"
    } else {
        "investigating"
    })
    .bind(services.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    .bind(at(started))
    .bind(resolved.map(at))
    .fetch_one(pool)
    .await
    .expect("insert an incident")
}

async fn audit(pool: &PgPool, outcome: &str, when: &str) {
    sqlx::query(
        "INSERT INTO audit_events (at, actor_id, actor_name, source, command, outcome)
         VALUES ($1, 7, 'bo', 'discord', 'deploy run', $2)",
    )
    .bind(at(when))
    .bind(outcome)
    .execute(pool)
    .await
    .expect("insert an event");
}

async fn history(pool: &PgPool) {
    // The current window. api: five changes, two of them failed (an incident 20 minutes
    // after #1; #3 failed); lead times 600, 1200, 120, 1800 s.
    deploy(
        pool,
        done(
            "api",
            "succeeded",
            "2026-11-26T10:00:00Z",
            "2026-11-26T10:10:00Z",
        ),
    )
    .await;
    deploy(
        pool,
        done(
            "api",
            "succeeded",
            "2026-11-27T09:00:00Z",
            "2026-11-27T09:20:00Z",
        ),
    )
    .await;
    let failed = deploy(
        pool,
        done(
            "api",
            "failed",
            "2026-11-28T09:00:00Z",
            "2026-11-28T09:05:00Z",
        ),
    )
    .await;
    deploy(
        pool,
        Fixture {
            is_rollback: true,
            rollback_of: Some(failed),
            ..done(
                "api",
                "succeeded",
                "2026-11-28T09:10:00Z",
                "2026-11-28T09:12:00Z",
            )
        },
    )
    .await;
    deploy(
        pool,
        Fixture {
            overridden: true,
            ..done(
                "api",
                "succeeded",
                "2026-11-30T15:00:00Z",
                "2026-11-30T15:30:00Z",
            )
        },
    )
    .await;
    // worker: two changes; the first followed by a rollback 15 minutes later.
    deploy(
        pool,
        done(
            "worker",
            "succeeded",
            "2026-11-29T08:00:00Z",
            "2026-11-29T08:30:00Z",
        ),
    )
    .await;
    deploy(
        pool,
        Fixture {
            is_rollback: true,
            ..done(
                "worker",
                "succeeded",
                "2026-11-29T08:45:00Z",
                "2026-11-29T08:50:00Z",
            )
        },
    )
    .await;
    // Not changes: a rejected request and one still running.
    deploy(
        pool,
        Fixture {
            finished: None,
            ..done("worker", "rejected", "2026-11-30T10:00:00Z", "")
        },
    )
    .await;
    deploy(
        pool,
        Fixture {
            finished: None,
            ..done("api", "running", "2026-12-01T11:00:00Z", "")
        },
    )
    .await;
    incident(
        pool,
        &["api"],
        "2026-11-26T10:30:00Z",
        Some("2026-11-26T11:30:00Z"),
    )
    .await;
    incident(pool, &[], "2026-12-01T09:00:00Z", None).await;

    // The previous window: one api change, followed by an incident 20 minutes later that
    // took 30 minutes to resolve.
    deploy(
        pool,
        done(
            "api",
            "succeeded",
            "2026-11-20T07:00:00Z",
            "2026-11-20T07:40:00Z",
        ),
    )
    .await;
    incident(
        pool,
        &["api", "worker"],
        "2026-11-20T08:00:00Z",
        Some("2026-11-20T08:30:00Z"),
    )
    .await;

    for (outcome, when) in [
        ("denied", "2026-11-26T12:00:00Z"),
        ("denied", "2026-11-26T13:00:00Z"),
        ("denied", "2026-11-30T09:00:00Z"),
        ("denied", "2026-11-20T09:00:00Z"),
        ("ok", "2026-11-26T12:30:00Z"),
    ] {
        audit(pool, outcome, when).await;
    }

    let group: i64 = sqlx::query_scalar(
        "INSERT INTO alert_groups (group_key, channel_id, status) VALUES ('{}:{alertname=\"Down\"}', 333, 'firing') RETURNING id",
    )
    .fetch_one(pool)
    .await
    .expect("alert group");
    for (fingerprint, status) in [("a1", "firing"), ("a2", "firing"), ("a3", "resolved")] {
        sqlx::query(
            "INSERT INTO alert_instances (group_id, fingerprint, starts_at, status) VALUES ($1, $2, now(), $3)",
        )
        .bind(group)
        .bind(fingerprint)
        .bind(status)
        .execute(pool)
        .await
        .expect("alert");
    }
}

async fn read(desk: &Desk, query: &OverviewQuery) -> Overview {
    let view = desk.dashboard_view(&reader()).await.expect("may read");
    desk.overview(&view, query, at(NOW))
        .await
        .expect("overview")
}

fn week() -> OverviewQuery {
    OverviewQuery {
        window_days: 7,
        environment: None,
    }
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn the_four_keys_of_a_known_history(pool: PgPool) {
    history(&pool).await;
    let o = read(&desk(&pool), &week()).await;
    assert_eq!(o.from, at("2026-11-25T00:00:00Z"));
    assert_eq!(o.previous_from, at("2026-11-18T00:00:00Z"));

    let all = &o.overall;
    assert_eq!((all.changes, all.succeeded, all.failed_changes), (7, 6, 3));
    assert_eq!(all.deployment_frequency.current, Some(0.857));
    assert_eq!(all.deployment_frequency.previous, Some(0.143));
    assert_eq!(all.deployment_frequency.trend, Trend::Better);
    // Median of 120, 300, 600, 1200, 1800, 1800 against 2400 before.
    assert_eq!(all.lead_time_secs.current, Some(900.0));
    assert_eq!(all.lead_time_secs.previous, Some(2400.0));
    assert_eq!(all.lead_time_secs.trend, Trend::Better);
    assert_eq!(all.change_failure_rate.current, Some(0.429));
    assert_eq!(all.change_failure_rate.previous, Some(1.0));
    assert_eq!(all.time_to_restore_secs.current, Some(3600.0));
    assert_eq!(all.time_to_restore_secs.previous, Some(1800.0));
    assert_eq!(all.time_to_restore_secs.trend, Trend::Worse);

    let names: Vec<&str> = o.services.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(names, ["api", "worker"]);
    let api = &o.services[0].keys;
    assert_eq!((api.changes, api.failed_changes), (5, 2));
    assert_eq!(api.lead_time_secs.current, Some(900.0));
    assert_eq!(api.change_failure_rate.current, Some(0.4));
    let worker = &o.services[1].keys;
    assert_eq!((worker.changes, worker.failed_changes), (2, 1));
    assert_eq!(worker.lead_time_secs.current, Some(1050.0));
    assert_eq!(worker.time_to_restore_secs.current, None);
    assert_eq!(worker.time_to_restore_secs.previous, Some(1800.0));

    assert_eq!(o.deploys_per_day.len(), 7);
    assert_eq!(o.open_incidents.len(), 1);
    assert_eq!(o.firing_alerts, 2);

    let days: Vec<String> = o
        .deploys_per_day
        .iter()
        .zip(&o.refusals_per_day)
        .map(|(d, r)| {
            format!(
                "{}\n{}",
                serde_json::to_string(d).expect("json"),
                serde_json::to_string(r).expect("json")
            )
        })
        .collect();
    insta::assert_snapshot!(days.join("\n"), @r#"
    {"day":"2026-11-25","succeeded":0,"failed":0,"cancelled":0,"rejected":0,"expired":0,"active":0}
    {"day":"2026-11-25","denials":0,"overrides":0}
    {"day":"2026-11-26","succeeded":1,"failed":0,"cancelled":0,"rejected":0,"expired":0,"active":0}
    {"day":"2026-11-26","denials":2,"overrides":0}
    {"day":"2026-11-27","succeeded":1,"failed":0,"cancelled":0,"rejected":0,"expired":0,"active":0}
    {"day":"2026-11-27","denials":0,"overrides":0}
    {"day":"2026-11-28","succeeded":1,"failed":1,"cancelled":0,"rejected":0,"expired":0,"active":0}
    {"day":"2026-11-28","denials":0,"overrides":0}
    {"day":"2026-11-29","succeeded":2,"failed":0,"cancelled":0,"rejected":0,"expired":0,"active":0}
    {"day":"2026-11-29","denials":0,"overrides":0}
    {"day":"2026-11-30","succeeded":1,"failed":0,"cancelled":0,"rejected":1,"expired":0,"active":0}
    {"day":"2026-11-30","denials":1,"overrides":1}
    {"day":"2026-12-01","succeeded":0,"failed":0,"cancelled":0,"rejected":0,"expired":0,"active":1}
    {"day":"2026-12-01","denials":0,"overrides":0}
    "#);
    insta::assert_json_snapshot!(o.overall, @r#"
    {
      "changes": 7,
      "succeeded": 6,
      "failed_changes": 3,
      "restored": 1,
      "deployment_frequency": {
        "current": 0.857,
        "previous": 0.143,
        "change": 0.714,
        "trend": "better"
      },
      "lead_time_secs": {
        "current": 900.0,
        "previous": 2400.0,
        "change": -1500.0,
        "trend": "better"
      },
      "change_failure_rate": {
        "current": 0.429,
        "previous": 1.0,
        "change": -0.571,
        "trend": "better"
      },
      "time_to_restore_secs": {
        "current": 3600.0,
        "previous": 1800.0,
        "change": 1800.0,
        "trend": "worse"
      }
    }
    "#);
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn the_change_failure_window_and_the_environment_narrow_it(pool: PgPool) {
    history(&pool).await;
    // Ten minutes: the incident 20 minutes after api's first deploy and worker's rollback 15
    // minutes after its deploy no longer count against them.
    let short = desk(&pool).with_overview(OverviewSettings {
        change_failure_window: Duration::from_secs(600),
    });
    let o = read(&short, &week()).await;
    assert_eq!(o.change_failure_window_secs, 600);
    assert_eq!(o.overall.failed_changes, 1);
    assert_eq!(o.services[1].keys.failed_changes, 0);

    let staging = desk(&pool).with_deploys(crate::deploy::DeployCatalog {
        services: [(
            "worker".to_owned(),
            crate::deploy::ServiceSpec {
                name: "worker".to_owned(),
                environments: vec!["staging".to_owned()],
                backend: crate::deploy::backends::BackendSpec::Command(
                    crate::deploy::backends::command::CommandSpec {
                        program: "true".to_owned(),
                        args: vec![],
                        timeout: Duration::from_secs(1),
                        workdir: None,
                    },
                ),
            },
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    });
    let o = read(
        &staging,
        &OverviewQuery {
            window_days: 7,
            environment: Some("staging".to_owned()),
        },
    )
    .await;
    assert_eq!(o.overall.changes, 2);
    // api deployed only to production, but its incident (incidents have no environment)
    // keeps it listed, with no changes.
    let names: Vec<&str> = o.services.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(names, ["api", "worker"]);
    assert_eq!(o.services[0].keys.changes, 0);
    assert_eq!(
        o.services[0].keys.time_to_restore_secs.current,
        Some(3600.0)
    );

    let view = staging.dashboard_view(&reader()).await.expect("view");
    let refused = staging
        .overview(
            &view,
            &OverviewQuery {
                window_days: 7,
                environment: Some("prod".to_owned()),
            },
            at(NOW),
        )
        .await
        .expect_err("unknown environment");
    assert_eq!(
        refused.to_string(),
        "environment: `prod` is not an environment; known environments: staging"
    );
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn the_api_read_is_audited_and_needs_audit_read(pool: PgPool) {
    let desk = desk(&pool);
    desk.overview_api(&reader(), &week(), at(NOW))
        .await
        .expect("overview");
    let outsider = Invocation::new(
        Actor {
            id: 2,
            name: "eve".to_owned(),
            roles: vec![],
            source: Source::Web,
        },
        "overview api",
        serde_json::json!({}),
    );
    assert!(matches!(
        desk.overview_api(&outsider, &week(), at(NOW)).await,
        Err(CommandError::Denied { .. })
    ));
    let recorded: Vec<(String, String, String)> =
        sqlx::query_as("SELECT actor_name, outcome, detail FROM audit_events ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("events");
    assert_eq!(recorded[0].0, "ana");
    assert_eq!(recorded[0].1, "ok");
    assert_eq!(recorded[0].2, "7 days: 0 changes, 0 services");
    assert_eq!(
        (recorded[1].0.as_str(), recorded[1].1.as_str()),
        ("eve", "denied")
    );
}

#[test]
fn windows_are_7_30_or_90_days() {
    assert_eq!(OverviewQuery::parse_window("30"), Ok(30));
    assert_eq!(OverviewQuery::parse_window("90d"), Ok(90));
    assert_eq!(
        OverviewQuery::parse_window("14"),
        Err("window: `14` is not a window; one of 7, 30, 90 (days)".to_owned())
    );
    assert_eq!(
        store::window_start(at("2026-12-01T00:00:01Z"), 7),
        at("2026-11-25T00:00:00Z")
    );
}
