//! How the team is doing: the dashboard's overview page (`/overview?window=30`) and its JSON
//! (`GET /api/overview?window=30&environment=production`). The four DORA keys over a window
//! of 7, 30 or 90 days, overall and per service, each beside the window before it:
//!
//! - **deployment frequency**: succeeded deploys (rollbacks included) per day;
//! - **lead time for changes**: the median time from a deploy's request to its success;
//! - **change failure rate**: of the deploys that finished (succeeded or failed), the share
//!   that failed, or were followed within `[deploy] change_failure_window` by a rollback of
//!   that service and environment (or a rollback naming them) or by an incident declared on
//!   that service;
//! - **time to restore**: the median time from an incident's declaration to its resolution
//!   (incidents resolved in the window; per service, the incidents naming it).
//!
//! Beside them: deploys per day by outcome, denials (audit events `denied`, and `refused` by a freeze rule) and freeze
//! overrides per day, open incidents and firing alerts. Days are UTC days; the window is the
//! last `N` of them, today included (so today counts only so far).
//!
//! Every figure comes from an indexed range of `deploys`, `incidents` or the denials' partial
//! index on `audit_events` ([`store`]), never a scan of the whole trail. Reads need
//! `audit:read` like every dashboard page ([`DashboardView`]); the API's reads are audited,
//! one event per request.

mod figures;
mod store;
#[cfg(test)]
mod tests;

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::audit::DashboardView;
use crate::desk::{Desk, Invocation};
use crate::error::CommandError;

pub use figures::{Figure, Trend};

/// `[deploy] change_failure_window` when the config does not say: a change that needs a
/// rollback or causes an incident usually shows within the hour.
pub const DEFAULT_CHANGE_FAILURE_WINDOW: Duration = Duration::from_secs(3600);
/// Open incidents the overview lists at most (newest first).
const OPEN_INCIDENTS_MAX: i64 = 50;

/// The overview's settings, from the config.
#[derive(Debug, Clone)]
pub struct OverviewSettings {
    /// How long after a deploy a rollback or an incident counts against it.
    pub change_failure_window: Duration,
}

impl Default for OverviewSettings {
    fn default() -> OverviewSettings {
        OverviewSettings {
            change_failure_window: DEFAULT_CHANGE_FAILURE_WINDOW,
        }
    }
}

static DEFAULT_SETTINGS: std::sync::LazyLock<OverviewSettings> =
    std::sync::LazyLock::new(OverviewSettings::default);

/// The windows the overview offers, in days.
pub const WINDOWS: [u32; 3] = [7, 30, 90];

/// What the overview is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverviewQuery {
    /// One of [`WINDOWS`].
    pub window_days: u32,
    /// Only deploys to this environment (incidents and alerts are not per environment).
    pub environment: Option<String>,
}

impl Default for OverviewQuery {
    fn default() -> OverviewQuery {
        OverviewQuery {
            window_days: 30,
            environment: None,
        }
    }
}

impl OverviewQuery {
    /// A window as given (`7`, `30`, `90`, or with a `d`: `7d`), or why not.
    pub fn parse_window(text: &str) -> Result<u32, String> {
        let trimmed = text.trim();
        let digits = trimmed.strip_suffix('d').unwrap_or(trimmed);
        match digits.parse::<u32>() {
            Ok(days) if WINDOWS.contains(&days) => Ok(days),
            _ => Err(format!(
                "window: `{}` is not a window; one of 7, 30, 90 (days)",
                crate::desk::clean(trimmed)
            )),
        }
    }
}

/// The four keys over one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Keys {
    /// Deploys that finished in the window (succeeded or failed): the changes counted.
    pub changes: i64,
    pub succeeded: i64,
    /// Changes that failed or were followed by a rollback or an incident.
    pub failed_changes: i64,
    /// Incidents resolved in the window.
    pub restored: i64,
    /// Succeeded deploys per day.
    pub deployment_frequency: Figure,
    /// Median seconds from request to success.
    pub lead_time_secs: Figure,
    /// `failed_changes / changes`, 0 to 1.
    pub change_failure_rate: Figure,
    /// Median seconds from declaration to resolution.
    pub time_to_restore_secs: Figure,
}

