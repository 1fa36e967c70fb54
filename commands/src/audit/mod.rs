//! The tamper-evident audit trail: every action, including denied, invalid and failed ones.
//!
//! Users read it with `/audit recent`, `/audit verify`, `opsbot audit tail` and
//! `opsbot audit verify`. Events are appended concurrently inside the caller's transaction
//! ([`append`]); a single sealer ([`seal`]) chains committed events in batches
//! (`hash = sha256(prev_hash || canonical(event))`); [`verify`] walks the chain read-only.
//! The sealer refuses, and `verify` reports, events opsbot cannot have appended ([`checks`]).
//! A head kept outside the database ([`head`], [`checkpoint`]) shows a cut-off tail or a
//! recomputed chain. Every SQL statement touching the audit tables lives in this module.

mod append;
pub mod browse;
mod canonical;
pub mod checkpoint;
pub mod checks;
mod commands;
pub mod head;
mod model;
mod query;
mod reads;
mod seal;
mod verify;
mod walk;

pub use append::{append, append_many};
pub use canonical::{GENESIS_HASH, canonical_bytes, chain_hash};
pub use checkpoint::{
    Authenticity, Checkpoint, CheckpointError, check_checkpoint, write_checkpoint,
};
pub use commands::RECENT_DEFAULT_LIMIT;
pub use head::{ChainKey, ExpectedHead, HeadMismatch, check_expected_head};
pub use model::{AuditEvent, NewEvent, Outcome};
pub(crate) use query::escape_like;
pub use query::{
    AuditQuery, Denials, Page, QUERY_MAX_LIMIT, SEARCH_MIN_RUN, by_correlation, chain_backlog,
    denials_between, event, newer_than, query, sealed_after, search_problem, tail,
};
pub use reads::{AuditExport, DashboardView, READ_PERMISSION};
pub use seal::{SEAL_BATCH, SEAL_INTERVAL, SealResult, seal_batch, seal_pending};
pub use verify::{
    ChainHead, ChainProblem, MAX_FINDINGS, UNSEALED_GRACE, Verification, VerifyReport, verify,
    verify_all,
};

#[cfg(test)]
mod tests;
