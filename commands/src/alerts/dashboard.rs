//! The dashboard's Alerts page (`/alerts`): alert groups newest first with their alerts,
//! who acked and silenced them and the deploy they follow, filtered by status, service and
//! severity. Behind the same `audit:read` check as every dashboard page ([`DashboardView`]).

use super::payload::Labels;
use super::store::{self, AlertGroup, AlertInstance};
use crate::audit::DashboardView;
use crate::desk::Desk;
use crate::error::CommandError;

/// Groups `/alerts` shows at most (newest first).
pub const PAGE_LIMIT: i64 = 200;
/// Longest filter value taken.
const FILTER_MAX: usize = 100;

/// `/alerts` filters; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// `firing` or `resolved`.
    pub status: Option<String>,
    /// A value of the configured service label.
    pub service: Option<String>,
    pub severity: Option<String>,
}

/// What the page shows: the groups with their alerts, and the values the filters offer.
#[derive(Debug, Clone, Default)]
pub struct AlertsPage {
    pub groups: Vec<(AlertGroup, Vec<AlertInstance>)>,
    /// Services and severities seen in stored alerts, sorted.
    pub services: Vec<String>,
    pub severities: Vec<String>,
}

impl Desk {
    /// Alert groups matching `filter`, newest first, each with its alerts.
    pub async fn dashboard_alerts(
        &self,
        _view: &DashboardView,
        filter: &AlertFilter,
    ) -> Result<AlertsPage, CommandError> {
        if let Some(status) = filter.status.as_deref()
            && !matches!(status, "firing" | "resolved")
        {
            return Err(CommandError::Invalid(format!(
                "status: `{}` is not a status; one of firing, resolved",
                super::view::cut(status, FILTER_MAX)
            )));
        }
        let service_label = self.alerts().service_label.clone();
        let mut labels = Labels::new();
        for (label, value) in [
            (service_label.as_str(), filter.service.as_deref()),
            ("severity", filter.severity.as_deref()),
        ] {
            if let Some(value) = value {
                if value.chars().count() > FILTER_MAX {
                    return Err(CommandError::Invalid(format!(
                        "`{label}` is longer than {FILTER_MAX} characters"
                    )));
                }
                labels.insert(label.to_owned(), value.to_owned());
            }
        }
        let groups =
            store::groups_with_labels(&self.pool, filter.status.as_deref(), &labels, PAGE_LIMIT)
                .await?;
        let mut page = AlertsPage {
            services: store::label_values(&self.pool, &service_label).await?,
            severities: store::label_values(&self.pool, "severity").await?,
            groups: Vec::with_capacity(groups.len()),
        };
        for group in groups {
            let alerts = store::instances(&self.pool, group.id).await?;
            page.groups.push((group, alerts));
        }
        Ok(page)
    }
}