/// One service's keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceKeys {
    pub service: String,
    #[serde(flatten)]
    pub keys: Keys,
}

/// Deploys requested on one UTC day, by how they ended (`active`: still requested, approved
/// or running).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeployDay {
    pub day: NaiveDate,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
    pub rejected: i64,
    pub expired: i64,
    pub active: i64,
}

impl DeployDay {
    pub fn total(&self) -> i64 {
        self.succeeded + self.failed + self.cancelled + self.rejected + self.expired + self.active
    }
}

/// Refusals and overrides on one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RefusalDay {
    pub day: NaiveDate,
    /// Audit events with outcome `denied` (a missing permission), from any door.
    pub denials: i64,
    /// Deploys requested with `override:true` through a freeze.
    pub overrides: i64,
}

/// An incident not yet resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct OpenIncident {
    pub id: i64,
    pub title: String,
    pub severity: String,
    pub status: String,
    pub services: Vec<String>,
    pub started_at: DateTime<Utc>,
}

/// Everything the overview shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overview {
    pub window_days: u32,
    /// The window: `from` (the start of its first UTC day) until `until` (now).
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// The window compared with: the `window_days` days before `from`.
    pub previous_from: DateTime<Utc>,
    pub environment: Option<String>,
    pub change_failure_window_secs: u64,
    pub overall: Keys,
    /// Configured services and any other that deployed in either window, by name.
    pub services: Vec<ServiceKeys>,
    /// One entry per day of the window, oldest first (days without deploys included).
    pub deploys_per_day: Vec<DeployDay>,
    pub refusals_per_day: Vec<RefusalDay>,
    pub open_incidents: Vec<OpenIncident>,
    /// Alerts firing now (each alert of each group, as Alertmanager last said).
    pub firing_alerts: i64,
}

impl Desk {
    /// Registers the overview's settings (`[deploy] change_failure_window`).
    pub fn with_overview(self, settings: OverviewSettings) -> Desk {
        self.with_feature(settings)
    }

    fn overview_settings(&self) -> &OverviewSettings {
        self.feature::<OverviewSettings>()
            .unwrap_or(&DEFAULT_SETTINGS)
    }

    /// The overview at `now` (a page view: not recorded).
    pub async fn overview(
        &self,
        _view: &DashboardView,
        query: &OverviewQuery,
        now: DateTime<Utc>,
    ) -> Result<Overview, CommandError> {
        self.check_overview_query(query)?;
        let settings = self.overview_settings().clone();
        let configured: Vec<String> = self.deploys().services.keys().cloned().collect();
        Ok(store::overview(&self.pool, query, &settings, &configured, now).await?)
    }

    /// `GET /api/overview`: the overview, recorded as one event with the query.
    pub async fn overview_api(
        &self,
        inv: &Invocation,
        query: &OverviewQuery,
        now: DateTime<Utc>,
    ) -> Result<Overview, CommandError> {
        let view = self.dashboard_view(inv).await?;
        let result = self.overview(&view, query, now).await;
        self.conclude(inv, result, |o| {
            format!(
                "{} days: {} changes, {} services",
                o.window_days,
                o.overall.changes,
                o.services.len()
            )
        })
        .await
    }

    fn check_overview_query(&self, query: &OverviewQuery) -> Result<(), CommandError> {
        if !WINDOWS.contains(&query.window_days) {
            return Err(CommandError::Invalid(format!(
                "window: {} days is not a window; one of 7, 30, 90 (days)",
                query.window_days
            )));
        }
        if let Some(environment) = query.environment.as_deref() {
            let known = self.deploys().environment_names();
            if !known.iter().any(|e| e == environment) {
                let known = if known.is_empty() {
                    "no environment is configured".to_owned()
                } else {
                    format!("known environments: {}", known.join(", "))
                };
                return Err(CommandError::Invalid(format!(
                    "environment: `{}` is not an environment; {known}",
                    crate::desk::clean(environment)
                )));
            }
        }
        Ok(())
    }
}
