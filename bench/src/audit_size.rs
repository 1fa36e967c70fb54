//! The audit trail at size (issue 14): N synthetic events (see `audit_size/load.rs` for
//! their shape), then each query of the dashboard's audit log (`/`) and of `GET /api/audit`
//! timed through the real server beside the same query functions called on a pool, the CSV
//! and JSONL exports of 100 k rows (time, memory), `opsbot audit verify` as the real CLI,
//! and appends per second with and without the issue-14 indexes.
//!
//! ```text
//! cargo build --release -p opsbot -p opsbot-bench
//! target/release/audit-size --events 1000000
//! target/release/audit-size --events 10000000
//! ```
//!
//! The server is `opsbot run`'s services in this process (no Discord), authenticated by a
//! dashboard token: each request passes the token check, the desk's `audit:read` check, the
//! queries, the rendering and (for the API) the audit record of the read. "raw" is the same
//! domain query functions (same SQL, same binds) called on a pool with no HTTP around them:
//! `query` for the API; `query`, `count_matching`, `known_commands` (and `newer_matching`
//! on an older page), one after the other, for the dashboard page, which runs them
//! concurrently. The database is dropped at the end (`--keep` leaves it). Measure on a quiet
//! machine.

#[path = "audit_size/load.rs"]
mod load;
#[path = "audit_size/measure.rs"]
mod measure;

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use opsbot::config::Config;
use opsbot::run::{HttpBind, Services};
use opsbot::web::api::{parse_filters, query_pairs};
use opsbot_bench::{load_average, ms, percentile};
use opsbot_commands::audit::browse::{COUNT_BOUND, count_matching, known_commands, newer_matching};
use opsbot_commands::audit::{AuditQuery, query};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "bench-audit-size-dashboard-token-32-bytes";

/// The indexes issue 14 added, by what they serve: dropped in turn to measure appends
/// without them.
const TEXT_INDEXES: [&str; 1] = ["audit_events_text_trgm_idx"];
const FILTER_INDEXES: [&str; 4] = [
    "audit_events_outcome_idx",
    "audit_events_source_idx",
    "audit_events_actor_name_idx",
    "audit_events_group_idx",
];

#[derive(Debug, Parser)]
struct Args {
    /// Audit events to load.
    #[arg(long, default_value_t = 1_000_000)]
    events: i64,
    /// Timed requests per query (after two untimed ones).
    #[arg(long, default_value_t = 20)]
    requests: usize,
    /// Rows each export returns.
    #[arg(long, default_value_t = 100_000)]
    export_rows: i64,
    /// Concurrent appending clients for the write path.
    #[arg(long, default_value_t = 8)]
    write_clients: usize,
    /// Seconds each write-path measurement lasts (0: skip it).
    #[arg(long, default_value_t = 10)]
    write_seconds: u64,
    /// The `opsbot` binary for `opsbot audit verify` (default: beside this one).
    #[arg(long)]
    opsbot: Option<std::path::PathBuf>,
    /// Leave the database in place (its name is printed) instead of dropping it.
    #[arg(long)]
    keep: bool,
    /// A PostgreSQL server to create the benchmark's database in.
    #[arg(
        long,
        env = "BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    server: String,
}

/// p50 and p95 of `samples`, sorted in place.
fn p50_p95(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    (percentile(samples, 50.0), percentile(samples, 95.0))
}

fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}", a.as_secs_f64() / b.as_secs_f64().max(1e-9))
}

/// The dashboard's queries for one page, one after the other.
async fn raw_dashboard(pool: &PgPool, filter: &AuditQuery) -> anyhow::Result<i64> {
    let page = query(pool, filter).await?;
    let count = count_matching(pool, filter, COUNT_BOUND).await?;
    known_commands(pool).await?;
    if filter.before_id.is_some() {
        let newest = page.events.first().map_or(0, |e| e.id);
        newer_matching(pool, filter, newest, filter.limit + 1).await?;
    }
    Ok(count)
}

