//! `/audit recent [count] [actor] [command] [outcome]` (needs `audit:read`) and
//! `/audit verify` (needs `audit:verify`).

use super::query::{AuditQuery, query};
use super::verify::{VerifyReport, verify};
use super::model::AuditEvent;
use crate::desk::{Desk, Invocation};
use crate::error::CommandError;

/// Events `/audit recent` shows when no count is given; small enough for one Discord message.
pub const RECENT_DEFAULT_LIMIT: i64 = 10;

impl Desk {
    /// The newest events matching `filter`, newest first.
    pub async fn audit_recent(
        &self,
        inv: &Invocation,
        filter: AuditQuery,
    ) -> Result<Vec<AuditEvent>, CommandError> {
        self.authorize(inv, "audit:read", "read the audit log").await?;
        let result = query(&self.pool, &filter)
            .await
            .map(|page| page.events)
            .map_err(CommandError::from);
        self.conclude(inv, result, |events| format!("{} events", events.len()))
            .await
    }

    /// Walks the chain (read-only). A broken chain is still a successful command: the
    /// report says where it breaks.
    pub async fn audit_verify(&self, inv: &Invocation) -> Result<VerifyReport, CommandError> {
        self.authorize(inv, "audit:verify", "verify the audit chain").await?;
        let result = verify(&self.pool).await.map_err(CommandError::from);
        self.conclude(inv, result, VerifyReport::summary).await
    }
}
