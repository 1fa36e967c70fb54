//! Deploys from Discord.
//!
//! ```text
//! /deploy run service:api version:v1.2.3 env:production [reason:"..."] [override:true]
//! /deploy status [service]          /deploy history service [env]
//! /deploy lock service env reason [duration]      /deploy unlock service env
//! /rollback service env [to]
//! ```
//!
//! A request passes access (`deploy:<env>`), locks, freeze windows (`override:true` needs
//! `deploy:override`) and the one-at-a-time rule, then waits for approvals
//! (`[environments.<env>] approvals`, by members with `deploy:approve:<env>` other than the
//! requester, bound to the exact service, version and environment, expiring after
//! `[deploy] approval_timeout`) and is carried out by the service's backend
//! ([`backends`]) under the [`tracker`]. State lives in `deploys`; every transition is audited
//! with the deploy's correlation id and announced through the outbox.

pub mod backends;
mod commands;
pub mod dashboard;
pub mod freeze;
mod locks;
mod model;
mod reads;
pub mod report;
mod store;
pub mod tracker;
pub mod view;

pub use commands::{Decision, DeployOutcome};
pub use locks::{LockOutcome, UnlockOutcome};
pub use model::{Deploy, DeployState, Lock};
pub use reads::StatusReport;
pub use store::{deploy_by_id, recent_deploys, recent_versions, started_between};
pub use view::{ButtonBinding, parse_button};

use std::collections::BTreeMap;
use std::time::Duration;

use backends::BackendSpec;
use freeze::FreezeWindow;

use crate::desk::Desk;
use crate::error::CommandError;

/// A deployable service, as configured.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub name: String,
    pub environments: Vec<String>,
    pub backend: BackendSpec,
}

/// The policy of one environment.
#[derive(Debug, Clone, Default)]
pub struct EnvironmentPolicy {
    /// Approvers other than the requester.
    pub approvals: u32,
    pub freeze: Vec<FreezeWindow>,
}

/// Everything the deploy feature knows from the config.
#[derive(Debug, Clone, Default)]
pub struct DeployCatalog {
    pub services: BTreeMap<String, ServiceSpec>,
    pub environments: BTreeMap<String, EnvironmentPolicy>,
    pub approval_timeout: Duration,
    /// `[channels] deploys`: where transitions are announced.
    pub announce_channel: Option<i64>,
    /// `[http] public_url`: deploy messages link to their page there.
    pub public_url: Option<String>,
}

impl DeployCatalog {
    pub fn policy(&self, environment: &str) -> EnvironmentPolicy {
        self.environments
            .get(environment)
            .cloned()
            .unwrap_or_default()
    }

    /// Every environment some service deploys to, sorted.
    pub fn environment_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .services
            .values()
            .flat_map(|s| s.environments.iter().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// The deploy feature's state on the [`Desk`]: the catalog, and the tracker's wake-up.
#[derive(Debug, Default)]
struct DeployFeature {
    catalog: DeployCatalog,
    /// Wakes the deploy tracker when a deploy becomes ready to start.
    wakeup: std::sync::Arc<tokio::sync::Notify>,
}

static NO_DEPLOYS: std::sync::LazyLock<DeployFeature> =
    std::sync::LazyLock::new(DeployFeature::default);

impl Desk {
    /// Registers what the config says about deploys.
    pub fn with_deploys(self, catalog: DeployCatalog) -> Desk {
        self.with_feature(DeployFeature {
            catalog,
            wakeup: Default::default(),
        })
    }

    fn deploy_feature(&self) -> &DeployFeature {
        self.feature::<DeployFeature>().unwrap_or(&NO_DEPLOYS)
    }

    /// What the config says about deploys (empty when none are configured).
    pub fn deploys(&self) -> &DeployCatalog {
        &self.deploy_feature().catalog
    }

    pub(crate) fn deploy_wakeup(&self) -> &tokio::sync::Notify {
        &self.deploy_feature().wakeup
    }

    /// What wakes the deploy tracker's loop early (a deploy became ready to start).
    pub fn deploy_tracker_wakeup(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.deploy_feature().wakeup.clone()
    }

    /// Versions deployed before, newest first, for autocomplete: of `service` if given,
    /// starting with `partial`.
    pub async fn deploy_versions(
        &self,
        service: Option<&str>,
        partial: &str,
        limit: i64,
    ) -> Result<Vec<String>, CommandError> {
        Ok(store::recent_versions(&self.pool, service, partial, limit).await?)
    }
}

/// What `/deploy run` (and `/rollback`) asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployRequest {
    pub service: String,
    pub version: String,
    pub environment: String,
    pub reason: String,
    pub override_freeze: bool,
}

#[cfg(test)]
mod tests;
