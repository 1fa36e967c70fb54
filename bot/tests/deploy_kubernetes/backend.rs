//! The kubernetes backend alone against the fake: resuming after a restart, the timeout, shutdown.

use std::collections::BTreeMap;
use std::time::Duration;

use opsbot_commands::deploy::backends::kubernetes::{self, KubernetesSpec, KubernetesTarget};
use opsbot_commands::deploy::backends::{BackendEvent, DeployJob, Finish};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::fake_kube::{FakeKube, deployment};

fn spec(kubeconfig: &std::path::Path, timeout: Duration) -> KubernetesSpec {
    let target = KubernetesTarget {
        kubeconfig: Some(kubeconfig.to_owned()),
        context: None,
        namespace: None,
        deployment: "api".into(),
        container: "api".into(),
        image: "ghcr.io/acme/api:{version}".into(),
    };
    KubernetesSpec {
        targets: BTreeMap::from([("staging".to_owned(), target)]),
        timeout,
    }
}

fn job() -> DeployJob {
    DeployJob {
        deploy_id: 9,
        correlation_id: uuid::Uuid::nil(),
        service: "api".into(),
        version: "v2".into(),
        environment: "staging".into(),
        requested_by: "ana".into(),
        is_rollback: false,
    }
}

async fn fake_with_kubeconfig() -> (FakeKube, tempfile::NamedTempFile) {
    let fake = FakeKube::start().await;
    let file = tempfile::NamedTempFile::new().expect("kubeconfig");
    std::fs::write(file.path(), fake.kubeconfig()).expect("write");
    fake.insert(deployment("shop", "api", "api", "ghcr.io/acme/api:v1", 2));
    (fake, file)
}

fn progress(reports: &mut mpsc::UnboundedReceiver<BackendEvent>) -> Vec<String> {
    let mut lines = Vec::new();
    while let Ok(event) = reports.try_recv() {
        if let BackendEvent::Progress(line) = event {
            lines.push(line);
        }
    }
    lines
}

#[tokio::test]
async fn with_a_checkpoint_the_rollout_is_followed_without_a_second_patch() {
    let (fake, kubeconfig) = fake_with_kubeconfig().await;
    // Patched before the restart: generation 2, not yet observed.
    fake.update("shop", "api", |d| d.metadata.generation = Some(2));
    let spec = spec(kubeconfig.path(), Duration::from_secs(30));
    let (events, mut reports) = mpsc::unbounded_channel();
    let checkpoint = serde_json::json!({ "image": "ghcr.io/acme/api:v2", "generation": 2 });
    let job = job();
    let run = kubernetes::execute(
        &spec,
        &job,
        Some(checkpoint),
        events,
        CancellationToken::new(),
    );
    let drive = async {
        fake.watch_started(0).await;
        fake.step("shop", "api", 2, 2, 2);
    };
    let (finish, ()) = tokio::join!(run, drive);
    assert_eq!(
        finish,
        Finish::Succeeded {
            detail: "deployment shop/api rolled out: 2/2 updated, 2 available".into()
        }
    );
    assert!(fake.patches().is_empty(), "{:?}", fake.patches());
    assert_eq!(
        progress(&mut reports),
        [
            "following the rollout of deployment shop/api again",
            "waiting for the deployment controller to observe generation 2",
            "2/2 updated, 2 available",
        ]
    );
}

#[tokio::test]
async fn a_rollout_that_never_finishes_fails_at_the_timeout_naming_the_last_state() {
    let (fake, kubeconfig) = fake_with_kubeconfig().await;
    let spec = spec(kubeconfig.path(), Duration::from_secs(1));
    let (events, _reports) = mpsc::unbounded_channel();
    let finish = kubernetes::execute(&spec, &job(), None, events, CancellationToken::new()).await;
    assert_eq!(
        finish,
        Finish::Failed {
            reason: "the rollout of deployment shop/api did not finish within 1s; last seen: waiting for the deployment controller to observe generation 2".into()
        }
    );
    assert_eq!(fake.patches().len(), 1);
}

#[tokio::test]
async fn shutdown_leaves_the_deploy_to_be_resumed() {
    let (fake, kubeconfig) = fake_with_kubeconfig().await;
    let spec = spec(kubeconfig.path(), Duration::from_secs(30));
    let (events, _reports) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let job = job();
    let run = kubernetes::execute(&spec, &job, None, events, cancel.clone());
    let stop = async {
        fake.watch_started(0).await;
        cancel.cancel();
    };
    let (finish, ()) = tokio::join!(run, stop);
    assert_eq!(finish, Finish::Interrupted);
}
