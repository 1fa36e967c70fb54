//! Every SQL statement of the overview. Each reads an indexed range (see the migration
//! `overview_indexes`): deploys by `finished_at` or `requested_at`, incidents by
//! `resolved_at`, denials by the partial index on `audit_events (at) WHERE outcome IN ('denied', 'refused')`.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration as Days, NaiveDate, NaiveTime, Utc};
use sqlx::PgPool;

use super::figures::{WindowStats, keys};
use super::{
    DeployDay, OPEN_INCIDENTS_MAX, OpenIncident, Overview, OverviewQuery, OverviewSettings,
    RefusalDay, ServiceKeys,
};

/// Deploys that finished in `[from, until)`, per service and overall (`service` NULL). The
/// failed changes are found from the few rollbacks and incidents of the window, each looking
/// back `$4` seconds over `deploys_finished_idx`, not by probing once per deploy. `OFFSET 0`
/// keeps each look-back a per-row index probe: flattened, the planner misjudges the range
/// join and merge-joins every deploy against every rollback.
const DEPLOY_STATS: &str = r#"
WITH changes AS (
    SELECT d.id, d.service, d.state, d.requested_at, d.finished_at
    FROM deploys d
    WHERE d.finished_at >= $1 AND d.finished_at < $2 AND d.state IN ('succeeded', 'failed')
      AND ($3::text IS NULL OR d.environment = $3)
),
rollbacks AS (
    SELECT r.id, r.service, r.environment, r.requested_at, r.rollback_of
    FROM deploys r
    WHERE r.is_rollback AND r.requested_at >= $1
),
followed AS (
    SELECT r.rollback_of AS id FROM rollbacks r WHERE r.rollback_of IS NOT NULL
    UNION
    SELECT d.id FROM rollbacks r CROSS JOIN LATERAL (
        SELECT d.id FROM deploys d
        WHERE d.finished_at > r.requested_at - $4 * interval '1 second'
          AND d.finished_at <= r.requested_at
          AND d.service = r.service AND d.environment = r.environment AND d.id <> r.id
        OFFSET 0) d
    WHERE r.requested_at < $2 + $4 * interval '1 second'
    UNION
    SELECT d.id FROM incidents i CROSS JOIN LATERAL (
        SELECT d.id FROM deploys d
        WHERE d.finished_at > i.started_at - $4 * interval '1 second'
          AND d.finished_at <= i.started_at
          AND d.service = ANY (i.services)
        OFFSET 0) d
    WHERE i.started_at >= $1 AND i.started_at < $2 + $4 * interval '1 second'
)
SELECT c.service AS service, GROUPING(c.service) AS overall,
       count(*) AS changes,
       count(*) FILTER (WHERE c.state = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE c.state = 'failed' OR f.id IS NOT NULL) AS failed_changes,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM c.finished_at - c.requested_at)::float8)
           FILTER (WHERE c.state = 'succeeded') AS lead_time_secs
FROM changes c LEFT JOIN (SELECT DISTINCT id FROM followed) f ON f.id = c.id
GROUP BY GROUPING SETS ((c.service), ())
"#;

/// Incidents resolved in `[from, until)`: overall, then per service they name.
const RESTORE_STATS: &str = r#"
SELECT NULL::text AS service, count(*) AS restored,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM i.resolved_at - i.started_at)::float8) AS secs
FROM incidents i
WHERE i.status = 'resolved' AND i.resolved_at >= $1 AND i.resolved_at < $2
UNION ALL
SELECT s.service, count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM i.resolved_at - i.started_at)::float8)
FROM incidents i CROSS JOIN LATERAL unnest(i.services) AS s(service)
WHERE i.status = 'resolved' AND i.resolved_at >= $1 AND i.resolved_at < $2
GROUP BY s.service
"#;

#[derive(Debug, sqlx::FromRow)]
struct DeployStatsRow {
    service: Option<String>,
    overall: i32,
    changes: i64,
    succeeded: i64,
    failed_changes: i64,
    lead_time_secs: Option<f64>,
}

#[derive(Debug, sqlx::FromRow)]
struct RestoreRow {
    service: Option<String>,
    restored: i64,
    secs: Option<f64>,
}

/// Per service (`None`: all of them), what one window counts.
type Stats = BTreeMap<Option<String>, WindowStats>;

async fn window_stats(
    pool: &PgPool,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    environment: Option<&str>,
    settings: &OverviewSettings,
) -> Result<Stats, sqlx::Error> {
    let failure_window = settings.change_failure_window.as_secs_f64();
    let (deploys, restores) = tokio::try_join!(
        sqlx::query_as::<_, DeployStatsRow>(DEPLOY_STATS)
            .bind(from)
            .bind(until)
            .bind(environment)
            .bind(failure_window)
            .fetch_all(pool),
        sqlx::query_as::<_, RestoreRow>(RESTORE_STATS)
            .bind(from)
            .bind(until)
            .fetch_all(pool),
    )?;
    let mut stats = Stats::new();
    stats.insert(None, WindowStats::default());
    for row in deploys {
        let key = if row.overall == 1 { None } else { row.service };
        let entry = stats.entry(key).or_default();
        entry.changes = row.changes;
        entry.succeeded = row.succeeded;
        entry.failed_changes = row.failed_changes;
        entry.lead_time_secs = row.lead_time_secs;
    }
    for row in restores {
        let entry = stats.entry(row.service).or_default();
        entry.restored = row.restored;
        entry.restore_secs = row.secs;
    }
    Ok(stats)
}

