//! Alert ingestion through `POST /webhooks/alertmanager`: alerts per second with 8 concurrent
//! senders, and webhook latency at a steady rate, next to a raw batched `INSERT` of the same
//! rows measured in the same run.
//!
//! ```text
//! cargo run --release -p opsbot-bench --bin alert-ingest -- --seconds 10 --rate 50
//! ```
//!
//! The bot is the real one (`opsbot run`'s services: HTTP server, desk, audit trail, outbox)
//! without a Discord connection, so only ingestion is measured: every delivery is a new
//! alert group of 10 alerts shaped like the captures in `shared/fixtures/alertmanager/`, and
//! each is stored with its alerts, its audit event and the outbox row of its message.

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use opsbot::config::Config;
use opsbot::run::{HttpBind, Services};
use opsbot_bench::{load_average, ms, percentile};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "bench-alertmanager-webhook-token";
const ALERTS_PER_DELIVERY: usize = 10;

#[derive(Debug, Parser)]
struct Args {
    /// Concurrent senders for the throughput run.
    #[arg(long, default_value_t = 8)]
    senders: usize,
    /// How long each run lasts.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Deliveries per second for the latency run.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// A PostgreSQL server to create the benchmark's database in.
    #[arg(
        long,
        env = "BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    server: String,
}

/// Delivery `n`: a new group of 10 firing alerts, shaped like Alertmanager's own.
fn payload(n: usize) -> Value {
    let service = ["api", "web", "billing", "search"][n % 4];
    let name = format!("HighErrorRate{n}");
    let alerts: Vec<Value> = (0..ALERTS_PER_DELIVERY)
        .map(|i| {
            json!({
                "status": "firing",
                "labels": {"alertname": name, "instance": format!("{service}-{i}:8080"), "service": service, "severity": "critical"},
                "annotations": {"runbook_url": "https://runbooks.example/high-error-rate", "summary": format!("5xx rate above 5% on {service}-{i}")},
                "startsAt": format!("2026-11-28T08:34:{:02}.654596397Z", i * 3),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:19090/graph?g0.expr=rate",
                "fingerprint": format!("{:016x}", (n as u64) << 8 | i as u64),
            })
        })
        .collect();
    json!({
        "receiver": "webhook", "status": "firing", "alerts": alerts,
        "groupLabels": {"alertname": name},
        "commonLabels": {"alertname": name, "service": service, "severity": "critical"},
        "commonAnnotations": {"runbook_url": "https://runbooks.example/high-error-rate"},
        "externalURL": "http://vm:19093", "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{name}\"}}"), "truncatedAlerts": 0,
    })
}

async fn send(client: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let response = client
        .post(url)
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await?;
    let status = response.status();
    let _ = response.bytes().await?;
    anyhow::ensure!(status.is_success(), "webhook answered {status}");
    Ok(start.elapsed())
}

