use uuid::Uuid;

use super::*;

fn job(is_rollback: bool) -> DeployJob {
    DeployJob {
        deploy_id: 42,
        correlation_id: Uuid::nil(),
        service: "api".into(),
        version: "v1.2.3".into(),
        environment: "production".into(),
        requested_by: "ana".into(),
        is_rollback,
    }
}

#[test]
fn the_image_template_takes_the_deploy_values() {
    let target = KubernetesTarget {
        kubeconfig: None,
        context: None,
        namespace: Some("shop".into()),
        deployment: "api".into(),
        container: "api".into(),
        image: "registry.example.com/{environment}/{service}:{version}".into(),
    };
    assert_eq!(
        target.image_for(&job(false)),
        "registry.example.com/production/api:v1.2.3"
    );
}

#[test]
fn the_change_cause_names_the_deploy_and_who_asked() {
    assert_eq!(
        change_cause(&job(false)),
        "opsbot deploy #42: api v1.2.3 to production, requested by ana"
    );
    assert_eq!(
        change_cause(&job(true)),
        "opsbot rollback #42: api v1.2.3 to production, requested by ana"
    );
}

#[tokio::test]
async fn an_environment_without_a_deployment_fails_clearly() {
    let spec = KubernetesSpec {
        targets: BTreeMap::new(),
        timeout: Duration::from_secs(5),
    };
    let (events, _reports) = mpsc::unbounded_channel();
    let finish = execute(&spec, &job(false), None, events, CancellationToken::new()).await;
    assert_eq!(
        finish,
        Finish::Failed {
            reason: "the kubernetes backend of api has no Deployment for environment production"
                .into()
        }
    );
}

#[tokio::test]
async fn an_unreachable_api_server_is_the_failure_reason() {
    // A port nothing listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n"
        ),
    )
    .expect("write kubeconfig");
    let target = KubernetesTarget {
        kubeconfig: Some(kubeconfig),
        context: None,
        namespace: None,
        deployment: "api".into(),
        container: "api".into(),
        image: "ghcr.io/acme/api:{version}".into(),
    };
    let spec = KubernetesSpec {
        targets: BTreeMap::from([("production".to_owned(), target)]),
        timeout: Duration::from_secs(5),
    };
    let (events, _reports) = mpsc::unbounded_channel();
    let Finish::Failed { reason } =
        execute(&spec, &job(false), None, events, CancellationToken::new()).await
    else {
        panic!("an unreachable server cannot succeed");
    };
    assert!(
        reason.starts_with(&format!(
            "could not get deployment default/api on the Kubernetes API server at http://127.0.0.1:{port}/"
        )),
        "{reason}"
    );
}
