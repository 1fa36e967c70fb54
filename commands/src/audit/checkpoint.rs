//! The checkpoint: the chain head written now and then to a file outside the database
//! (`[audit] checkpoint_path`), with its MAC when `[audit] chain_key` is set, so that cutting
//! events off the tail or recomputing the chain shows against it.
//!
//! The file is one JSON object:
//! `{"position": 42, "event_id": 57, "hash": "…", "written_at": "…", "mac": "…" | null}`.
//! [`write_checkpoint`] replaces it atomically (a temporary file, fsync, rename) and only
//! after checking that the chain still extends the previous checkpoint: a rewritten chain is
//! never blessed by the next checkpoint. [`check_checkpoint`] is what
//! `opsbot audit verify --checkpoint PATH` runs.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::head::{ChainKey, ExpectedHead, HeadMismatch, check_expected_head};
use super::seal::issued_ids;
use super::verify::ChainProblem;
use super::walk::{Start, walk};

/// One checkpoint, as written to the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub position: i64,
    pub event_id: i64,
    /// The chain hash at `position`, lowercase hex.
    pub hash: String,
    pub written_at: DateTime<Utc>,
    /// `HMAC-SHA256(chain_key, "POSITION:HASH")`, hex; `None` when no key is configured.
    pub mac: Option<String>,
}

/// How far a checkpoint could be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authenticity {
    /// Its MAC matches the configured key: it was written by a holder of the key.
    Verified,
    /// It has a MAC but no key is configured to check it.
    Unchecked,
    /// Written without a key: anyone who can write the file could have written it.
    Unkeyed,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read the checkpoint {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a checkpoint opsbot wrote: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error(
        "the checkpoint {} carries no MAC but [audit] chain_key is set: it was written without the key, or forged",
        path.display()
    )]
    MacMissing { path: PathBuf },
    #[error(
        "the MAC of the checkpoint {} does not match [audit] chain_key: it was forged or edited (or the key changed)",
        path.display()
    )]
    MacMismatch { path: PathBuf },
    #[error("the chain no longer holds the checkpoint {}: {mismatch}", path.display())]
    Diverged {
        path: PathBuf,
        mismatch: HeadMismatch,
    },
    #[error(
        "the chain is broken after the checkpoint {}: event {}: {}",
        path.display(), problem.event_id, problem.message
    )]
    Broken {
        path: PathBuf,
        problem: ChainProblem,
    },
    #[error("cannot write the checkpoint {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading the audit chain: {0}")]
    Database(#[from] sqlx::Error),
}

impl Checkpoint {
    /// Reads the checkpoint at `path`; `Ok(None)` when there is no file.
    pub fn read(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CheckpointError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let checkpoint: Checkpoint =
            serde_json::from_str(&text).map_err(|e| CheckpointError::Invalid {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        // The same rules as `--expect-head`.
        ExpectedHead::try_from(&checkpoint).map_err(|reason| CheckpointError::Invalid {
            path: path.to_owned(),
            reason,
        })?;
        Ok(Some(checkpoint))
    }

    /// Checks the MAC against `key`: a key configured makes a MAC required.
    pub fn authenticate(
        &self,
        path: &Path,
        key: Option<&ChainKey>,
    ) -> Result<Authenticity, CheckpointError> {
        match (key, &self.mac) {
            (Some(key), Some(mac)) if key.verifies(self.position, &self.hash, mac) => {
                Ok(Authenticity::Verified)
            }
            (Some(_), Some(_)) => Err(CheckpointError::MacMismatch {
                path: path.to_owned(),
            }),
            (Some(_), None) => Err(CheckpointError::MacMissing {
                path: path.to_owned(),
            }),
            (None, Some(_)) => Ok(Authenticity::Unchecked),
            (None, None) => Ok(Authenticity::Unkeyed),
        }
    }
}

impl TryFrom<&Checkpoint> for ExpectedHead {
    type Error = String;

    fn try_from(checkpoint: &Checkpoint) -> Result<ExpectedHead, String> {
        format!("{}:{}", checkpoint.position, checkpoint.hash).parse()
    }
}

/// Reads the checkpoint at `path`, checks its MAC, and checks that the chain still has its
/// hash at its position. `Ok(None)`: there is no file. Read-only.
pub async fn check_checkpoint(
    pool: &PgPool,
    path: &Path,
    key: Option<&ChainKey>,
) -> Result<Option<(Checkpoint, Authenticity)>, CheckpointError> {
    let Some(checkpoint) = Checkpoint::read(path)? else {
        return Ok(None);
    };
    let authenticity = checkpoint.authenticate(path, key)?;
    let expected =
        ExpectedHead::try_from(&checkpoint).map_err(|reason| CheckpointError::Invalid {
            path: path.to_owned(),
            reason,
        })?;
    check_expected_head(pool, &expected)
        .await?
        .map_err(|mismatch| CheckpointError::Diverged {
            path: path.to_owned(),
            mismatch,
        })?;
    Ok(Some((checkpoint, authenticity)))
}

/// Writes the current head to `path`, after checking that the chain still extends the
/// checkpoint already there (its MAC, its hash at its position, and every hash from there to
/// the head). With no file yet, the head is taken as it is (trust on first use). Returns the
/// checkpoint written, or `None` while the chain is empty.
///
/// A failed check leaves the old file in place: it is the evidence.
pub async fn write_checkpoint(
    pool: &PgPool,
    path: &Path,
    key: Option<&ChainKey>,
) -> Result<Option<Checkpoint>, CheckpointError> {
    let head = match check_checkpoint(pool, path, key).await? {
        Some((previous, _)) => {
            let start = Start {
                position: previous.position,
                hash: hex::decode(&previous.hash).map_err(|e| CheckpointError::Invalid {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?,
            };
            let walked = walk(pool, start, issued_ids(pool).await?).await?;
            if let Some(problem) = walked.broken {
                return Err(CheckpointError::Broken {
                    path: path.to_owned(),
                    problem,
                });
            }
            match walked.head {
                Some(head) => (head.position, head.event_id, head.hash),
                None => (previous.position, previous.event_id, previous.hash),
            }
        }
        None => {
            let head: Option<(i64, i64, Vec<u8>)> = sqlx::query_as(
                "SELECT position, event_id, hash FROM audit_chain ORDER BY position DESC LIMIT 1",
            )
            .fetch_optional(pool)
            .await?;
            match head {
                Some((position, event_id, hash)) => (position, event_id, hex::encode(hash)),
                None => return Ok(None),
            }
        }
    };
    let (position, event_id, hash) = head;
    let checkpoint = Checkpoint {
        position,
        event_id,
        mac: key.map(|key| key.head_mac(position, &hash)),
        hash,
        written_at: Utc::now(),
    };
    let target = path.to_owned();
    let written = checkpoint.clone();
    tokio::task::spawn_blocking(move || replace_file(&target, &written))
        .await
        .map_err(|e| CheckpointError::Write {
            path: path.to_owned(),
            source: std::io::Error::other(e),
        })?
        .map_err(|source| CheckpointError::Write {
            path: path.to_owned(),
            source,
        })?;
    Ok(Some(checkpoint))
}

/// Writes `checkpoint` beside `path` and renames it over `path`: a reader sees the old file
/// or the new one, never half of one, and a crash leaves one of them on disk.
fn replace_file(path: &Path, checkpoint: &Checkpoint) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path names no file"))?;
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let json = serde_json::to_string(checkpoint).map_err(std::io::Error::other)?;
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(json.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        // Make the rename itself durable; not every platform lets a directory be synced.
        if let Ok(dir) = std::fs::File::open(&dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}