/// Times one query (`qs`, a query string) four ways, interleaved; returns its table row.
async fn time_case(
    client: &reqwest::Client,
    base: &str,
    pool: &PgPool,
    name: &str,
    qs: &str,
    requests: usize,
) -> anyhow::Result<String> {
    let filter = parse_filters(&query_pairs(Some(qs))).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (mut api, mut raw, mut dash, mut raw_dash) = (vec![], vec![], vec![], vec![]);
    let mut shown = 0;
    let mut matching = 0;
    for i in 0..requests + 2 {
        let start = Instant::now();
        let answer = client
            .get(format!("{base}/api/audit?{qs}"))
            .bearer_auth(TOKEN)
            .send()
            .await?;
        anyhow::ensure!(answer.status().is_success(), "{name}: {}", answer.status());
        let body: serde_json::Value = answer.json().await?;
        let api_took = start.elapsed();
        shown = body["events"].as_array().map_or(0, Vec::len);

        let start = Instant::now();
        query(pool, &filter).await?;
        let raw_took = start.elapsed();

        let start = Instant::now();
        let answer = client
            .get(format!("{base}/?{qs}"))
            .bearer_auth(TOKEN)
            .send()
            .await?;
        anyhow::ensure!(
            answer.status().is_success(),
            "{name} page: {}",
            answer.status()
        );
        answer.bytes().await?;
        let dash_took = start.elapsed();

        let start = Instant::now();
        matching = raw_dashboard(pool, &filter).await?;
        let raw_dash_took = start.elapsed();
        if i >= 2 {
            api.push(api_took);
            raw.push(raw_took);
            dash.push(dash_took);
            raw_dash.push(raw_dash_took);
        }
    }
    let (api, raw, dash, raw_dash) = (
        p50_p95(&mut api),
        p50_p95(&mut raw),
        p50_p95(&mut dash),
        p50_p95(&mut raw_dash),
    );
    let matching = if matching > COUNT_BOUND {
        format!("{COUNT_BOUND}+")
    } else {
        matching.to_string()
    };
    Ok(format!(
        "| {name} | {shown} / {matching} | {} / {} | {} / {} | {} | {} / {} | {} / {} | {} |",
        ms(api.0),
        ms(api.1),
        ms(raw.0),
        ms(raw.1),
        ratio(api.0, raw.0),
        ms(dash.0),
        ms(dash.1),
        ms(raw_dash.0),
        ms(raw_dash.1),
        ratio(dash.0, raw_dash.0),
    ))
}

