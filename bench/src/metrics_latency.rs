//! `/metrics` costs: rendering a 10-series × 1,000-point chart (the PNG a range query
//! attaches), and a range query end to end through the Discord emulator against a real
//! Prometheus (Debian's `prometheus`, started here on a free loopback port).
//!
//! ```text
//! cargo run --release -p opsbot-bench --bin metrics-latency -- --renders 50 --queries 50
//! ```
//!
//! Rendering is timed in-process (`chart::render`: layout, drawing, PNG encoding). The end to
//! end run is the real bot (poise command, desk, Prometheus client, chart, audit) connected to
//! the emulator; latency runs from the moment the emulator dispatches INTERACTION_CREATE to
//! the moment it receives the deferred reply's follow-up with the PNG. Queries run one after
//! another, as people type them; the expression is ten `vector(time())` waves, so every
//! query returns ten full series whatever Prometheus has scraped.

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{TimeZone as _, Utc};
use clap::Parser;
use opsbot::config::Config;
use opsbot::discord::GatewaySettings;
use opsbot::emulator::Emulator;
use opsbot::run::{HttpBind, Services};
use opsbot_bench::{ms, percentile};
use opsbot_commands::metrics::chart::{Plot, render};
use opsbot_commands::metrics::table::series_names;
use opsbot_commands::metrics::{Series, Unit};
use tokio_util::sync::CancellationToken;

const PROMETHEUS: &str = "/usr/bin/prometheus";

#[derive(Debug, Parser)]
struct Args {
    /// Charts to render (after two warm-up renders).
    #[arg(long, default_value_t = 50)]
    renders: usize,
    /// Range queries to send through the emulator (0: skip the end to end part).
    #[arg(long, default_value_t = 50)]
    queries: usize,
    /// A PostgreSQL server to create the benchmark's database in.
    #[arg(
        long,
        env = "BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    server: String,
}

/// Ten series of 1,000 points each, one minute apart, with a gap in every third series.
fn ten_series() -> (Vec<Series>, chrono::DateTime<Utc>, chrono::DateTime<Utc>) {
    let start = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let t0 = start.timestamp() as f64;
    let series = (0..10)
        .map(|k| Series {
            labels: [
                ("__name__".to_owned(), "http_requests".to_owned()),
                ("instance".to_owned(), format!("api-{k}:9090")),
            ]
            .into_iter()
            .collect(),
            samples: (0..1000)
                .filter(|i| k % 3 != 0 || !(400..450).contains(i))
                .map(|i| {
                    let x = f64::from(i);
                    (
                        t0 + x * 60.0,
                        100.0 * (k + 1) as f64 + 40.0 * (x / 50.0 + k as f64).sin(),
                    )
                })
                .collect(),
        })
        .collect();
    (series, start, start + chrono::Duration::seconds(999 * 60))
}

fn render_latency(n: usize) -> anyhow::Result<(Vec<Duration>, usize)> {
    let (series, start, end) = ten_series();
    let names = series_names(&series);
    let unit = Unit::PerSecond;
    let plot = Plot {
        title: "sum by (instance) (rate(http_requests_total[5m]))",
        unit: &unit,
        series: &series,
        names: &names,
        start,
        end,
        step: 60,
    };
    let mut size = 0;
    for _ in 0..2 {
        size = render(&plot)?.len();
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let at = Instant::now();
        let png = render(&plot)?;
        samples.push(at.elapsed());
        size = png.len();
    }
    samples.sort();
    Ok((samples, size))
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn query_latency(args: &Args) -> anyhow::Result<(Vec<Duration>, usize)> {
    let dir = std::env::temp_dir().join(format!("opsbot-bench-prom-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    std::fs::write(
        dir.join("prometheus.yml"),
        "global:\n  scrape_interval: 15s\nscrape_configs: []\n",
    )?;
    let _prometheus = Prometheus(
        Command::new(PROMETHEUS)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting prometheus")?,
    );

    let (db_name, url) = opsbot_bench::create_database(&args.server, "opsbot_bench").await?;
    let toml = format!(
        "[roles]\nops = [\"metrics:query\"]\n[http]\nlisten = \"127.0.0.1:0\"\n[prometheus]\nurl = \"http://127.0.0.1:{port}\"\n"
    );
    let config_path = dir.join("opsbot.toml");
    std::fs::write(&config_path, toml)?;
    let env = std::collections::BTreeMap::from([("DATABASE_URL".to_owned(), url)]);
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
    // Prometheus is ready within a second of starting.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let waves: Vec<String> = (0..10)
        .map(|k| format!("label_replace(sin(vector(time() / 300)) + {k}, 'k', '{k}', '', '')"))
        .collect();
    let line = format!(
        "/metrics query promql:\"{}\" range:1h step:4s",
        waves.join(" or ")
    );
    let mut events = emulator.subscribe();
    let mut samples = Vec::with_capacity(args.queries);
    let mut size = 0;
    for i in 0..args.queries + 2 {
        let sent = Instant::now();
        let id = emulator
            .type_line(member, channel, &line)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let answer = loop {
            let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
                .await
                .context("no answer within 30 s")??;
            if event.interaction_id == Some(id) && matches!(event.event, "reply" | "edit") {
                break event;
            }
        };
        let took = sent.elapsed();
        anyhow::ensure!(
            answer.files.len() == 1,
            "no chart attached: {}",
            answer.content
        );
        size = answer.files[0].1.len();
        // The first two warm up the pool, the poise command tree and the font.
        if i >= 2 {
            samples.push(took);
        }
    }
    services.stop().await?;
    shutdown.cancel();
    opsbot_bench::drop_database(&args.server, &db_name).await?;
    let _ = std::fs::remove_dir_all(&dir);
    samples.sort();
    Ok((samples, size))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_writer(std::io::stderr)
        .init();
    let mut out = std::io::stdout().lock();
    // Other work on the machine shows in every figure: say how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    writeln!(
        out,
        "load average at start: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )?;
    writeln!(out, "| what | n | p50 ms | p99 ms | max ms | PNG KiB |")?;
    writeln!(out, "|---|---|---|---|---|---|")?;
    let (renders, size) = tokio::task::spawn_blocking({
        let n = args.renders;
        move || render_latency(n)
    })
    .await??;
    writeln!(
        out,
        "| render 10 series × 1,000 points | {} | {} | {} | {} | {} |",
        renders.len(),
        ms(percentile(&renders, 50.0)),
        ms(percentile(&renders, 99.0)),
        ms(renders.last().copied().unwrap_or_default()),
        size.div_ceil(1024)
    )?;
    if args.queries == 0 {
        return Ok(());
    }
    if !std::path::Path::new(PROMETHEUS).exists() {
        writeln!(out, "(end to end skipped: {PROMETHEUS} is missing)")?;
        return Ok(());
    }
    let (queries, size) = query_latency(&args).await?;
    writeln!(
        out,
        "| /metrics query, 10 series × 901 points, end to end | {} | {} | {} | {} | {} |",
        queries.len(),
        ms(percentile(&queries, 50.0)),
        ms(percentile(&queries, 99.0)),
        ms(queries.last().copied().unwrap_or_default()),
        size.div_ceil(1024)
    )?;
    Ok(())
}
