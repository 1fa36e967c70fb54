//! Mixed command load through the Discord emulator, with the figures per minute (so drift
//! shows), the knee (the highest rate whose p99 stays under 100 ms), and overload.
//!
//! ```text
//! cargo build --release -p opsbot-bench --bin load
//! target/release/load mix --rate 200 --seconds 300                 # sustained, per minute
//! target/release/load mix --rate 200 --seconds 120 --alerts-rate 20 # with webhook traffic
//! target/release/load knee --from 250 --step 250 --to 2000 --seconds 15
//! target/release/load mix --rate 1000 --seconds 30                 # overload
//! ```
//!
//! The bot is the real one (`Services`: poise commands, desk, audit trail, outbox, tracker,
//! sealer, HTTP server) connected to the emulator, all in this one process on the machine's
//! two cores with the load generator. The mix is 20 % `/whoami`, 30 % `/audit recent`,
//! 40 % `/deploy status` and 10 % `/deploy run` (each run on its own service, production
//! needing an approval, so every one creates a deploy). Latency is from the emulator
//! dispatching `INTERACTION_CREATE` to its receiving the interaction response. "Busy" answers
//! (load shedding) are counted apart from errors. Beside it, in the same run: the raw
//! group-commit rate of single-row `INSERT`s from 8 concurrent connections, the ceiling an
//! audited action has on this disk.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use opsbot::config::Config;
use opsbot::discord::GatewaySettings;
use opsbot::emulator::{Emulator, EmulatorEvent};
use opsbot::run::{HttpBind, Services};
use opsbot_bench::{load_average, ms, peak_rss_mib, percentile};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
struct Args {
    #[command(subcommand)]
    mode: Mode,
    /// A PostgreSQL server to create the benchmark's database in.
    #[arg(
        long,
        global = true,
        env = "BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    server: String,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// One rate for a while; a line per minute.
    Mix {
        #[arg(long, default_value_t = 200)]
        rate: u32,
        #[arg(long, default_value_t = 300)]
        seconds: u32,
        /// Alertmanager deliveries per second alongside (0: none).
        #[arg(long, default_value_t = 0)]
        alerts_rate: u32,
    },
    /// Rates from `from` to `to` by `step`, `seconds` each; a line per rate.
    Knee {
        #[arg(long, default_value_t = 250)]
        from: u32,
        #[arg(long, default_value_t = 250)]
        step: u32,
        #[arg(long, default_value_t = 2000)]
        to: u32,
        #[arg(long, default_value_t = 15)]
        seconds: u32,
    },
}

const ALERTS_CHANNEL: u64 = 333_000_000_000_000_333;
const ALERT_TOKEN: &str = "load-benchmark-alert-token";

/// One command sent: when, and which kind.
struct Sent {
    at: Instant,
    kind: &'static str,
}

/// What came back for one interaction.
#[derive(Clone, Copy)]
struct Answer {
    at: Instant,
    error: bool,
    busy: bool,
}

fn classify(event: &EmulatorEvent) -> Answer {
    let content = event.content.as_str();
    Answer {
        at: Instant::now(),
        busy: content.contains("opsbot is busy"),
        error: content.starts_with('❌') || content.starts_with('⚠') || content.starts_with('⛔'),
    }
}

