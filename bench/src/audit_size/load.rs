//! Loading the synthetic audit trail of `audit-size`: N events shaped like opsbot's own,
//! queued and then chained by the real sealer.
//!
//! Shape: 400 actors; the real command names in realistic shares (deploys a third, alerts
//! from the webhook, digests and trackers from the scheduler, the web API's reads); 1 % of
//! events denied, some invalid or failed; sources discord (most), web, shell, webhook and
//! scheduler (the "system" source); args with the keys opsbot writes (service, environment,
//! version, alertname, severity); a detail sentence; deploy events grouped five to a
//! correlation id. The rare word (`xylophone`) is in 8 events' detail, the common one
//! (`timeout`) in 5 % of them. `at` runs from 180 days ago to now in id order.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use sqlx::PgPool;

/// The word a handful of events contain.
pub const RARE_WORD: &str = "xylophone";
/// The word 5 % of events contain.
pub const COMMON_WORD: &str = "timeout";
/// Events that contain [`RARE_WORD`].
pub const RARE_COUNT: i64 = 8;

/// How long each phase of the load took.
#[derive(Debug, Default)]
pub struct Loaded {
    pub insert: Duration,
    /// `(index name, build time)` of each secondary index of `audit_events`, rebuilt after
    /// the bulk insert.
    pub indexes: Vec<(String, Duration)>,
    pub seal: Duration,
}

/// The secondary indexes of `audit_events` (not its primary key or unique constraints):
/// `(name, definition)`.
async fn secondary_indexes(pool: &PgPool) -> anyhow::Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT i.relname::text, pg_get_indexdef(x.indexrelid)
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
         WHERE x.indrelid = 'audit_events'::regclass AND NOT x.indisunique
         ORDER BY i.relname",
    )
    .fetch_all(pool)
    .await?)
}

