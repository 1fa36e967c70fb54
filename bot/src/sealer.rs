//! The `audit sealer` loop seals the audit chain every
//! [`SEAL_INTERVAL`](opsbot_commands::audit::SEAL_INTERVAL) (one replica at a
//! time, under its lease) while `opsbot run` (or the shell) runs, and
//! once more at shutdown so nothing committed is left unsealed. With `[audit]
//! checkpoint_path`, it also writes the chain head to that file every `checkpoint_interval`
//! and at shutdown (with its MAC under `[audit] chain_key`): the anchor outside the database
//! that `opsbot audit verify` checks the chain against.

use std::path::PathBuf;
use std::time::Duration;

use opsbot_commands::audit::{ChainKey, seal_pending, write_checkpoint};
use sqlx::PgPool;

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

    /// One round of the `audit sealer` loop: chains what has committed.
    pub async fn seal_round(&self) -> Result<(), sqlx::Error> {
        seal_pending(&self.pool).await.map(|_| ())
    }

    /// How often the `audit checkpoint` loop runs; `None` without `[audit] checkpoint_path`.
    pub fn checkpoint_interval(&self) -> Option<Duration> {
        self.checkpoint.as_ref().map(|c| c.interval)
    }

    /// One round of the `audit checkpoint` loop.
    pub async fn checkpoint_round(&self) -> Result<(), &'static str> {
        if self.write_checkpoint().await {
            Ok(())
        } else {
            Err("the checkpoint was not written (see the error above)")
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
    async fn write_checkpoint(&self) -> bool {
        let Some(settings) = &self.checkpoint else {
            return true;
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
                true
            }
            Ok(None) => true,
            Err(e) => {
                metrics::counter!("opsbot_audit_checkpoint_failures_total").increment(1);
                tracing::error!(
                    path = %settings.path.display(),
                    error = %e,
                    "not checkpointing the audit chain; run `opsbot audit verify` and keep the old checkpoint as evidence"
                );
                false
            }
        }
    }
}
