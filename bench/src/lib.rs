//! What every benchmark of `opsbot-bench` measures the same way: percentiles, milliseconds
//! as printed in BENCHMARKS.md, peak memory, and how busy the machine was.

use std::time::Duration;

/// The `p`th percentile (0–100) of `sorted`, by nearest rank; zero for no samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// Peak resident memory of this process, in MiB.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` says them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A fresh database on `server` (a PostgreSQL URL whose role may create databases) for one
/// run: its name (`{prefix}_{pid}`) and URL. Drop it with [`drop_database`].
pub async fn create_database(server: &str, prefix: &str) -> anyhow::Result<(String, String)> {
    use anyhow::Context as _;
    let admin = sqlx::PgPool::connect(server)
        .await
        .context("connecting to --server")?;
    let name = format!("{prefix}_{}", std::process::id());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await?;
    admin.close().await;
    let base = server.rsplit_once('/').map_or(server, |(base, _)| base);
    let url = format!("{base}/{name}");
    Ok((name, url))
}

/// Drops the database [`create_database`] made, connections and all.
pub async fn drop_database(server: &str, name: &str) -> anyhow::Result<()> {
    let admin = sqlx::PgPool::connect(server).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await?;
    admin.close().await;
    Ok(())
}