/// Rows per second of the same alerts inserted directly: one multi-row `INSERT` of a group
/// and its alerts per delivery, 64 deliveries per transaction (what the ingest batches at most).
async fn raw_batched(pool: &sqlx::PgPool, deliveries: usize) -> anyhow::Result<f64> {
    sqlx::raw_sql(
        "CREATE TABLE bench_groups (LIKE alert_groups INCLUDING DEFAULTS INCLUDING IDENTITY);
         CREATE TABLE bench_instances (LIKE alert_instances INCLUDING DEFAULTS INCLUDING IDENTITY);",
    )
    .execute(pool)
    .await?;
    let payloads: Vec<Value> = (0..deliveries).map(|n| payload(1_000_000 + n)).collect();
    let start = Instant::now();
    for chunk in payloads.chunks(64) {
        let mut tx = pool.begin().await?;
        for p in chunk {
            let group: i64 = sqlx::query_scalar(
                "INSERT INTO bench_groups (group_key, channel_id, status, receiver, group_labels, common_labels, common_annotations, external_url, route_index)
                 VALUES ($1, 333, 'firing', $2, $3, $4, $5, $6, 0) RETURNING id",
            )
            .bind(p["groupKey"].as_str())
            .bind(p["receiver"].as_str())
            .bind(&p["groupLabels"])
            .bind(&p["commonLabels"])
            .bind(&p["commonAnnotations"])
            .bind(p["externalURL"].as_str())
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO bench_instances (group_id, fingerprint, starts_at, status, labels, annotations, generator_url)
                 SELECT $1, a->>'fingerprint', (a->>'startsAt')::timestamptz, a->>'status', a->'labels', a->'annotations', a->>'generatorURL'
                 FROM jsonb_array_elements($2) a",
            )
            .bind(group)
            .bind(&p["alerts"])
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    }
    Ok((deliveries * ALERTS_PER_DELIVERY) as f64 / start.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_writer(std::io::stderr)
        .init();

    let (db_name, url) = opsbot_bench::create_database(&args.server, "opsbot_bench").await?;
    let toml = "[http]\nlisten = \"127.0.0.1:0\"\n[alerts]\nwebhook_token = \"env:BENCH_ALERT_TOKEN\"\n[[alerts.routes]]\nchannel = 333\n";
    let config_path = std::env::temp_dir().join(format!("{db_name}.toml"));
    std::fs::write(&config_path, toml)?;
    let env = std::collections::BTreeMap::from([
        ("DATABASE_URL".to_owned(), url.clone()),
        ("BENCH_ALERT_TOKEN".to_owned(), TOKEN.to_owned()),
    ]);
    let config =
        Config::load_with_env(Some(&config_path), &env).map_err(|e| anyhow::anyhow!("{e}"))?;
    let shutdown = CancellationToken::new();
    let services = Services::start(&config, None, HttpBind::Required, shutdown.clone()).await?;
    let addr = services.http_addr.context("no HTTP server")?;
    let hook = format!("http://{addr}/webhooks/alertmanager");
    let client = reqwest::Client::new();
    let load_before = load_average();

    // Throughput: `senders` loops, each sending its next delivery as soon as the last answered.
    let until = Instant::now() + Duration::from_secs(u64::from(args.seconds));
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..args.senders {
        let (client, hook, next) = (client.clone(), hook.clone(), next.clone());
        senders.spawn(async move {
            let mut sent = 0usize;
            while Instant::now() < until {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                send(&client, &hook, &payload(n)).await?;
                sent += 1;
            }
            anyhow::Ok(sent)
        });
    }
    let mut delivered = 0usize;
    while let Some(sent) = senders.join_next().await {
        delivered += sent??;
    }
    let throughput = (delivered * ALERTS_PER_DELIVERY) as f64 / start.elapsed().as_secs_f64();

    // Latency at a steady rate: each delivery on its own task, on schedule.
    let total = (args.rate * args.seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let first = next.load(std::sync::atomic::Ordering::Relaxed);
    let start = Instant::now();
    let mut steady = tokio::task::JoinSet::new();
    for i in 0..total {
        tokio::time::sleep_until((start + interval * i as u32).into()).await;
        let (client, hook) = (client.clone(), hook.clone());
        steady.spawn(async move { send(&client, &hook, &payload(first + i)).await });
    }
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0usize;
    while let Some(answer) = steady.join_next().await {
        match answer? {
            Ok(latency) => latencies.push(latency),
            Err(_) => errors += 1,
        }
    }
    latencies.sort();

    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM alert_instances")
        .fetch_one(&services.db.pool)
        .await?;
    anyhow::ensure!(
        stored as usize == (delivered + latencies.len()) * ALERTS_PER_DELIVERY,
        "stored {stored} alerts for {} deliveries",
        delivered + latencies.len()
    );
    let raw = raw_batched(&services.db.pool, delivered).await?;
    let load_after = load_average();
    services.stop().await?;
    shutdown.cancel();
    let _ = std::fs::remove_file(&config_path);
    opsbot_bench::drop_database(&args.server, &db_name).await?;

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "| {} senders | {delivered} | {throughput:.0} | {raw:.0} | {:.0} % | {} /s | {} | {} | {} | {} | {errors} | {load_before} → {load_after} |",
        args.senders,
        100.0 * throughput / raw,
        args.rate,
        latencies.len(),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default()),
    )?;
    Ok(())
}
