//! The dashboard's incident pages (`/incidents`, `/incidents/{id}`): reads behind the same
//! `audit:read` check as every dashboard page ([`DashboardView`]).

use super::model::{Incident, Status};
use super::timeline::Entry;
use crate::audit::DashboardView;
use crate::desk::Desk;
use crate::error::CommandError;

/// Incidents `/incidents` looks through (newest first); filters apply to these.
const LIST_LIMIT: i64 = 500;

/// `/incidents` filters; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    pub severity: Option<String>,
    /// `open` (any open status) or one status.
    pub status: Option<String>,
}

/// Everything `/incidents/{id}` shows.
#[derive(Debug, Clone)]
pub struct IncidentPage {
    pub incident: Incident,
    pub timeline: Vec<Entry>,
    /// The postmortem's GitHub issue: number and URL.
    pub issue: Option<(i64, String)>,
}

impl Desk {
    /// Open and recent incidents matching `filter`, newest first.
    pub async fn dashboard_incidents(
        &self,
        _view: &DashboardView,
        filter: &IncidentFilter,
    ) -> Result<Vec<Incident>, CommandError> {
        if let Some(status) = filter.status.as_deref()
            && status != "open"
            && Status::parse(status).is_none()
        {
            return Err(CommandError::Invalid(format!(
                "status: `{status}` is not a status; one of open, investigating, identified, monitoring, resolved, reopened"
            )));
        }
        let all = self.incidents_recent(LIST_LIMIT).await?;
        Ok(all
            .into_iter()
            .filter(|i| filter.severity.as_deref().is_none_or(|s| i.severity == s))
            .filter(|i| match filter.status.as_deref() {
                None => true,
                Some("open") => i.status.is_open(),
                Some(status) => i.status.as_str() == status,
            })
            .collect())
    }

    /// Incident `id` with its whole timeline and its postmortem issue.
    pub async fn dashboard_incident(
        &self,
        _view: &DashboardView,
        id: i64,
    ) -> Result<Option<IncidentPage>, CommandError> {
        let Some(incident) = self.incident_by_id(id).await? else {
            return Ok(None);
        };
        let timeline = self.incident_timeline(&incident).await?;
        let issue = self.incident_postmortem_issue(id).await?;
        Ok(Some(IncidentPage {
            incident,
            timeline,
            issue,
        }))
    }
}
