//! `[audit]`: the anchors of the audit chain kept outside the database.

use std::path::PathBuf;
use std::time::Duration;

use opsbot_commands::audit::head::CHAIN_KEY_MIN_LEN;
use serde::Deserialize;
use toml::Value;

use super::secret::Secret;
use super::values::Values;

/// The keys of `[audit]`.
pub(super) const AUDIT_KEYS: &[&str] = &["chain_key", "checkpoint_path", "checkpoint_interval"];

/// Default `audit.checkpoint_interval`: a rewrite is anchored within a minute, and one small
/// file written a minute costs nothing.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);

/// `[audit]`: keys and files that make a rewritten or cut-off chain detectable.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Keys the MAC of the chain head (`HMAC-SHA256(key, "POSITION:HASH")`) in checkpoints
    /// and in `opsbot audit verify`; keep it outside the database. At least
    /// [`CHAIN_KEY_MIN_LEN`] bytes.
    pub chain_key: Option<Secret>,
    /// Where the sealer writes the chain head now and then, and where `opsbot audit verify`
    /// checks the chain against it; `None`: no checkpoint.
    pub checkpoint_path: Option<PathBuf>,
    /// How often the checkpoint is written (and once more at shutdown).
    pub checkpoint_interval: Duration,
}

impl Default for AuditConfig {
    fn default() -> AuditConfig {
        AuditConfig {
            chain_key: None,
            checkpoint_path: None,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawAudit {
    chain_key: Option<Value>,
    checkpoint_path: Option<Value>,
    checkpoint_interval: Option<Value>,
}

impl Values<'_> {
    pub(super) fn audit(&mut self, raw: RawAudit) -> AuditConfig {
        let defaults = AuditConfig::default();
        let chain_key = raw
            .chain_key
            .and_then(|value| self.secret("audit.chain_key", value))
            .filter(|key| {
                let long_enough = key.expose().len() >= CHAIN_KEY_MIN_LEN;
                if !long_enough {
                    self.report(
                        "audit.chain_key",
                        format!(
                            "the key is shorter than {CHAIN_KEY_MIN_LEN} bytes (from {})",
                            key.origin()
                        ),
                        Some(
                            "generate one with `openssl rand -hex 32` and keep it outside the database"
                                .to_owned(),
                        ),
                    );
                }
                long_enough
            });
        let checkpoint_path = raw.checkpoint_path.and_then(|value| {
            let text = self.string("audit.checkpoint_path", value, "a file path")?;
            if text.trim().is_empty() {
                self.report(
                    "audit.checkpoint_path",
                    "is empty",
                    Some(
                        "write a file on storage the database's administrators cannot write, e.g. \"/var/lib/opsbot/audit-head.json\""
                            .to_owned(),
                    ),
                );
                return None;
            }
            Some(PathBuf::from(text))
        });
        let checkpoint_interval = raw
            .checkpoint_interval
            .and_then(|value| self.duration("audit.checkpoint_interval", value))
            .unwrap_or(defaults.checkpoint_interval);
        AuditConfig {
            chain_key,
            checkpoint_path,
            checkpoint_interval,
        }
    }
}
