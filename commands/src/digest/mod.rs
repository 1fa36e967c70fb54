//! Scheduled digests: one summary per schedule instead of a hundred pings.
//!
//! How a user sets it up and invokes it:
//! - `[[digests]]` in the config: a `name`, a six-field `cron` (seconds first), a `timezone`,
//!   a `channel`, the sections to `include` (`deploys`, `incidents`, `alerts`, `audit`),
//!   `when_empty` (`post` says "all quiet", `skip` posts nothing) and a catch-up `grace`.
//! - Each fire time posts one message covering the window since the previous fire time.
//!   Alert routes with `mode = "digest"` are never posted on their own: they appear here.
//! - `/digest preview name` shows the digest now, only to you (`digest:preview`);
//!   `opsbot digest run NAME` posts it now; `opsbot digest list` prints the next fire times.
//!
//! Exactly once: every fire time is claimed (`digest_runs`, `INSERT … ON CONFLICT DO
//! NOTHING`) in the transaction that writes its outbox row and audit event, so several
//! replicas (or a replica restarted mid-round) post it once. A fire time missed by at most
//! `grace` (all replicas were down) is caught up once; older ones are skipped, with a log
//! line and an audit event.
//!
//! - [`schedule`]: cron in a time zone, DST-safe; [`sections`]: rows → text (pure);
//!   [`store`]: the window's rows and the claims; [`commands`]: the Desk methods.

pub mod commands;
pub mod schedule;
pub mod sections;
pub mod store;

use std::time::Duration;

use crate::desk::Desk;
pub use schedule::Schedule;

/// A part of the digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    Deploys,
    Incidents,
    Alerts,
    Audit,
}

impl Section {
    pub const ALL: [Section; 4] = [
        Section::Deploys,
        Section::Incidents,
        Section::Alerts,
        Section::Audit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Section::Deploys => "deploys",
            Section::Incidents => "incidents",
            Section::Alerts => "alerts",
            Section::Audit => "audit",
        }
    }

    pub fn parse(text: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// What a digest with nothing to report does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenEmpty {
    /// Posts "all quiet" (the default: silence could also mean the bot is down).
    #[default]
    Post,
    /// Posts nothing (the fire time is still claimed and audited).
    Skip,
}

/// The default catch-up window: a replica restarted within the hour still posts the digest.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

/// One `[[digests]]` entry, in the domain's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestSpec {
    pub name: String,
    pub schedule: Schedule,
    pub channel: i64,
    /// In the order written; never empty.
    pub include: Vec<Section>,
    pub when_empty: WhenEmpty,
    pub grace: Duration,
}

/// Every digest, and what their messages link to.
#[derive(Debug, Clone, Default)]
pub struct DigestCatalog {
    pub digests: Vec<DigestSpec>,
    /// `[http] public_url`: each digest links the dashboard's audit page for its window.
    pub public_url: Option<String>,
}

static NO_DIGESTS: std::sync::LazyLock<DigestCatalog> =
    std::sync::LazyLock::new(DigestCatalog::default);

impl Desk {
    /// Registers the configured digests.
    pub fn with_digests(self, catalog: DigestCatalog) -> Desk {
        self.with_feature(catalog)
    }

    /// The configured digests (none when not configured).
    pub fn digests(&self) -> &DigestCatalog {
        self.feature::<DigestCatalog>().unwrap_or(&NO_DIGESTS)
    }
}

#[cfg(test)]
mod tests;
