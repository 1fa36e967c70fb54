//! Reading the audit log through the web door: the dashboard's pages (`/`, `/events/{id}`,
//! the live tail, a deploy's story) and its API (`GET /api/audit`, `/api/audit.csv`,
//! `/api/audit.jsonl`). Every read needs `audit:read`, checked here like `/audit recent`
//! checks it, and a denial is audited. API queries and exports are recorded, one event per
//! request (who, which filters, how many rows); page views of the HTML dashboard are not.

use uuid::Uuid;

use super::browse;
use super::commands::check_filter;
use super::model::{AuditEvent, Outcome};
use super::query::{self, AuditQuery, Page};
use crate::desk::{Desk, Invocation};
use crate::error::CommandError;

/// The permission every dashboard read needs.
pub const READ_PERMISSION: &str = "audit:read";

/// Proof that the actor of an invocation may read the dashboard: the read methods ask for
/// it, so no page can skip the check.
#[derive(Debug)]
pub struct DashboardView(());

impl Desk {
    /// Checks that `inv`'s actor may read the audit log (a denial is audited).
    pub async fn dashboard_view(&self, inv: &Invocation) -> Result<DashboardView, CommandError> {
        self.authorize(inv, READ_PERMISSION, "read the audit log")
            .await?;
        Ok(DashboardView(()))
    }

    /// One page of events for a dashboard page (not recorded: a page view).
    pub async fn audit_page(
        &self,
        _view: &DashboardView,
        filter: &AuditQuery,
    ) -> Result<Page, CommandError> {
        check_filter(filter)?;
        Ok(query::query(&self.pool, filter).await?)
    }

    /// One event by id, for its page.
    pub async fn audit_event(
        &self,
        _view: &DashboardView,
        id: i64,
    ) -> Result<Option<AuditEvent>, CommandError> {
        Ok(query::event(&self.pool, id).await?)
    }

    /// One page of a story (a deploy, an incident): events after `after_id`, oldest first.
    pub async fn audit_story(
        &self,
        _view: &DashboardView,
        correlation_id: Uuid,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, CommandError> {
        Ok(query::by_correlation(&self.pool, correlation_id, after_id, limit).await?)
    }

    /// Events newer than `after_id`, oldest first (the live tail).
    pub async fn audit_newer(
        &self,
        _view: &DashboardView,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, CommandError> {
        Ok(query::newer_than(&self.pool, after_id, limit).await?)
    }

    /// How many events match `filter` (its cursor aside), exact up to
    /// [`browse::COUNT_BOUND`]; more is `COUNT_BOUND + 1`.
    pub async fn audit_count(
        &self,
        _view: &DashboardView,
        filter: &AuditQuery,
    ) -> Result<i64, CommandError> {
        check_filter(filter)?;
        Ok(browse::count_matching(&self.pool, filter, browse::COUNT_BOUND).await?)
    }

    /// Events newer than `after_id` that match `filter`, oldest first (the live tail under
    /// filters; the way back from an older page).
    pub async fn audit_newer_matching(
        &self,
        _view: &DashboardView,
        filter: &AuditQuery,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, CommandError> {
        check_filter(filter)?;
        Ok(browse::newer_matching(&self.pool, filter, after_id, limit).await?)
    }

    /// The command picker's choices: `(command, is a group)`, groups before their commands.
    pub async fn audit_commands(
        &self,
        _view: &DashboardView,
    ) -> Result<Vec<(String, bool)>, CommandError> {
        Ok(browse::command_choices(
            &browse::known_commands(&self.pool).await?,
        ))
    }

    /// The deploys and incidents these correlation ids belong to.
    pub async fn audit_references(
        &self,
        _view: &DashboardView,
        correlation_ids: &[Uuid],
    ) -> Result<std::collections::BTreeMap<Uuid, browse::Reference>, CommandError> {
        Ok(browse::references(&self.pool, correlation_ids).await?)
    }

    /// `GET /api/audit`: one page, recorded as one event with the filters (the invocation's
    /// arguments) and the number of events returned.
    pub async fn audit_api_query(
        &self,
        inv: &Invocation,
        filter: &AuditQuery,
    ) -> Result<Page, CommandError> {
        let view = self.dashboard_view(inv).await?;
        let result = self.audit_page(&view, filter).await;
        self.conclude(inv, result, |page| format!("{} events", page.events.len()))
            .await
    }

    /// Starts an export of every event matching `filter`, newest first, page by page. The
    /// export is recorded once, when it ends ([`AuditExport::next_page`] returns `None`),
    /// with the number of events sent; an export cut short (the client left, the database
    /// failed) is recorded when it is dropped, with the count so far.
    pub async fn audit_export(
        &self,
        inv: &Invocation,
        filter: AuditQuery,
    ) -> Result<AuditExport, CommandError> {
        self.dashboard_view(inv).await?;
        if let Err(e) = check_filter(&filter) {
            return Err(self.refuse(inv, e).await);
        }
        Ok(AuditExport {
            desk: self.clone(),
            inv: inv.clone(),
            filter,
            next: Some(None),
            sent: 0,
            recorded: false,
        })
    }
}

/// An export in progress (see [`Desk::audit_export`]).
#[derive(Debug)]
pub struct AuditExport {
    desk: Desk,
    inv: Invocation,
    filter: AuditQuery,
    /// `Some(cursor)` while pages remain (`Some(None)`: the first).
    next: Option<Option<i64>>,
    sent: usize,
    recorded: bool,
}

impl AuditExport {
    /// The next page, or `None` once every event was returned (the export is then recorded;
    /// a failure to record is the last page's error, so the download ends incomplete).
    pub async fn next_page(&mut self) -> Result<Option<Vec<AuditEvent>>, CommandError> {
        let Some(before) = self.next else {
            return Ok(None);
        };
        self.filter.before_id = before;
        let page = query::query(&self.desk.pool, &self.filter).await?;
        self.sent += page.events.len();
        self.next = page.next_cursor.map(Some);
        if self.next.is_none() {
            let detail = format!("{} events exported", self.sent);
            self.desk.record(&self.inv, Outcome::Ok, &detail).await?;
            self.recorded = true;
        }
        Ok(Some(page.events))
    }

    /// Events returned so far.
    pub fn sent(&self) -> usize {
        self.sent
    }
}

impl Drop for AuditExport {
    fn drop(&mut self) {
        if self.recorded {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                sent = self.sent,
                "an export ended without a runtime to record it"
            );
            return;
        };
        let desk = self.desk.clone();
        let inv = self.inv.clone();
        let detail = format!("export cut short after {} events", self.sent);
        runtime.spawn(async move {
            if let Err(e) = desk.record(&inv, Outcome::Error, &detail).await {
                tracing::warn!(error = %e, "could not record an export that was cut short");
            }
        });
    }
}
