//! `GET /api/overview` over a large history: 100 k deploys (8 services, 2 environments,
//! 180 days, some failed, rolled back or overriding a freeze), 500 incidents and 10 M audit
//! events (1 % of them denials), timed for each window (7, 30 and 90 days).
//!
//! ```text
//! cargo run --release -p opsbot-bench --bin overview-load -- --deploys 100000 --events 10000000 --requests 20
//! ```
//!
//! The server is the real one (`opsbot run`'s services, no Discord): each request goes
//! through the dashboard's authentication, the desk's access check, the queries and the audit
//! record of the read. Loading 10 M events takes minutes (one `INSERT … SELECT
//! generate_series`); the database is dropped at the end. Measure on a quiet machine.

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use opsbot::config::Config;
use opsbot::run::{HttpBind, Services};
use opsbot_bench::{load_average, ms, percentile};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "bench-overview-dashboard-token-32-bytes";

#[derive(Debug, Parser)]
struct Args {
    /// Deploys to load.
    #[arg(long, default_value_t = 100_000)]
    deploys: i64,
    /// Audit events to load (1 % of them denials).
    #[arg(long, default_value_t = 10_000_000)]
    events: i64,
    /// Requests per window, one after the other.
    #[arg(long, default_value_t = 20)]
    requests: usize,
    /// A PostgreSQL server to create the benchmark's database in.
    #[arg(
        long,
        env = "BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    server: String,
}

/// The history: deploys every `180 days / deploys`, newest now; incidents every ~9 hours.
async fn load(pool: &sqlx::PgPool, deploys: i64, events: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO deploys (correlation_id, service, environment, version, state, is_rollback,
                              freeze_overridden, requested_by_id, requested_by_name, requested_at,
                              started_at, finished_at, backend)
         SELECT gen_random_uuid(), 'svc' || (g % 8), CASE WHEN g % 2 = 0 THEN 'production' ELSE 'staging' END,
                'v' || g,
                CASE WHEN g % 10 = 0 THEN 'failed' WHEN g % 37 = 0 THEN 'rejected' ELSE 'succeeded' END,
                g % 20 = 0, g % 50 = 0, 7, 'bench', t, t, CASE WHEN g % 37 = 0 THEN NULL ELSE t + interval '12 minutes' END,
                'command'
         FROM generate_series(1, $1) AS g,
              LATERAL (SELECT now() - (interval '180 days') * (1.0 - g::float8 / $1)) AS s(t)",
    )
    .bind(deploys)
    .execute(pool)
    .await
    .context("loading deploys")?;
    sqlx::query(
        "INSERT INTO incidents (correlation_id, title, slug, severity, status, services,
                                declared_by_id, declared_by_name, started_at, resolved_at)
         SELECT gen_random_uuid(), 'incident ' || g, 'incident-' || g, 'sev2', 'resolved',
                ARRAY['svc' || (g % 8)], 7, 'bench', t, t + interval '40 minutes'
         FROM generate_series(1, 500) AS g,
              LATERAL (SELECT now() - (interval '180 days') * (1.0 - g::float8 / 500)) AS s(t)",
    )
    .execute(pool)
    .await
    .context("loading incidents")?;
    sqlx::query(
        "INSERT INTO audit_events (at, actor_id, actor_name, source, command, args, outcome, detail)
         SELECT now() - (interval '180 days') * (1.0 - g::float8 / $1), g % 50, 'member' || (g % 50),
                'discord', 'deploy run', '{}'::jsonb,
                CASE WHEN g % 100 = 0 THEN 'denied' ELSE 'ok' END, ''
         FROM generate_series(1, $1) AS g",
    )
    .bind(events)
    .execute(pool)
    .await
    .context("loading audit events")?;
    sqlx::raw_sql("ANALYZE deploys; ANALYZE incidents; ANALYZE audit_events")
        .execute(pool)
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_writer(std::io::stderr)
        .init();

    let (db_name, url) = opsbot_bench::create_database(&args.server, "opsbot_bench").await?;
    let toml =
        "[http]\nlisten = \"127.0.0.1:0\"\ndashboard_tokens = [\"env:BENCH_DASHBOARD_TOKEN\"]\n";
    let config_path = std::env::temp_dir().join(format!("{db_name}.toml"));
    std::fs::write(&config_path, toml)?;
    let env = std::collections::BTreeMap::from([
        ("DATABASE_URL".to_owned(), url.clone()),
        ("BENCH_DASHBOARD_TOKEN".to_owned(), TOKEN.to_owned()),
    ]);
    let config =
        Config::load_with_env(Some(&config_path), &env).map_err(|e| anyhow::anyhow!("{e}"))?;
    let shutdown = CancellationToken::new();
    let services = Services::start(&config, None, HttpBind::Required, shutdown.clone()).await?;
    let addr = services.http_addr.context("no HTTP server")?;

    let started = Instant::now();
    load(&services.db.pool, args.deploys, args.events).await?;
    let loaded_in = started.elapsed();

    let client = reqwest::Client::new();
    let load_before = load_average();
    let mut rows = Vec::new();
    for window in [7, 30, 90] {
        let url = format!("http://{addr}/api/overview?window={window}");
        let mut latencies: Vec<Duration> = Vec::with_capacity(args.requests);
        let mut changes = 0;
        for _ in 0..args.requests {
            let start = Instant::now();
            let answer = client.get(&url).bearer_auth(TOKEN).send().await?;
            anyhow::ensure!(answer.status().is_success(), "{url}: {}", answer.status());
            let body: serde_json::Value = answer.json().await?;
            latencies.push(start.elapsed());
            changes = body["overall"]["changes"].as_i64().unwrap_or(0);
        }
        latencies.sort();
        rows.push(format!(
            "| {window} days | {changes} | {} | {} | {} |",
            ms(percentile(&latencies, 50.0)),
            ms(percentile(&latencies, 99.0)),
            ms(latencies.last().copied().unwrap_or_default()),
        ));
    }
    let load_after = load_average();
    services.stop().await?;
    shutdown.cancel();
    let _ = std::fs::remove_file(&config_path);
    opsbot_bench::drop_database(&args.server, &db_name).await?;

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} deploys, {} audit events loaded in {:.0} s; {} requests per window; load {load_before} → {load_after}",
        args.deploys,
        args.events,
        loaded_in.as_secs_f64(),
        args.requests
    )?;
    writeln!(out, "| window | changes in it | p50 ms | p99 ms | max ms |")?;
    writeln!(out, "|---|---|---|---|---|")?;
    for row in rows {
        writeln!(out, "{row}")?;
    }
    Ok(())
}