/// Single-row INSERT + COMMIT from 8 connections for `seconds`: rows per second.
async fn raw_group_commit(pool: &sqlx::PgPool, seconds: u64) -> anyhow::Result<f64> {
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS bench_commit (id bigserial PRIMARY KEY, at timestamptz DEFAULT now(), body text)")
        .execute(pool)
        .await?;
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut clients = Vec::new();
    for _ in 0..8 {
        let pool = pool.clone();
        clients.push(tokio::spawn(async move {
            let mut conn = pool.acquire().await?;
            let mut rows = 0u64;
            while Instant::now() < until {
                sqlx::query("INSERT INTO bench_commit (body) VALUES ($1)")
                    .bind("an audited action")
                    .execute(&mut *conn)
                    .await?;
                rows += 1;
            }
            Ok::<u64, sqlx::Error>(rows)
        }));
    }
    let started = Instant::now();
    let mut total = 0;
    for client in clients {
        total += client.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// The resident memory of this process now, in MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Bench {
    services: Services,
    emulator: Emulator,
    shutdown: CancellationToken,
    member: u64,
    channel: u64,
    db_name: String,
    config_path: std::path::PathBuf,
}

async fn start(server: &str, deploy_runs: usize) -> anyhow::Result<Bench> {
    let (db_name, url) = opsbot_bench::create_database(server, "opsbot_bench_load").await?;
    let token_path = std::env::temp_dir().join(format!("{db_name}.token"));
    std::fs::write(&token_path, ALERT_TOKEN)?;
    let mut toml = format!(
        "[roles]\nops = [\"deploy:*\", \"audit:read\"]\n[http]\nlisten = \"127.0.0.1:0\"\n\
         [environments.production]\napprovals = 1\n[channels]\nalerts = {ALERTS_CHANNEL}\n\
         [alerts]\nwebhook_token = \"file:{}\"\n[[alerts.routes]]\nchannel = {ALERTS_CHANNEL}\n",
        token_path.display()
    );
    for i in 0..deploy_runs.max(1) {
        toml.push_str(&format!(
            "[[services]]\nname = \"svc-{i}\"\nenvironments = [\"production\"]\nbackend = {{ kind = \"command\", program = \"/bin/true\" }}\n"
        ));
    }
    let config_path = std::env::temp_dir().join(format!("{db_name}.toml"));
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
    let _ = std::fs::remove_file(&token_path);
    Ok(Bench {
        services,
        emulator,
        shutdown,
        member,
        channel,
        db_name,
        config_path,
    })
}

impl Bench {
    async fn stop(self, server: &str) -> anyhow::Result<()> {
        self.services.stop().await?;
        self.shutdown.cancel();
        opsbot_bench::drop_database(server, &self.db_name).await?;
        let _ = std::fs::remove_file(&self.config_path);
        Ok(())
    }

    /// Sends the mix at `rate` for `seconds` (deploy runs numbered from `first_run`); returns
    /// what was sent and what came back, waiting up to 10 s for late answers.
    async fn drive(
        &self,
        rate: u32,
        seconds: u32,
        first_run: &mut usize,
        minute_rss: &mut Vec<f64>,
    ) -> (HashMap<u64, Sent>, HashMap<u64, Answer>, usize) {
        let mut events = self.emulator.subscribe();
        let stop = CancellationToken::new();
        let collecting = stop.clone();
        let answers: Arc<Mutex<HashMap<u64, Answer>>> = Arc::default();
        let collected = answers.clone();
        let collector = tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = collecting.cancelled() => break,
                    event = events.recv() => match event {
                        Ok(event) => {
                            if let Some(id) = event.interaction_id
                                && matches!(event.event, "reply" | "edit")
                            {
                                let answer = classify(&event);
                                collected
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .entry(id)
                                    .or_insert(answer);
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => break,
                    },
                }
            }
        });
        let total = (u64::from(rate) * u64::from(seconds)) as usize;
        let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
        let mut sent = HashMap::with_capacity(total);
        let mut refused = 0;
        let start = Instant::now();
        let mut next_minute = start + Duration::from_secs(60);
        for i in 0..total {
            let due = start + interval * i as u32;
            tokio::time::sleep_until(due.into()).await;
            if Instant::now() >= next_minute {
                minute_rss.push(rss_mib());
                next_minute += Duration::from_secs(60);
            }
            let (kind, line) = match i % 10 {
                0 | 1 => ("whoami", "/whoami".to_owned()),
                2..=4 => ("audit recent", "/audit recent count:10".to_owned()),
                5..=8 => ("deploy status", "/deploy status".to_owned()),
                _ => {
                    let n = *first_run;
                    *first_run += 1;
                    (
                        "deploy run",
                        format!("/deploy run service:svc-{n} version:v1.0.{n} env:production"),
                    )
                }
            };
            match self.emulator.type_line(self.member, self.channel, &line) {
                Ok(id) => {
                    sent.insert(
                        id,
                        Sent {
                            at: Instant::now(),
                            kind,
                        },
                    );
                }
                Err(_) => refused += 1,
            }
        }
        minute_rss.push(rss_mib());
        // Late answers: at most 10 s more.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answered = answers.lock().unwrap_or_else(|p| p.into_inner()).len();
            if answered >= sent.len() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.cancel();
        let _ = collector.await;
        let answers = std::mem::take(&mut *answers.lock().unwrap_or_else(|p| p.into_inner()));
        (sent, answers, refused)
    }
}

