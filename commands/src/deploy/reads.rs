//! `/deploy status [service]` and `/deploy history service [env]`: anyone may look; each
//! look is audited.

use super::model::{Deploy, Lock};
use super::store;
use crate::desk::{Desk, Invocation};
use crate::error::CommandError;

/// Deploys `/deploy history` lists.
const HISTORY_LIMIT: i64 = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    /// Active deploys and the latest finished one per service and environment, at most
    /// [`store::STATUS_MAX`](super::store::STATUS_MAX), sorted by service and environment.
    pub deploys: Vec<Deploy>,
    /// Active deploys not shown (there were more than fit).
    pub more_active: i64,
    /// Some service's latest finished deploy was left out for want of room.
    pub more_finished: bool,
    pub locks: Vec<Lock>,
    /// What runs now in each environment of the Kubernetes services shown.
    pub live: Vec<super::backends::kubernetes::LiveWorkload>,
}

impl Desk {
    /// `/deploy status [service]`: anyone may look.
    pub async fn deploy_status(
        &self,
        inv: &Invocation,
        service: Option<&str>,
    ) -> Result<StatusReport, CommandError> {
        if let Some(name) = service
            && let Err(e) = self.service(name)
        {
            return Err(self.refuse(inv, e).await);
        }
        let pairs: Vec<(String, String)> = self
            .deploys()
            .services
            .values()
            .flat_map(|s| s.environments.iter().map(|e| (s.name.clone(), e.clone())))
            .collect();
        let result = async {
            let rows = store::status(&self.pool, service, &pairs).await?;
            Ok(StatusReport {
                deploys: rows.deploys,
                more_active: rows.more_active,
                more_finished: rows.more_finished,
                locks: store::active_locks(&self.pool, service).await?,
                live: self.live_workloads(service).await,
            })
        }
        .await;
        self.conclude(inv, result, |r| {
            format!("{} deploys, {} locks", r.deploys.len(), r.locks.len())
        })
        .await
    }

    /// The live Deployments of the Kubernetes services (only `service`'s, if given), read
    /// concurrently.
    async fn live_workloads(
        &self,
        service: Option<&str>,
    ) -> Vec<super::backends::kubernetes::LiveWorkload> {
        use super::backends::{BackendSpec, kubernetes};
        let reads = self
            .deploys()
            .services
            .values()
            .filter(|s| service.is_none_or(|name| s.name == name))
            .filter_map(|s| match &s.backend {
                BackendSpec::Kubernetes(spec) => Some((s, spec)),
                _ => None,
            })
            .flat_map(|(s, spec)| {
                s.environments
                    .iter()
                    .map(move |env| kubernetes::live(spec, &s.name, env))
            });
        futures_util::future::join_all(reads).await
    }

    /// `/deploy history service [env]`: anyone may look.
    pub async fn deploy_history(
        &self,
        inv: &Invocation,
        service: &str,
        environment: Option<&str>,
    ) -> Result<Vec<Deploy>, CommandError> {
        let checked = match environment {
            Some(env) => self.service_in(service, env).map(|_| ()),
            None => self.service(service).map(|_| ()),
        };
        if let Err(e) = checked {
            return Err(self.refuse(inv, e).await);
        }
        let result = store::history(&self.pool, service, environment, HISTORY_LIMIT)
            .await
            .map_err(CommandError::from);
        self.conclude(inv, result, |d| format!("{} deploys", d.len()))
            .await
    }
}
