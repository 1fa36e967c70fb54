//! The incident's timeline, from the one database: its own events (changes, roles, notes,
//! status updates) and the deploys and rollbacks of its services from an hour before it
//! started until it was resolved, and the alerts about them (the `[alerts] service_label`
//! label) that fired in that time, in one list ordered by time (UTC).

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
    /// An alert about one of its services fired or resolved.
    Alert,
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
            entries.extend(
                self.incident_alerts(&incident.services, from, until)
                    .await?,
            );
        }
        entries.sort_by_key(|e| e.at);
        Ok(entries)
    }
}

/// starts_at, ends_at (once resolved), alertname, service, summary, severity.
type AlertRow = (
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    String,
    String,
    String,
    String,
);

impl Desk {
    /// Alerts about `services` that fired between `from` and `until`: one entry when each
    /// fired, and one when it resolved (if it did by `until`).
    async fn incident_alerts(
        &self,
        services: &[String],
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Entry>, CommandError> {
        let label = self.alerts().service_label.clone();
        let rows: Vec<AlertRow> = sqlx::query_as(
            "SELECT i.starts_at, CASE WHEN i.status = 'resolved' THEN i.ends_at END,
                        coalesce(i.labels->>'alertname', ''), coalesce(i.labels->>$1, ''),
                        coalesce(i.annotations->>'summary', ''), coalesce(i.labels->>'severity', '')
                 FROM alert_instances i
                 WHERE i.labels->>$1 = ANY($2) AND i.starts_at >= $3 AND i.starts_at <= $4
                 ORDER BY i.starts_at
                 LIMIT 200",
        )
        .bind(&label)
        .bind(services)
        .bind(from)
        .bind(until)
        .fetch_all(&self.pool)
        .await?;
        let mut entries = Vec::with_capacity(rows.len() * 2);
        for (starts, ends, name, service, summary, severity) in rows {
            let about = match (summary.is_empty(), severity.is_empty()) {
                (true, true) => format!("{name} on {service}"),
                (true, false) => format!("{name} on {service} ({severity})"),
                (false, true) => format!("{name} on {service}: {summary}"),
                (false, false) => format!("{name} on {service} ({severity}): {summary}"),
            };
            entries.push(Entry {
                at: starts,
                kind: EntryKind::Alert,
                what: "alert fired".to_owned(),
                who: "alertmanager".to_owned(),
                text: about.clone(),
                deploy_id: None,
            });
            if let Some(ends) = ends.filter(|e| *e <= until) {
                entries.push(Entry {
                    at: ends,
                    kind: EntryKind::Alert,
                    what: "alert resolved".to_owned(),
                    who: "alertmanager".to_owned(),
                    text: about,
                    deploy_id: None,
                });
            }
        }
        Ok(entries)
    }
}
