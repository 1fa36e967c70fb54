//! `/deploy status` for Kubernetes services: each environment's Deployment as it runs now.

use std::time::Duration;

use super::rollout::{Counts, Rollout, rollout_status};
use super::{KubernetesSpec, connect, failure};

/// `/deploy status` waits this long for each Deployment's live state (read concurrently):
/// a slow or unreachable cluster delays the reply by at most this.
const LIVE_TIMEOUT: Duration = Duration::from_millis(2500);

/// What `/deploy status` shows of one environment's Deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveWorkload {
    pub service: String,
    pub environment: String,
    /// `namespace/deployment` (the namespace as configured, or the context's).
    pub deployment: String,
    /// The live state, or why it could not be read.
    pub state: Result<LiveState, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LiveState {
    pub counts: Counts,
    /// The configured container's image, if the container exists.
    pub image: Option<String>,
    pub paused: bool,
    /// Whether the latest change has rolled out.
    pub rolled_out: bool,
}

/// The live state of `service`'s Deployment in `environment`, for `/deploy status`.
pub async fn live(spec: &KubernetesSpec, service: &str, environment: &str) -> LiveWorkload {
    let Some(target) = spec.targets.get(environment) else {
        return LiveWorkload {
            service: service.to_owned(),
            environment: environment.to_owned(),
            deployment: "?".to_owned(),
            state: Err("no Deployment configured".to_owned()),
        };
    };
    let configured = target.namespace.as_deref().map_or_else(
        || target.deployment.clone(),
        |ns| format!("{ns}/{}", target.deployment),
    );
    let read = async {
        let deployments = match connect(target).await {
            Ok(deployments) => deployments,
            Err(reason) => return (configured.clone(), Err(reason)),
        };
        let state = match deployments.api.get(&deployments.name).await {
            Ok(d) => Ok(state_of(&d, &target.container)),
            Err(e) => Err(failure(&e, "get", &deployments)),
        };
        (deployments.label, state)
    };
    let (deployment, state) = tokio::time::timeout(LIVE_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| {
            let reason = format!(
                "the Kubernetes API server did not answer within {} ms",
                LIVE_TIMEOUT.as_millis()
            );
            (configured.clone(), Err(reason))
        });
    LiveWorkload {
        service: service.to_owned(),
        environment: environment.to_owned(),
        deployment,
        state,
    }
}

fn state_of(d: &k8s_openapi::api::apps::v1::Deployment, container: &str) -> LiveState {
    let image = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|pod| pod.containers.iter().find(|c| c.name == container))
        .and_then(|c| c.image.clone());
    LiveState {
        counts: Counts::of(d),
        image,
        paused: d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false),
        rolled_out: matches!(rollout_status(d), Rollout::Complete(_)),
    }
}