/// p50, p99, max of the answered latencies among `ids`, and (answered, errors, busy, late):
/// late = answered after Discord's 3 s or never.
struct Figures {
    count: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    errors: usize,
    busy: usize,
    late: usize,
}

fn figures<'a>(
    sent: impl Iterator<Item = (&'a u64, &'a Sent)>,
    answers: &HashMap<u64, Answer>,
) -> Figures {
    let mut latencies = Vec::new();
    let (mut errors, mut busy, mut late, mut count) = (0, 0, 0, 0);
    for (id, s) in sent {
        count += 1;
        match answers.get(id) {
            Some(answer) => {
                let latency = answer.at.duration_since(s.at);
                if latency > Duration::from_secs(3) {
                    late += 1;
                }
                if answer.busy {
                    busy += 1;
                } else if answer.error {
                    errors += 1;
                }
                latencies.push(latency);
            }
            None => late += 1,
        }
    }
    latencies.sort();
    Figures {
        count,
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        max: latencies.last().copied().unwrap_or_default(),
        errors,
        busy,
        late,
    }
}

/// Alertmanager deliveries at `rate` per second until `stop`: (sent, refused).
async fn alert_traffic(
    addr: std::net::SocketAddr,
    rate: u32,
    stop: CancellationToken,
) -> (u64, u64) {
    let client = reqwest::Client::new();
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut ticker = tokio::time::interval(interval);
    let (mut sent, mut failed) = (0u64, 0u64);
    let mut n = 0u64;
    while !stop.is_cancelled() {
        ticker.tick().await;
        n += 1;
        let name = format!("Load{}", n % 50);
        let status = if n.is_multiple_of(7) {
            "resolved"
        } else {
            "firing"
        };
        let body = serde_json::json!({
            "version": "4", "groupKey": format!("{{}}:{{alertname=\"{name}\"}}"), "status": status,
            "receiver": "opsbot", "groupLabels": {"alertname": name},
            "commonLabels": {"alertname": name, "service": "api", "severity": "warning"},
            "commonAnnotations": {}, "externalURL": "http://am:9093", "truncatedAlerts": 0,
            "alerts": [{"status": status, "labels": {"alertname": name, "instance": "api-0"},
                        "annotations": {}, "startsAt": "2026-12-01T10:00:00Z",
                        "endsAt": if status == "resolved" { "2026-12-01T10:05:00Z" } else { "0001-01-01T00:00:00Z" },
                        "generatorURL": "", "fingerprint": format!("fp-{name}")}],
        });
        let client = client.clone();
        sent += 1;
        match client
            .post(format!("http://{addr}/webhooks/alertmanager"))
            .bearer_auth(ALERT_TOKEN)
            .json(&body)
            .timeout(Duration::from_secs(10))
            .send()
            .await
        {
            Ok(response) if response.status().is_success() => {}
            _ => failed += 1,
        }
    }
    (sent, failed)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter("error")
        .with_writer(std::io::stderr)
        .init();
    let load_before = load_average();
    let mut out = std::io::stdout().lock();
    match args.mode {
        Mode::Mix {
            rate,
            seconds,
            alerts_rate,
        } => {
            let runs = (u64::from(rate) * u64::from(seconds) / 10 + 1) as usize;
            let bench = start(&args.server, runs).await?;
            let alerts_stop = CancellationToken::new();
            let alerts = match (alerts_rate, bench.services.http_addr) {
                (0, _) | (_, None) => None,
                (rate, Some(addr)) => {
                    Some(tokio::spawn(alert_traffic(addr, rate, alerts_stop.clone())))
                }
            };
            let mut first_run = 0;
            let mut rss = Vec::new();
            let started = Instant::now();
            let (sent, answers, refused) =
                bench.drive(rate, seconds, &mut first_run, &mut rss).await;
            alerts_stop.cancel();
            let alert_figures = match alerts {
                Some(task) => Some(task.await?),
                None => None,
            };
            let raw = raw_group_commit(&bench.services.db.pool, 5).await?;
            writeln!(
                out,
                "mix at {rate} cmd/s for {seconds} s, alerts {alerts_rate}/s; load average {load_before} → {}",
                load_average()
            )?;
            writeln!(
                out,
                "| minute | commands | p50 ms | p99 ms | max ms | errors | busy | late (>3 s or never) | RSS MiB |"
            )?;
            writeln!(out, "|---|---|---|---|---|---|---|---|---|")?;
            let minutes = (seconds as usize).div_ceil(60);
            for minute in 0..minutes {
                let from = started + Duration::from_secs(60 * minute as u64);
                let to = from + Duration::from_secs(60);
                let f = figures(
                    sent.iter().filter(|(_, s)| s.at >= from && s.at < to),
                    &answers,
                );
                writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {:.0} |",
                    minute + 1,
                    f.count,
                    ms(f.p50),
                    ms(f.p99),
                    ms(f.max),
                    f.errors,
                    f.busy,
                    f.late,
                    rss.get(minute).copied().unwrap_or_default(),
                )?;
            }
            let all = figures(sent.iter(), &answers);
            writeln!(
                out,
                "| all | {} | {} | {} | {} | {} | {} | {} | peak {:.0} |",
                all.count,
                ms(all.p50),
                ms(all.p99),
                ms(all.max),
                all.errors + refused,
                all.busy,
                all.late,
                peak_rss_mib()
            )?;
            for kind in ["whoami", "audit recent", "deploy status", "deploy run"] {
                let f = figures(sent.iter().filter(|(_, s)| s.kind == kind), &answers);
                writeln!(
                    out,
                    "  {kind}: {} sent, p50 {} ms, p99 {} ms, errors {}, busy {}",
                    f.count,
                    ms(f.p50),
                    ms(f.p99),
                    f.errors,
                    f.busy
                )?;
            }
            if let Some((sent, failed)) = alert_figures {
                writeln!(
                    out,
                    "  alert deliveries: {sent} sent, {failed} not answered 2xx"
                )?;
            }
            writeln!(
                out,
                "raw group commit (8 clients, single-row INSERT): {raw:.0} rows/s"
            )?;
            bench.stop(&args.server).await?;
        }
        Mode::Knee {
            from,
            step,
            to,
            seconds,
        } => {
            let mut rates = Vec::new();
            let mut rate = from.max(1);
            while rate <= to {
                rates.push(rate);
                rate += step.max(1);
            }
            let runs: u64 = rates
                .iter()
                .map(|r| u64::from(*r) * u64::from(seconds) / 10 + 1)
                .sum();
            let bench = start(&args.server, runs as usize).await?;
            let raw = raw_group_commit(&bench.services.db.pool, 5).await?;
            writeln!(
                out,
                "knee, {seconds} s per rate; load average {load_before}"
            )?;
            writeln!(
                out,
                "| rate cmd/s | commands | p50 ms | p99 ms | max ms | errors | busy | late | RSS MiB |"
            )?;
            writeln!(out, "|---|---|---|---|---|---|---|---|---|")?;
            let mut first_run = 0;
            let mut knee = None;
            for rate in rates {
                let mut rss = Vec::new();
                let (sent, answers, refused) =
                    bench.drive(rate, seconds, &mut first_run, &mut rss).await;
                let f = figures(sent.iter(), &answers);
                writeln!(
                    out,
                    "| {rate} | {} | {} | {} | {} | {} | {} | {} | {:.0} |",
                    f.count,
                    ms(f.p50),
                    ms(f.p99),
                    ms(f.max),
                    f.errors + refused,
                    f.busy,
                    f.late,
                    rss.last().copied().unwrap_or_default()
                )?;
                out.flush()?;
                if f.p99 < Duration::from_millis(100) && f.errors + refused + f.busy + f.late == 0 {
                    knee = Some(rate);
                }
            }
            writeln!(
                out,
                "knee (p99 < 100 ms, nothing refused or late): {} cmd/s; raw group commit (8 clients): {raw:.0} rows/s; ratio {}; load average after {}",
                knee.map_or("none".to_owned(), |k| k.to_string()),
                knee.map_or("-".to_owned(), |k| format!(
                    "{:.0} %",
                    100.0 * f64::from(k) / raw
                )),
                load_average()
            )?;
            bench.stop(&args.server).await?;
        }
    }
    Ok(())
}
