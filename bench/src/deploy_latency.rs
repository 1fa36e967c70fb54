//! Acknowledgement latency of `/deploy run` and `/deploy status` through the Discord emulator,
//! at a fixed rate of commands per second, next to the raw latency of a single-row
//! INSERT + COMMIT measured in the same run.
//!
//! ```text
//! cargo run --release -p opsbot-bench --bin deploy-latency -- --rate 50 --seconds 10
//! ```
//!
//! The bot is the real one (poise commands, desk, audit, outbox, tracker) connected to the
//! emulator; latency is from the moment the emulator dispatches INTERACTION_CREATE to the
//! moment it receives the interaction response. Each `/deploy run` targets its own service
//! (generated config, approvals required) so every request creates a deploy rather than
//! hitting the one-at-a-time rule.

use std::collections::HashMap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use opsbot::config::Config;
use opsbot::discord::GatewaySettings;
use opsbot::emulator::Emulator;
use opsbot::run::{HttpBind, Services};
use opsbot_bench::{ms, peak_rss_mib, percentile};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
struct Args {
    /// Commands per second.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// How long to keep that rate.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Which command: `run` or `status`.
    #[arg(long, default_value = "run")]
    command: String,
    /// A PostgreSQL server to create the benchmark's database in.
    #[arg(
        long,
        env = "BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    server: String,
}

/// p50/p99 of single-row INSERT + COMMIT on its own connection, `n` times.
async fn raw_commit_latency(pool: &sqlx::PgPool, n: usize) -> anyhow::Result<(Duration, Duration)> {
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS bench_commit (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())")
        .execute(pool)
        .await?;
    let mut samples = Vec::with_capacity(n);
    let mut conn = pool.acquire().await?;
    for _ in 0..n {
        let start = Instant::now();
        sqlx::raw_sql("BEGIN; INSERT INTO bench_commit DEFAULT VALUES; COMMIT;")
            .execute(&mut *conn)
            .await?;
        samples.push(start.elapsed());
    }
    samples.sort();
    Ok((percentile(&samples, 50.0), percentile(&samples, 99.0)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_writer(std::io::stderr)
        .init();
    let total = (args.rate * args.seconds) as usize;

    // A fresh database for this run.
    let (db_name, url) = opsbot_bench::create_database(&args.server, "opsbot_bench").await?;

    // One service per request, each needing an approval: every run creates a deploy.
    let mut toml = String::from(
        "[roles]\nops = [\"deploy:*\"]\n[http]\nlisten = \"127.0.0.1:0\"\n[environments.production]\napprovals = 1\n",
    );
    for i in 0..total.max(1) {
        toml.push_str(&format!(
            "[[services]]\nname = \"svc-{i}\"\nenvironments = [\"production\"]\nbackend = {{ kind = \"command\", program = \"/bin/true\" }}\n"
        ));
    }
    let config_path = std::env::temp_dir().join(format!("{db_name}.toml"));
    std::fs::write(&config_path, toml)?;
    let env = std::collections::BTreeMap::from([("DATABASE_URL".to_owned(), url.clone())]);
    let config =
        Config::load_with_env(Some(&config_path), &env).map_err(|e| anyhow::anyhow!("{e}"))?;

    let shutdown = CancellationToken::new();
    let emulator = Emulator::start(opsbot::shell::guild_spec(&config), shutdown.clone()).await?;
    let gateway = GatewaySettings {
        token: emulator.token().to_owned(),
        guild_ids: vec![emulator.guild_id()],
        api_base: emulator.base_url().to_owned(),
        source: opsbot_commands::Source::Discord,
    };
    let services =
        Services::start(&config, Some(gateway), HttpBind::Optional, shutdown.clone()).await?;
    while !emulator.commands_registered() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let member = emulator.member("bench", Some(&["ops".to_owned()]));
    let channel = emulator.find_channel("general").context("general")?.0;

    let mut events = emulator.subscribe();
    let collector = tokio::spawn(async move {
        let mut answered: HashMap<u64, Instant> = HashMap::new();
        let mut errors = 0usize;
        while answered.len() < total {
            match tokio::time::timeout(Duration::from_secs(30), events.recv()).await {
                Ok(Ok(event)) => {
                    if let Some(id) = event.interaction_id
                        && matches!(event.event, "reply" | "edit")
                        && !answered.contains_key(&id)
                    {
                        if event.content.starts_with('❌')
                            || event.content.starts_with('⚠')
                            || event.content.starts_with('⛔')
                        {
                            errors += 1;
                        }
                        answered.insert(id, Instant::now());
                    }
                }
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
                _ => break,
            }
        }
        (answered, errors)
    });

    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let mut sent: HashMap<u64, Instant> = HashMap::new();
    let mut refused = 0usize;
    let start = Instant::now();
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let line = match args.command.as_str() {
            "status" => "/deploy status".to_owned(),
            _ => format!("/deploy run service:svc-{i} version:v1.0.{i} env:production"),
        };
        match emulator.type_line(member, channel, &line) {
            Ok(id) => {
                sent.insert(id, Instant::now());
            }
            Err(_) => refused += 1,
        }
    }
    let (answered, errors) = collector.await?;
    let mut latencies: Vec<Duration> = sent
        .iter()
        .filter_map(|(id, at)| answered.get(id).map(|done| done.duration_since(*at)))
        .collect();
    latencies.sort();
    let unanswered = sent.len() - latencies.len();
    let (raw_p50, raw_p99) = raw_commit_latency(&services.db.pool, 500).await?;
    let peak = peak_rss_mib();
    services.stop().await?;
    shutdown.cancel();
    opsbot_bench::drop_database(&args.server, &db_name).await?;
    let _ = std::fs::remove_file(&config_path);

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "| /deploy {} | {} cmd/s | {} | {} | {} | {} | {} | {:.0} MiB | {} | {} |",
        args.command,
        args.rate,
        sent.len(),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default()),
        errors + unanswered + refused,
        peak,
        ms(raw_p50),
        ms(raw_p99),
    )?;
    Ok(())
}
