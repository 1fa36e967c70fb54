//! `[discord] gateway`, and the Kubernetes example's configuration (deploy/kubernetes/).

use super::*;

#[test]
fn the_gateway_runs_on_the_leader_unless_turned_off() {
    let config = Config::load_with_env(None, &env(&[])).expect("defaults");
    assert_eq!(config.discord.gateway, GatewayMode::Leader);
    let config = load_text("[discord]\ngateway = \"off\"\n", &[]).expect("loads");
    assert_eq!(config.discord.gateway, GatewayMode::Off);
    let config = Config::load_with_env(None, &env(&[("OPSBOT_DISCORD_GATEWAY", "off")]))
        .expect("from the environment");
    assert_eq!(config.discord.gateway, GatewayMode::Off);
    let errors = load_text("[discord]\ngateway = \"all\"\n", &[]).expect_err("refused");
    let text = errors.to_string();
    assert!(
        text.contains("discord.gateway") && text.contains("`all` is not a gateway mode"),
        "{text}"
    );
}

/// The `opsbot.toml` of deploy/kubernetes/configmap.yaml is a valid configuration once its
/// secrets are in the environment, as the Deployment puts them there.
#[test]
fn the_kubernetes_example_configuration_loads() {
    let manifest = include_str!("../../../../deploy/kubernetes/configmap.yaml");
    let toml: String = manifest
        .split_once("opsbot.toml: |\n")
        .expect("the opsbot.toml key")
        .1
        .lines()
        .map(|line| format!("{}\n", line.strip_prefix("    ").unwrap_or(line)))
        .collect();
    let secret = "0123456789abcdef0123456789abcdef";
    let config = load_text(
        &toml,
        &[
            ("DISCORD_TOKEN", "discord-token"),
            ("DATABASE_URL", "postgres://opsbot@db/opsbot"),
            ("SESSION_SECRET", secret),
            ("DASHBOARD_TOKEN", secret),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.discord.gateway, GatewayMode::Leader);
    assert!(config.http.session_secret.is_some());
}
