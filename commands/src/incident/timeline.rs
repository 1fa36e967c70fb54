//! The incident's timeline, from the one database: its own events (changes, roles, notes,
//! status updates) and the deploys and rollbacks of its services from an hour before it
//! started until it was resolved, in one list ordered by time (UTC).

use chrono::{DateTime, Utc};

use super::model::Incident;
use super::store;
use crate::desk::Desk;
use crate::error::CommandError;

/// How far before the start deploys count as possibly contributing.
pub const DEPLOY_LOOKBACK: chrono::Duration = chrono::Duration::hours(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// The incident's own events (declared, status, severity, role, note, resolved, ...).
    Incident,
    Deploy,
    Rollback,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub at: DateTime<Utc>,
    pub kind: EntryKind,
    /// `status`, `note`, ... or the deploy's state.
    pub what: String,
    pub who: String,
    pub text: String,
    /// For deploys: the deploy id.
    pub deploy_id: Option<i64>,
}

impl Entry {
    /// `2026-12-01 10:02:03 UTC  status (ana): identified: bad config`.
    pub fn line(&self) -> String {
        format!(
            "{}  {} ({}): {}",
            self.at.format("%Y-%m-%d %H:%M:%S UTC"),
            self.what,
            self.who,
            self.text
        )
    }
}

impl Desk {
    /// The whole timeline of `incident`, oldest first.
    pub async fn incident_timeline(&self, incident: &Incident) -> Result<Vec<Entry>, CommandError> {
        let mut entries: Vec<Entry> = store::events(&self.pool, incident.id)
            .await?
            .into_iter()
            .map(|e| Entry {
                at: e.at,
                kind: EntryKind::Incident,
                what: e.kind,
                who: e.actor_name,
                text: e.text,
                deploy_id: None,
            })
            .collect();
        if !incident.services.is_empty() {
            let from = incident.started_at - DEPLOY_LOOKBACK;
            let until = incident.resolved_at.unwrap_or_else(Utc::now);
            for d in store::deploys_between(&self.pool, &incident.services, from, until).await? {
                entries.push(Entry {
                    at: d.requested_at,
                    kind: if d.is_rollback {
                        EntryKind::Rollback
                    } else {
                        EntryKind::Deploy
                    },
                    what: if d.is_rollback { "rollback" } else { "deploy" }.to_owned(),
                    who: d.requested_by_name,
                    text: format!(
                        "#{} {} {} → {} ({})",
                        d.id, d.service, d.version, d.environment, d.state
                    ),
                    deploy_id: Some(d.id),
                });
            }
        }
        entries.sort_by_key(|e| e.at);
        Ok(entries)
    }
}