#[derive(Debug, sqlx::FromRow)]
struct DeployDayRow {
    day: NaiveDate,
    state: String,
    count: i64,
    overrides: i64,
}

async fn deploy_days(
    pool: &PgPool,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    environment: Option<&str>,
) -> Result<Vec<DeployDayRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT (d.requested_at AT TIME ZONE 'UTC')::date AS day, d.state, count(*) AS count,
                count(*) FILTER (WHERE d.freeze_overridden) AS overrides
         FROM deploys d
         WHERE d.requested_at >= $1 AND d.requested_at < $2
           AND ($3::text IS NULL OR d.environment = $3)
         GROUP BY 1, 2",
    )
    .bind(from)
    .bind(until)
    .bind(environment)
    .fetch_all(pool)
    .await
}

async fn denial_days(
    pool: &PgPool,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<(NaiveDate, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT (at AT TIME ZONE 'UTC')::date AS day, count(*)
         FROM audit_events
         WHERE outcome IN ('denied', 'refused') AND at >= $1 AND at < $2
         GROUP BY 1",
    )
    .bind(from)
    .bind(until)
    .fetch_all(pool)
    .await
}

async fn open_incidents(pool: &PgPool) -> Result<Vec<OpenIncident>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, title, severity, status, services, started_at FROM incidents
         WHERE status <> 'resolved' ORDER BY started_at DESC, id DESC LIMIT $1",
    )
    .bind(OPEN_INCIDENTS_MAX)
    .fetch_all(pool)
    .await
}

async fn firing_alerts(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM alert_instances a JOIN alert_groups g ON g.id = a.group_id
         WHERE a.status = 'firing' AND g.status = 'firing'",
    )
    .fetch_one(pool)
    .await
}

/// The start of the window of `days` UTC days ending with `now`'s day.
pub(super) fn window_start(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    let first = now.date_naive() - Days::days(i64::from(days.max(1)) - 1);
    first.and_time(NaiveTime::MIN).and_utc()
}

/// The whole overview at `now`.
pub(super) async fn overview(
    pool: &PgPool,
    query: &OverviewQuery,
    settings: &OverviewSettings,
    configured: &[String],
    now: DateTime<Utc>,
) -> Result<Overview, sqlx::Error> {
    let days = query.window_days;
    let from = window_start(now, days);
    let previous_from = from - Days::days(i64::from(days));
    let environment = query.environment.as_deref();
    let (current, previous, per_day, denials, open, firing) = tokio::try_join!(
        window_stats(pool, from, now, environment, settings),
        window_stats(pool, previous_from, from, environment, settings),
        deploy_days(pool, from, now, environment),
        denial_days(pool, from, now),
        open_incidents(pool),
        firing_alerts(pool),
    )?;

    let empty = WindowStats::default();
    let stats_of = |stats: &Stats, key: &Option<String>| stats.get(key).copied().unwrap_or(empty);
    let mut names: Vec<String> = configured.to_vec();
    names.extend(
        current
            .keys()
            .chain(previous.keys())
            .flatten()
            .filter(|s| !configured.contains(s))
            .cloned(),
    );
    names.sort();
    names.dedup();
    let services = names
        .into_iter()
        .map(|service| {
            let key = Some(service.clone());
            ServiceKeys {
                keys: keys(&stats_of(&current, &key), &stats_of(&previous, &key), days),
                service,
            }
        })
        .collect();

    let day_list: Vec<NaiveDate> = (0..i64::from(days))
        .map(|i| from.date_naive() + Days::days(i))
        .collect();
    let mut deploys_per_day: BTreeMap<NaiveDate, DeployDay> = day_list
        .iter()
        .map(|&day| {
            (
                day,
                DeployDay {
                    day,
                    ..DeployDay::default()
                },
            )
        })
        .collect();
    let mut refusals_per_day: BTreeMap<NaiveDate, RefusalDay> = day_list
        .iter()
        .map(|&day| {
            (
                day,
                RefusalDay {
                    day,
                    ..RefusalDay::default()
                },
            )
        })
        .collect();
    for row in per_day {
        if let Some(entry) = deploys_per_day.get_mut(&row.day) {
            match row.state.as_str() {
                "succeeded" => entry.succeeded += row.count,
                "failed" => entry.failed += row.count,
                "cancelled" => entry.cancelled += row.count,
                "rejected" => entry.rejected += row.count,
                "expired" => entry.expired += row.count,
                _ => entry.active += row.count,
            }
        }
        if let Some(entry) = refusals_per_day.get_mut(&row.day) {
            entry.overrides += row.overrides;
        }
    }
    for (day, count) in denials {
        if let Some(entry) = refusals_per_day.get_mut(&day) {
            entry.denials += count;
        }
    }

    Ok(Overview {
        window_days: days,
        from,
        until: now,
        previous_from,
        environment: query.environment.clone(),
        change_failure_window_secs: settings.change_failure_window.as_secs(),
        overall: keys(
            &stats_of(&current, &None),
            &stats_of(&previous, &None),
            days,
        ),
        services,
        deploys_per_day: deploys_per_day.into_values().collect(),
        refusals_per_day: refusals_per_day.into_values().collect(),
        open_incidents: open,
        firing_alerts: firing,
    })
}