/// Inserts `events` events, rebuilds the indexes (dropped for the bulk insert, as a restore
/// would), and seals them all with the real sealer.
pub async fn load(pool: &PgPool, events: i64) -> anyhow::Result<Loaded> {
    let mut loaded = Loaded::default();
    let indexes = secondary_indexes(pool).await?;
    for (name, _) in &indexes {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP INDEX {name}")))
            .execute(pool)
            .await?;
    }
    let started = Instant::now();
    let rare_every = (events / RARE_COUNT).max(1);
    sqlx::query(
        "INSERT INTO audit_events (at, actor_id, actor_name, source, guild_id, channel_id,
                                   interaction_id, command, args, outcome, detail, correlation_id)
         SELECT now() - (interval '180 days') * (1.0 - g::float8 / $1),
                100000 + a, 'member' || a, src,
                CASE WHEN src = 'discord' THEN 4242 END,
                CASE WHEN src = 'discord' THEN 7000 + g % 12 END,
                CASE WHEN src = 'discord' THEN 1000000000000 + g END,
                cmd,
                CASE WHEN cmd LIKE 'alert%' THEN
                         jsonb_build_object('alertname', 'HighLatency' || (g % 30),
                                            'severity', CASE WHEN g % 4 = 0 THEN 'critical' ELSE 'warning' END,
                                            'service', 'svc' || (g % 24))
                     WHEN cmd LIKE 'deploy%' OR cmd = 'rollback' THEN
                         jsonb_build_object('service', 'svc' || (g % 24),
                                            'environment', CASE WHEN g % 3 = 0 THEN 'production' ELSE 'staging' END,
                                            'version', 'v1.' || (g % 500) || '.' || (g % 7))
                     WHEN cmd IN ('audit api', 'audit recent', 'audit export csv', 'overview api') THEN
                         jsonb_build_object('outcome', CASE WHEN g % 5 = 0 THEN 'denied' ELSE '' END,
                                            'limit', '50')
                     ELSE '{}'::jsonb END,
                outcome,
                CASE WHEN g % $2 = 1234 % $2 THEN 'played the ' || $3 || ' in staging'
                     WHEN g % 20 = 9 THEN 'upstream ' || $4 || ' after 30s'
                     WHEN outcome = 'denied' THEN 'missing permission ' || split_part(cmd, ' ', 1) || ':run'
                     WHEN cmd = 'deploy run' THEN 'deployed v1.' || (g % 500) || ' to svc' || (g % 24)
                     WHEN cmd LIKE 'audit%' OR cmd = 'overview api' THEN (g % 50) || ' events'
                     ELSE '' END,
                CASE WHEN cmd LIKE 'deploy%' OR cmd = 'rollback' THEN md5((g / 5)::text)::uuid END
         FROM generate_series(1, $1) AS g,
              LATERAL (SELECT (g * 2654435761) % 400 AS a, g % 100 AS share) AS k,
              LATERAL (SELECT CASE
                  WHEN share < 30 THEN 'deploy run'      WHEN share < 38 THEN 'deploy approve'
                  WHEN share < 42 THEN 'deploy lock'     WHEN share < 45 THEN 'deploy unlock'
                  WHEN share < 48 THEN 'rollback'        WHEN share < 58 THEN 'whoami'
                  WHEN share < 63 THEN 'audit recent'    WHEN share < 67 THEN 'audit api'
                  WHEN share < 68 THEN 'audit export csv' WHEN share < 74 THEN 'alerts ack'
                  WHEN share < 77 THEN 'alerts silence'  WHEN share < 87 THEN 'alert fired'
                  WHEN share < 88 THEN 'incident declare' WHEN share < 90 THEN 'incident reminders'
                  WHEN share < 92 THEN 'digest post'     WHEN share < 97 THEN 'deploy tracker'
                  ELSE 'overview api' END AS cmd) AS c,
              LATERAL (SELECT CASE
                  WHEN cmd = 'alert fired' THEN 'webhook'
                  WHEN cmd IN ('digest post', 'incident reminders', 'deploy tracker') THEN 'scheduler'
                  WHEN cmd IN ('audit api', 'audit export csv', 'overview api') THEN 'web'
                  WHEN g % 50 = 0 THEN 'shell'
                  WHEN g % 10 = 1 THEN 'web'
                  ELSE 'discord' END AS src,
                  CASE WHEN g % 100 = 7 THEN 'denied' WHEN g % 97 = 5 THEN 'invalid'
                       WHEN g % 251 = 3 THEN 'error' WHEN g % 113 = 2 THEN 'conflict'
                       ELSE 'ok' END AS outcome) AS s",
    )
    .bind(events)
    .bind(rare_every)
    .bind(RARE_WORD)
    .bind(COMMON_WORD)
    .execute(pool)
    .await
    .context("loading audit events")?;
    // Queued as `append` queues them, each at its own time (the trigger that stamps the
    // queue time with the clock is off for the load, so the sealer's backdating check holds).
    sqlx::raw_sql(
        "ALTER TABLE audit_unsealed DISABLE TRIGGER audit_unsealed_stamp;
         INSERT INTO audit_unsealed (event_id, queued_at) SELECT id, at FROM audit_events;
         ALTER TABLE audit_unsealed ENABLE TRIGGER audit_unsealed_stamp;",
    )
    .execute(pool)
    .await
    .context("queueing audit events")?;
    loaded.insert = started.elapsed();

    for (name, definition) in &indexes {
        let started = Instant::now();
        let mut conn = pool.acquire().await?;
        sqlx::raw_sql("SET maintenance_work_mem = '1GB'")
            .execute(&mut *conn)
            .await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(definition.clone()))
            .execute(&mut *conn)
            .await
            .with_context(|| format!("rebuilding {name}"))?;
        loaded.indexes.push((name.clone(), started.elapsed()));
    }
    sqlx::raw_sql("ANALYZE audit_events; ANALYZE audit_unsealed")
        .execute(pool)
        .await?;

    let started = Instant::now();
    loop {
        opsbot_commands::audit::seal_pending(pool).await?;
        let left: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM audit_unsealed)")
            .fetch_one(pool)
            .await?;
        if !left {
            break;
        }
        // The server's own sealer holds the lock: let it finish its batch.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loaded.seal = started.elapsed();
    let refused: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_refused")
        .fetch_one(pool)
        .await?;
    anyhow::ensure!(
        refused == 0,
        "the sealer refused {refused} synthetic events"
    );
    for table in ["audit_events", "audit_chain", "audit_unsealed"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
            .execute(pool)
            .await?;
    }
    Ok(loaded)
}

/// Size of each index of `audit_events`, and of the table, in MiB.
pub async fn sizes(pool: &PgPool) -> anyhow::Result<Vec<(String, f64)>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT 'table audit_events', pg_relation_size('audit_events')
         UNION ALL
         SELECT i.relname::text, pg_relation_size(x.indexrelid)
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
         WHERE x.indrelid = 'audit_events'::regclass",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, bytes)| (name, bytes as f64 / (1024.0 * 1024.0)))
        .collect())
}
