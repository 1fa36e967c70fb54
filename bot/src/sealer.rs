//! Seals the audit chain every [`SEAL_INTERVAL`] while `opsbot run` (or the shell) runs, and
//! once more at shutdown so nothing committed is left unsealed. With `[audit]
//! checkpoint_path`, it also writes the chain head to that file every `checkpoint_interval`
//! and at shutdown (with its MAC under `[audit] chain_key`): the anchor outside the database
//! that `opsbot audit verify` checks the chain against.

use std::path::PathBuf;
use std::time::Duration;

use opsbot_commands::audit::{ChainKey, SEAL_INTERVAL, seal_pending, write_checkpoint};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::AuditConfig;

/// Where and how often the chain head is checkpointed.
#[derive(Debug, Clone)]
pub struct CheckpointSettings {
    pub path: PathBuf,
    pub interval: Duration,
    pub key: Option<ChainKey>,
}

/// The sealer loop and its checkpoint.
#[derive(Debug, Clone)]
pub struct Sealer {
    pool: PgPool,
    checkpoint: Option<CheckpointSettings>,
}

/// The chain key of `[audit]`, as the domain's type. The configuration has checked its length.
pub fn chain_key(audit: &AuditConfig) -> anyhow::Result<Option<ChainKey>> {
    audit
        .chain_key
        .as_ref()
        .map(|secret| {
            ChainKey::new(secret.expose().as_bytes())
                .map_err(|e| anyhow::anyhow!("[audit] chain_key ({}): {e}", secret.origin()))
        })
        .transpose()
}

impl Sealer {
    pub fn new(pool: PgPool, audit: &AuditConfig) -> anyhow::Result<Sealer> {
        let key = chain_key(audit)?;
        let checkpoint = audit
            .checkpoint_path
            .as_ref()
            .map(|path| CheckpointSettings {
                path: path.clone(),
                interval: audit.checkpoint_interval,
                key,
            });
        Ok(Sealer { pool, checkpoint })
    }

    /// Seals (and checkpoints) until `shutdown` is cancelled. Errors are logged and retried
    /// next tick: a database blip must not stop sealing for good.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut seal_tick = tokio::time::interval(SEAL_INTERVAL);
        seal_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut checkpoint_tick = self.checkpoint.as_ref().map(|settings| {
            let mut tick = tokio::time::interval(settings.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick
        });
        loop {
            let checkpoint_due = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = seal_tick.tick() => false,
                () = next_tick(&mut checkpoint_tick) => true,
            };
            if let Err(e) = seal_pending(&self.pool).await {
                tracing::warn!(error = %e, "sealing the audit chain failed; retrying");
            } else if checkpoint_due {
                self.write_checkpoint().await;
            }
        }
    }

    /// The last seal (and checkpoint) at shutdown, after every other task has stopped
    /// appending.
    pub async fn seal_before_exit(&self) {
        match seal_pending(&self.pool).await {
            Ok(n) => {
                tracing::info!(sealed = n, "audit chain sealed before exit");
                self.write_checkpoint().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "could not seal the audit chain before exit; the next start will")
            }
        }
    }

    /// Writes the checkpoint, if one is configured; a failure is logged and counted
    /// (`opsbot_audit_checkpoint_failures_total`) and leaves the previous file as evidence.
    async fn write_checkpoint(&self) {
        let Some(settings) = &self.checkpoint else {
            return;
        };
        match write_checkpoint(&self.pool, &settings.path, settings.key.as_ref()).await {
            Ok(Some(checkpoint)) => {
                metrics::gauge!("opsbot_audit_checkpoint_position").set(checkpoint.position as f64);
                tracing::debug!(
                    path = %settings.path.display(),
                    position = checkpoint.position,
                    hash = %checkpoint.hash,
                    "audit chain head checkpointed"
                );
            }
            Ok(None) => {}
            Err(e) => {
                metrics::counter!("opsbot_audit_checkpoint_failures_total").increment(1);
                tracing::error!(
                    path = %settings.path.display(),
                    error = %e,
                    "not checkpointing the audit chain; run `opsbot audit verify` and keep the old checkpoint as evidence"
                );
            }
        }
    }
}

/// The next tick of `tick`; never without one.
async fn next_tick(tick: &mut Option<tokio::time::Interval>) {
    match tick {
        Some(tick) => {
            tick.tick().await;
        }
        None => std::future::pending().await,
    }
}
