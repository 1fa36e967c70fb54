//! The tamper-evident audit trail: every action, including denied, invalid and failed ones.
//!
//! Users read it with `/audit recent`, `/audit verify`, `opsbot audit tail` and
//! `opsbot audit verify`. Events are appended concurrently inside the caller's transaction
//! ([`append`]); a single sealer ([`seal`]) chains committed events in batches
//! (`hash = sha256(prev_hash || canonical(event))`); [`verify`] walks the chain read-only.
//! Every SQL statement touching the audit tables lives in this module.

mod append;
mod canonical;
mod commands;
mod model;
mod query;
mod seal;
mod verify;

pub use append::append;
pub use canonical::{GENESIS_HASH, canonical_bytes, chain_hash};
pub use commands::RECENT_DEFAULT_LIMIT;
pub use model::{AuditEvent, NewEvent, Outcome};
pub(crate) use query::escape_like;
pub use query::{
    AuditQuery, Page, QUERY_MAX_LIMIT, by_correlation, event, newer_than, query, tail,
};
pub use seal::{SEAL_BATCH, SEAL_INTERVAL, SealResult, seal_batch, seal_pending};
pub use verify::{ChainHead, ChainProblem, UNSEALED_GRACE, VerifyReport, verify};

#[cfg(test)]
mod tests;
