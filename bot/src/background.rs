//! Every background loop of `opsbot run` goes through here: a name, an interval, optionally
//! a lease (so that one replica at a time runs it, the others standing by), and its liveness
//! in `/metrics` as `opsbot_background_last_success_timestamp_seconds{loop}`. `run.rs`
//! registers each loop in one place.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use opsbot_commands::lease::{LeaseKeeper, Leases};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A replica-exclusive loop's lease outlives this many of its intervals (at least
/// [`LEASE_MIN`]), so a replica that stopped is replaced within that time.
const LEASE_INTERVALS: u32 = 3;
const LEASE_MIN: Duration = Duration::from_secs(15);

/// Records that loop `name` just did its work.
pub fn succeeded(name: &'static str) {
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    metrics::gauge!("opsbot_background_last_success_timestamp_seconds", "loop" => name).set(now);
}

/// The lease a replica-exclusive loop of `interval` holds.
pub fn lease_ttl(interval: Duration) -> Duration {
    (interval * LEASE_INTERVALS).max(LEASE_MIN)
}

/// What one loop is: its name, how often it runs, whether one replica at a time runs it,
/// and what else wakes it early.
#[derive(Debug, Clone)]
pub struct Loop {
    pub name: &'static str,
    pub interval: Duration,
    /// Hold the lease of this name to run (the loop's name, usually); `None` for work every
    /// replica does (e.g. flushing its own counters).
    pub lease: Option<&'static str>,
    pub wake: Option<Arc<Notify>>,
}

/// Starts `step` every `interval` (or when woken) until `shutdown`; errors are logged and
/// retried next round, success is recorded for `/metrics`. With a lease, a replica that does
/// not hold it skips the round; the lease is released at shutdown.
pub fn spawn<F, Fut, E>(
    tasks: &TaskTracker,
    leases: &Leases,
    spec: Loop,
    shutdown: CancellationToken,
    mut step: F,
) where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display + Send,
{
    let mut keeper = spec
        .lease
        .map(|name| LeaseKeeper::new(leases.clone(), name, lease_ttl(spec.interval)));
    tasks.spawn(async move {
        tracing::debug!(name = spec.name, interval = ?spec.interval, "background loop started");
        let mut tick = tokio::time::interval(spec.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let woken = async {
                match &spec.wake {
                    Some(wake) => wake.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
                () = woken => {}
            }
            if let Some(keeper) = keeper.as_mut() {
                match keeper.hold().await {
                    Ok(Some(_)) => {}
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(name = spec.name, error = %e, "background loop: the lease could not be checked; retrying");
                        continue;
                    }
                }
            }
            match step().await {
                Ok(()) => succeeded(spec.name),
                Err(e) => tracing::warn!(name = spec.name, error = %e, "background loop: a round failed; retrying"),
            }
        }
        if let Some(keeper) = keeper.as_mut() {
            keeper.release().await;
        }
        tracing::debug!(name = spec.name, "background loop stopped");
    });
}