/// `at` of event `id`, as RFC 3339.
async fn at_of(pool: &PgPool, id: i64) -> anyhow::Result<String> {
    let at: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT at FROM audit_events WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await?;
    Ok(at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

fn encode(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter("warn,sqlx=error")
        .with_writer(std::io::stderr)
        .init();
    let opsbot = match &args.opsbot {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory")?
            .join("opsbot"),
    };

    let (db_name, url) = opsbot_bench::create_database(&args.server, "opsbot_bench").await?;
    let toml =
        "[http]\nlisten = \"127.0.0.1:0\"\ndashboard_tokens = [\"env:BENCH_DASHBOARD_TOKEN\"]\n";
    let config_path = std::env::temp_dir().join(format!("{db_name}.toml"));
    std::fs::write(&config_path, toml)?;
    let env_pairs = [
        ("DATABASE_URL", url.as_str()),
        ("BENCH_DASHBOARD_TOKEN", TOKEN),
    ];
    let env = env_pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let config =
        Config::load_with_env(Some(&config_path), &env).map_err(|e| anyhow::anyhow!("{e}"))?;
    let shutdown = CancellationToken::new();
    let services = Services::start(&config, None, HttpBind::Required, shutdown.clone()).await?;
    let base = format!("http://{}", services.http_addr.context("no HTTP server")?);
    let pool = services.db.pool.clone();
    let mut out: Vec<String> = Vec::new();

    let loaded = load::load(&pool, args.events).await?;
    out.push(format!(
        "{} events: inserted and queued in {:.1} s, sealed by the real sealer in {:.1} s",
        args.events,
        loaded.insert.as_secs_f64(),
        loaded.seal.as_secs_f64()
    ));
    for (name, took) in &loaded.indexes {
        out.push(format!(
            "  index {name} built in {:.1} s",
            took.as_secs_f64()
        ));
    }
    for (name, mib) in load::sizes(&pool).await? {
        out.push(format!("  size {name}: {mib:.0} MiB"));
    }

    let (min_id, max_id): (i64, i64) = sqlx::query_as("SELECT min(id), max(id) FROM audit_events")
        .fetch_one(&pool)
        .await?;
    let middle = min_id + (max_id - min_id) / 2;
    let day = (max_id - min_id) / 180;
    let range = format!(
        "since={}&until={}",
        encode(&at_of(&pool, middle).await?),
        encode(&at_of(&pool, middle + day).await?)
    );
    let cases: Vec<(&str, String)> = vec![
        ("newest page", String::new()),
        ("deep keyset page", format!("cursor={}", min_id + 1000)),
        ("actor (name)", "actor=MEMBER17".into()),
        ("command group", "command=incident".into()),
        ("outcome", "outcome=denied".into()),
        ("source", "source=shell".into()),
        ("time range (1 day, 90 days ago)", range),
        ("text, rare word", format!("q={}", load::RARE_WORD)),
        ("text, common word", format!("q={}", load::COMMON_WORD)),
        (
            "outcome, deep keyset page",
            format!("outcome=denied&cursor={}", min_id + 100_000),
        ),
    ];
    let client = reqwest::Client::new();
    let load_before = load_average();
    out.push(String::new());
    out.push(
        "| query | shown / matching | API p50 / p95 ms | raw p50 / p95 ms | API ÷ raw (p50) | dashboard p50 / p95 ms | raw p50 / p95 ms | dashboard ÷ raw (p50) |"
            .into(),
    );
    out.push("|---|---|---|---|---|---|---|---|".into());
    for (name, qs) in &cases {
        out.push(time_case(&client, &base, &pool, name, qs, args.requests).await?);
        eprintln!("{}", out.last().map_or("", String::as_str));
    }
    out.push(format!("load average {load_before} → {}", load_average()));

    // Exports: the newest `export_rows` events but the last 1000, by time range.
    let until_id = max_id - 1000;
    let since_id = until_id - args.export_rows;
    let export_qs = format!(
        "since={}&until={}",
        encode(&at_of(&pool, since_id).await?),
        encode(&at_of(&pool, until_id).await?)
    );
    let filter =
        parse_filters(&query_pairs(Some(&export_qs))).map_err(|e| anyhow::anyhow!("{e}"))?;
    out.push(String::new());
    out.push("| export | rows | MiB | time s | raw pages s | RSS before MiB | RSS peak during MiB | growth MiB |".into());
    out.push("|---|---|---|---|---|---|---|---|".into());
    for ext in ["csv", "jsonl"] {
        let url = format!("{base}/api/audit.{ext}?{export_qs}");
        let e = measure::export(&client, &url, TOKEN, &pool, &filter).await?;
        let mib = |kib: u64| kib as f64 / 1024.0;
        out.push(format!(
            "| {ext} | {} | {:.1} | {:.2} | {:.2} | {:.1} | {:.1} | {:.1} |",
            e.lines,
            e.bytes as f64 / (1024.0 * 1024.0),
            e.took.as_secs_f64(),
            e.raw.as_secs_f64(),
            mib(e.rss_before),
            mib(e.rss_peak),
            mib(e.rss_peak.saturating_sub(e.rss_before)),
        ));
        eprintln!("{}", out.last().map_or("", String::as_str));
    }

    let load_verify = load_average();
    let (said, took, rss) = measure::verify(&opsbot, &config_path, &env_pairs)?;
    out.push(String::new());
    out.push(format!(
        "opsbot audit verify: \"{said}\" in {:.1} s, peak RSS {:.1} MiB (load {load_verify})",
        took.as_secs_f64(),
        rss as f64 / 1024.0
    ));
    eprintln!("{}", out.last().map_or("", String::as_str));

    if args.write_seconds > 0 {
        let mut rates = Vec::new();
        let with_all =
            measure::appends_per_second(&pool, args.write_clients, args.write_seconds).await?;
        rates.push(("all indexes", with_all));
        for name in TEXT_INDEXES {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP INDEX IF EXISTS {name}")))
                .execute(&pool)
                .await?;
        }
        let without_text =
            measure::appends_per_second(&pool, args.write_clients, args.write_seconds).await?;
        rates.push(("without the trigram index", without_text));
        for name in FILTER_INDEXES {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP INDEX IF EXISTS {name}")))
                .execute(&pool)
                .await?;
        }
        let without_any =
            measure::appends_per_second(&pool, args.write_clients, args.write_seconds).await?;
        rates.push(("without any issue-14 index", without_any));
        out.push(String::new());
        out.push(format!(
            "appends/s, {} clients, {} s each (load {})",
            args.write_clients,
            args.write_seconds,
            load_average()
        ));
        for (what, rate) in rates {
            out.push(format!("  {what}: {rate:.0}"));
        }
    }

    services.stop().await?;
    shutdown.cancel();
    let _ = std::fs::remove_file(&config_path);
    if args.keep {
        out.push(format!("database kept: {url}"));
    } else {
        opsbot_bench::drop_database(&args.server, &db_name).await?;
    }
    let mut stdout = std::io::stdout().lock();
    for line in out {
        writeln!(stdout, "{line}")?;
    }
    Ok(())
}
