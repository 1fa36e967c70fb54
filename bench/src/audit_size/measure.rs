//! The measurements of `audit-size` besides the page timings: exports (time, bytes, memory
//! of this process while it serves them), `opsbot audit verify` as the real CLI under
//! `/usr/bin/time -v`, and appends per second from concurrent clients.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use opsbot_commands::Source;
use opsbot_commands::audit::{AuditQuery, NewEvent, Outcome, QUERY_MAX_LIMIT};
use sqlx::PgPool;

/// Resident memory of this process now, in KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse().ok())
        })
        .unwrap_or(0)
}

/// One export through the server.
#[derive(Debug)]
pub struct Exported {
    pub took: Duration,
    pub bytes: u64,
    pub lines: u64,
    /// RSS before the request and the highest RSS sampled (every 2 ms) while it ran, KiB.
    pub rss_before: u64,
    pub rss_peak: u64,
    /// The same pages through the domain's query on a pool: the raw baseline.
    pub raw: Duration,
}

/// Downloads `url`, counting bytes and lines without keeping them, while a thread samples
/// this process's RSS; then pages through `filter` directly as the export does.
pub async fn export(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    pool: &PgPool,
    filter: &AuditQuery,
) -> anyhow::Result<Exported> {
    let rss_before = rss_kib();
    let peak = Arc::new(AtomicU64::new(rss_before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let start = Instant::now();
    let mut answer = client.get(url).bearer_auth(token).send().await?;
    anyhow::ensure!(answer.status().is_success(), "{url}: {}", answer.status());
    let (mut bytes, mut lines) = (0u64, 0u64);
    while let Some(chunk) = answer.chunk().await? {
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let took = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();

    let start = Instant::now();
    let mut q = AuditQuery {
        limit: QUERY_MAX_LIMIT,
        ..filter.clone()
    };
    loop {
        let page = opsbot_commands::audit::query(pool, &q).await?;
        match page.next_cursor {
            Some(cursor) => q.before_id = Some(cursor),
            None => break,
        }
    }
    Ok(Exported {
        took,
        bytes,
        lines,
        rss_before,
        rss_peak: peak.load(Ordering::Relaxed),
        raw: start.elapsed(),
    })
}

/// `opsbot audit verify` as a user runs it, under `/usr/bin/time -v`: its stdout's first
/// line, wall time and peak RSS (KiB).
pub fn verify(
    opsbot: &std::path::Path,
    config: &std::path::Path,
    env: &[(&str, &str)],
) -> anyhow::Result<(String, Duration, u64)> {
    let start = Instant::now();
    let out = std::process::Command::new("/usr/bin/time")
        .arg("-v")
        .arg(opsbot)
        .arg("--config")
        .arg(config)
        .args(["audit", "verify"])
        .envs(env.iter().copied())
        .output()
        .context("running opsbot audit verify under /usr/bin/time")?;
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let rss = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let first = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    anyhow::ensure!(
        out.status.success(),
        "opsbot audit verify failed: {first}\n{stderr}"
    );
    Ok((first, took, rss))
}

/// Appends per second by `clients` concurrent clients, each appending one event at a time
/// (its own autocommit transaction, as a command outside a bigger one does) for `secs`.
pub async fn appends_per_second(pool: &PgPool, clients: usize, secs: u64) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let event = NewEvent {
                    actor_id: 900 + client as i64,
                    actor_name: format!("writer{client}"),
                    source: Source::Discord,
                    guild_id: Some(4242),
                    channel_id: Some(7001),
                    interaction_id: None,
                    command: "deploy run".into(),
                    args: serde_json::json!({"service": "svc3", "environment": "staging", "version": format!("v2.{n}")}),
                    outcome: Outcome::Ok,
                    detail: format!("deployed v2.{n} to svc3"),
                    correlation_id: None,
                };
                opsbot_commands::audit::append(&pool, &event).await?;
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}
