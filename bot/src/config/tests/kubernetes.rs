//! `backend = { kind = "kubernetes", ... }`.

use std::time::Duration;

use super::*;

const SERVICE: &str = r#"
[[services]]
name = "api"
environments = ["staging", "production"]
"#;

#[test]
fn a_kubernetes_backend_loads_with_its_defaults_and_overrides() {
    let text = format!(
        "{SERVICE}backend = {{ kind = \"kubernetes\", namespace = \"shop\", deployment = \"api\", container = \"api\", image = \"ghcr.io/acme/api:{{version}}\", environments = {{ production = {{ kubeconfig = \"/etc/opsbot/prod.kubeconfig\", context = \"prod\" }} }} }}\n"
    );
    let config = load_text(&text, &[]).expect("config loads");
    let BackendConfig::Kubernetes {
        target,
        environments,
        timeout,
    } = &config.services[0].backend
    else {
        panic!("{:?}", config.services[0].backend);
    };
    assert_eq!(*timeout, Duration::from_secs(15 * 60));
    assert_eq!(
        (target.kubeconfig.as_ref(), target.context.as_deref()),
        (None, None),
        "in-cluster or the usual kubeconfig by default"
    );
    let production = target.overridden_by(&environments["production"]);
    assert_eq!(
        production,
        KubernetesTargetConfig {
            kubeconfig: Some("/etc/opsbot/prod.kubeconfig".into()),
            context: Some("prod".into()),
            namespace: Some("shop".into()),
            deployment: Some("api".into()),
            container: Some("api".into()),
            image: Some("ghcr.io/acme/api:{version}".into()),
        }
    );
}

#[test]
fn kubernetes_backend_problems_name_their_place() {
    let text = format!(
        "{SERVICE}backend = {{ kind = \"kubernetes\", namespace = \"\", deployment = \"api\", image = \"ghcr.io/acme/api:{{verison}}\", replicas = 3, environments = {{ prod = {{ context = \"p\" }}, staging = {{ image = \"ghcr.io/acme/api:latest\", cluster = \"x\" }} }} }}\n"
    );
    insta::assert_snapshot!(problems_of(&text, &[]), @r#"
    services[0].backend.replicas: unknown key (opsbot.toml:5:108)
      hint: known keys in a kubernetes backend: kind, kubeconfig, context, namespace, deployment, container, image, timeout, environments
    services[0].backend: has no `container`, which a kubernetes backend needs (opsbot.toml:5:1)
      hint: add container = "api"
    services[0].backend.namespace: is empty (opsbot.toml:5:34)
      hint: write a namespace such as "shop"
    services[0].backend.image: unknown placeholder `{verison}` (opsbot.toml:5:70)
      hint: did you mean `{version}`? placeholders: {version} {service} {environment}
    services[0].backend.environments.staging.cluster: unknown key (opsbot.toml:5:212)
      hint: known keys in a kubernetes environment: kubeconfig, context, namespace, deployment, container, image
    services[0].backend.environments.staging.image: `ghcr.io/acme/api:latest` has no `{version}`, so every deploy would set the same image (opsbot.toml:5:177)
      hint: write e.g. image = "ghcr.io/acme/api:{version}"
    "#);

    let text = format!(
        "{SERVICE}backend = {{ kind = \"kubernetes\", deployment = \"api\", container = \"api\", image = \"ghcr.io/acme/api:{{version}}\", environments = {{ prod = {{ context = \"p\" }} }} }}\n"
    );
    insta::assert_snapshot!(problems_of(&text, &[]), @r"
    services[0].backend.environments.prod: the service does not deploy to `prod` (opsbot.toml:5:128)
      hint: its environments: staging, production
    ");
}
