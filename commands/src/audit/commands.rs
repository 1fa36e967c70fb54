//! `/audit recent [count] [actor] [command] [outcome]` (needs `audit:read`) and
//! `/audit verify` (needs `audit:verify`).

use super::model::Outcome;
use super::query::{AuditQuery, Page, query, search_problem};
use super::verify::{VerifyReport, verify};
use crate::actor::Source;
use crate::desk::{Desk, Invocation};
use crate::error::CommandError;

/// Events `/audit recent` shows when no count is given; small enough for one Discord message.
pub const RECENT_DEFAULT_LIMIT: i64 = 10;

impl Desk {
    /// The newest events matching `filter` (older than its cursor, if any), newest first.
    pub async fn audit_recent(
        &self,
        inv: &Invocation,
        filter: AuditQuery,
    ) -> Result<Page, CommandError> {
        self.authorize(inv, "audit:read", "read the audit log")
            .await?;
        let result = match check_filter(&filter) {
            Err(e) => Err(e),
            Ok(()) => query(&self.pool, &filter).await.map_err(CommandError::from),
        };
        self.conclude(inv, result, |page| format!("{} events", page.events.len()))
            .await
    }

    /// Walks the chain (read-only). A broken chain is still a successful command: the
    /// report says where it breaks.
    pub async fn audit_verify(&self, inv: &Invocation) -> Result<VerifyReport, CommandError> {
        self.authorize(inv, "audit:verify", "verify the audit chain")
            .await?;
        let result = verify(&self.pool).await.map_err(CommandError::from);
        self.conclude(inv, result, VerifyReport::summary).await
    }
}

/// Refuses filter values outside the vocabularies, naming the valid ones, and a text search
/// too short for the search index ([`search_problem`]).
pub(super) fn check_filter(filter: &AuditQuery) -> Result<(), CommandError> {
    if let Some(outcome) = filter.outcome.as_deref() {
        Outcome::parse_filter(outcome).map_err(CommandError::Invalid)?;
    }
    if let Some(source) = filter.source.as_deref() {
        Source::parse_filter(source).map_err(CommandError::Invalid)?;
    }
    if let Some(why) = filter
        .text
        .as_deref()
        .filter(|t| !t.is_empty())
        .and_then(search_problem)
    {
        return Err(CommandError::Invalid(why));
    }
    Ok(())
}
