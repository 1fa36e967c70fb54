//! Seals the audit chain every [`SEAL_INTERVAL`] while `opsbot run` (or the shell) runs, and
//! once more at shutdown so nothing committed is left unsealed.

use opsbot_commands::audit::{SEAL_INTERVAL, seal_pending};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Seals until `shutdown` is cancelled. Errors are logged and retried next tick: a database
/// blip must not stop sealing for good.
pub async fn run(pool: PgPool, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(SEAL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = seal_pending(&pool).await {
            tracing::warn!(error = %e, "sealing the audit chain failed; retrying");
        }
    }
}

/// The last seal at shutdown, after every other task has stopped appending.
pub async fn seal_before_exit(pool: &PgPool) {
    match seal_pending(pool).await {
        Ok(n) => tracing::info!(sealed = n, "audit chain sealed before exit"),
        Err(e) => {
            tracing::error!(error = %e, "could not seal the audit chain before exit; the next start will")
        }
    }
}
