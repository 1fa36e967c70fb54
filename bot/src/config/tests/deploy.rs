//! `[channels]`, `[deploy]`, `[environments.*]`, `[[services]]` and `http.public_url`.

use std::time::Duration;

use super::super::backend::BACKEND_KINDS;
use super::super::services::ENVIRONMENT_KEYS;
use super::*;

/// A config with one valid service per backend kind, to which each test appends.
const SERVICES: &str = r#"
[[services]]
name = "api"
environments = ["staging", "production"]
backend = { kind = "github_actions", repo = "acme/api", workflow = "deploy.yml", token = "env:GITHUB_TOKEN" }

[[services]]
name = "web"
environments = ["production"]
backend = { kind = "webhook", url = "https://deployer.internal/hooks/opsbot/", secret = "env:HOOK_SECRET" }

[[services]]
name = "worker"
environments = ["staging"]
backend = { kind = "command", program = "./scripts/deploy.sh", args = ["{service}", "--version={version}"] }
"#;

const SECRETS: &[(&str, &str)] = &[("GITHUB_TOKEN", "ghp-1"), ("HOOK_SECRET", "whsec-1")];

fn problems(text: &str) -> String {
    problems_of(text, SECRETS)
}

#[test]
fn services_load_with_their_defaults() {
    let text = format!(
        "{SERVICES}\n[[services]]\nname = \"batch\"\nenvironments = [\"staging\"]\nbackend = {{ kind = \"github_actions\", repo = \"acme/batch\", workflow = \"ship.yml\", ref = \"release\", token = \"env:GITHUB_TOKEN\", api_base = \"https://github.example.com/api/v3/\", poll_interval = \"30s\", timeout = \"2h\" }}\n"
    );
    let config = load_text(&text, SECRETS).expect("config loads");
    let names: Vec<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["api", "web", "worker", "batch"]);
    assert_eq!(config.services[0].environments, ["staging", "production"]);

    let BackendConfig::GithubActions {
        repo,
        workflow,
        git_ref,
        token,
        api_base,
        poll_interval,
        timeout,
    } = &config.services[0].backend
    else {
        panic!("{:?}", config.services[0].backend);
    };
    assert_eq!(
        (repo.as_str(), workflow.as_str(), git_ref.as_str()),
        ("acme/api", "deploy.yml", "main")
    );
    assert_eq!(token.expose(), "ghp-1");
    assert_eq!(token.origin(), "env:GITHUB_TOKEN");
    assert_eq!(api_base, "https://api.github.com");
    assert_eq!(*poll_interval, Duration::from_secs(10));
    assert_eq!(*timeout, Duration::from_secs(3600));

    let BackendConfig::Webhook {
        url,
        secret,
        timeout,
    } = &config.services[1].backend
    else {
        panic!("{:?}", config.services[1].backend);
    };
    assert_eq!(url, "https://deployer.internal/hooks/opsbot");
    assert_eq!(secret.expose(), "whsec-1");
    assert_eq!(*timeout, Duration::from_secs(30 * 60));

    let BackendConfig::Command {
        program,
        args,
        timeout,
        workdir,
    } = &config.services[2].backend
    else {
        panic!("{:?}", config.services[2].backend);
    };
    assert_eq!(program, "./scripts/deploy.sh");
    assert_eq!(args, &["{service}", "--version={version}"]);
    assert_eq!(*timeout, Duration::from_secs(10 * 60));
    assert_eq!(*workdir, None);
    assert_eq!(config.services[2].backend.timeout(), *timeout);

    let BackendConfig::GithubActions {
        git_ref,
        api_base,
        poll_interval,
        timeout,
        ..
    } = &config.services[3].backend
    else {
        panic!("{:?}", config.services[3].backend);
    };
    assert_eq!(git_ref, "release");
    assert_eq!(api_base, "https://github.example.com/api/v3");
    assert_eq!(*poll_interval, Duration::from_secs(30));
    assert_eq!(*timeout, Duration::from_secs(2 * 3600));

    let debug = format!("{config:?}");
    assert!(
        !debug.contains("ghp-1") && !debug.contains("whsec-1"),
        "{debug}"
    );
}

#[test]
fn channels_deploy_and_public_url_load_and_take_env_overrides() {
    let text = "[channels]\ndeploys = 1\nincidents = 2\nalerts = 3\nincident_category = 4\n[deploy]\napproval_timeout = \"45m\"\n[http]\npublic_url = \"https://ops.example.com/opsbot/\"\n";
    let config = load_text(text, &[]).expect("config loads");
    assert_eq!(
        config.channels,
        ChannelsConfig {
            deploys: Some(1),
            incidents: Some(2),
            alerts: Some(3),
            incident_category: Some(4),
            incident_archive_category: None,
        }
    );
    assert_eq!(config.deploy.approval_timeout, Duration::from_secs(45 * 60));
    assert_eq!(
        config.http.public_url.as_deref(),
        Some("https://ops.example.com/opsbot")
    );

    let config = load_text(
        text,
        &[
            ("OPSBOT_CHANNELS_DEPLOYS", "111"),
            ("OPSBOT_DEPLOY_APPROVAL_TIMEOUT", "1h"),
            ("OPSBOT_HTTP_PUBLIC_URL", "http://127.0.0.1:8080/"),
        ],
    )
    .expect("config loads");
    assert_eq!(config.channels.deploys, Some(111));
    assert_eq!(config.channels.incidents, Some(2));
    assert_eq!(config.deploy.approval_timeout, Duration::from_secs(3600));
    assert_eq!(
        config.http.public_url.as_deref(),
        Some("http://127.0.0.1:8080")
    );
}

#[test]
fn bad_channels_durations_and_public_urls() {
    let problems = problems_of(
        "[channels]\ndeploys = 0\nalerts = \"#alerts\"\n[deploy]\napproval_timeout = \"0s\"\n[http]\npublic_url = \"opsbot.example.com\"\n",
        &[
            ("OPSBOT_CHANNELS_INCIDENTS", "-5"),
            ("OPSBOT_DEPLOY_APPROVAL_TIMEOUT", "soon"),
        ],
    );
    insta::assert_snapshot!(problems, @r##"
    http.public_url: `opsbot.example.com` is not an absolute http(s) URL (opsbot.toml:7:1)
      hint: write the scheme, host and any path, e.g. "https://opsbot.example.com"
    channels.deploys: 0 is not a channel id; Discord ids are positive (opsbot.toml:2:1)
      hint: write the channel id as a bare number, e.g. 111111111111111111 (Developer Mode → right-click the channel → Copy Channel ID)
    OPSBOT_CHANNELS_INCIDENTS (env): -5 is not a channel id; Discord ids are positive
      hint: write the channel id as a bare number, e.g. 111111111111111111 (Developer Mode → right-click the channel → Copy Channel ID)
    channels.alerts: expected a channel id, found string "#alerts" (opsbot.toml:3:1)
      hint: write the channel id as a bare number, e.g. 111111111111111111 (Developer Mode → right-click the channel → Copy Channel ID)
    OPSBOT_DEPLOY_APPROVAL_TIMEOUT (env): `soon` is not a duration: expected number at 0
      hint: write a number and a unit, e.g. "30s", "10m", "1h" or "1h 30m"
    "##);

    let problems = problems_of(
        "[deploy]\napproval_timeout = \"0s\"\n[http]\npublic_url = \"https://ops.example.com/?x=1\"\n",
        &[],
    );
    insta::assert_snapshot!(problems, @r#"
    http.public_url: `https://ops.example.com/?x=1` is not an absolute http(s) URL (opsbot.toml:4:1)
      hint: write the scheme, host and any path, e.g. "https://opsbot.example.com"
    deploy.approval_timeout: `0s` is no time at all (opsbot.toml:2:1)
      hint: write a number and a unit, e.g. "30s", "10m", "1h" or "1h 30m"
    "#);
}

#[test]
fn services_cannot_be_set_from_the_environment() {
    let errors = load_text(
        SERVICES,
        &[
            ("GITHUB_TOKEN", "ghp-1"),
            ("HOOK_SECRET", "whsec-1"),
            ("OPSBOT_SERVICES_NAME", "api"),
        ],
    )
    .expect_err("services from env refused");
    insta::assert_snapshot!(errors.to_string(), @r"
    OPSBOT_SERVICES_NAME (env): [[services]] can only be set in the config file
      hint: write each entry under its own [[services]] header in the file, and unset OPSBOT_SERVICES_NAME
    ");
}

#[test]
fn environments_carry_approvals_and_freeze_windows() {
    let text = format!(
        "{SERVICES}\n[environments.production]\napprovals = 2\nfreeze = [\"Fri 16:00 - Mon 08:00 America/Los_Angeles\", \"2026-12-24 00:00 - 2026-12-27 08:00 Europe/Berlin\"]\n[environments.staging]\n"
    );
    let config = load_text(&text, SECRETS).expect("config loads");
    let production = &config.environments["production"];
    assert_eq!(production.approvals, 2);
    assert_eq!(production.freeze.len(), 2);
    assert_eq!(
        production.freeze[1].describe(),
        "2026-12-24 00:00 - 2026-12-27 08:00 Europe/Berlin"
    );
    assert_eq!(config.environments["staging"], EnvironmentConfig::default());
}

#[test]
fn bad_environments() {
    let problems = problems(&format!(
        r#"{SERVICES}
[environments.production]
approvals = 11
freeze = ["Fri 16:00 - Mon 08:00 UTC", "Fry 16:00 - Mon 08:00 UTC"]
aprovals = 1

[environments.prodution]
approvals = 1

[environments.Staging]
freeze = "Fri 16:00 - Mon 08:00 UTC"
"#
    ));
    insta::assert_snapshot!(problems, @r#"
    environments.Staging: `Staging` is not a valid environment name (opsbot.toml:25:15)
      hint: use 1 to 32 lowercase letters, digits, `-` or `_`, starting with a letter or digit (it becomes a Discord option value)
    environments.Staging.freeze: expected a list of freeze windows, found string "Fri 16:00 - Mon 08:00 UTC" (opsbot.toml:26:1)
      hint: write freeze = ["Fri 16:00 - Mon 08:00 America/Los_Angeles"]
    environments.production.aprovals: unknown key (opsbot.toml:20:1)
      hint: did you mean `approvals`? known keys in [environments.production]: approvals, freeze
    environments.production.approvals: 11 is out of range 0..=10 (opsbot.toml:18:1)
      hint: the number of people other than the requester who must approve, 0 to 10
    environments.production.freeze[1]: `Fry` is not a day of the week (Mon, Tue, Wed, Thu, Fri, Sat, Sun) (opsbot.toml:19:40)
      hint: write "Fri 16:00 - Mon 08:00 America/Los_Angeles" (every week) or "2026-12-24 00:00 - 2026-12-27 08:00 Europe/Berlin" (once)
    environments.prodution: no service deploys to `prodution`; services deploy to: production, staging (opsbot.toml:22:15)
      hint: did you mean [environments.production]? Its approvals and freeze windows apply only under the right name
    "#);
}

#[test]
fn an_environment_without_services_is_refused() {
    let problems = problems_of("[environments.production]\napprovals = 1\n", &[]);
    insta::assert_snapshot!(problems, @r"
    environments.production: no service deploys to `production`; no [[services]] are configured (opsbot.toml:1:15)
      hint: add a [[services]] entry that deploys to production, or remove [environments.production]
    ");
}

#[test]
fn an_environment_set_from_the_environment_names_its_variable() {
    let errors = load_text(
        SERVICES,
        &[
            ("GITHUB_TOKEN", "ghp-1"),
            ("HOOK_SECRET", "whsec-1"),
            ("OPSBOT_ENVIRONMENTS_PRODUCTION", "{ approvals = 20 }"),
        ],
    )
    .expect_err("too many approvals");
    assert_eq!(
        errors.problems[0].key,
        "environments.production.approvals (in OPSBOT_ENVIRONMENTS_PRODUCTION)"
    );
}

#[test]
fn bad_service_names_and_environments() {
    let problems = problems(&format!(
        r#"{SERVICES}
[[services]]
name = "api"
environments = ["staging"]
backend = {{ kind = "command", program = "true" }}

[[services]]
name = "Billing API"
environments = []
backend = {{ kind = "command", program = "true" }}

[[services]]
environments = ["prod", "Prod", "prod", 3]
backend = {{ kind = "command", program = "true" }}
owner = "team-a"

[[services]]
name = "lonely"
"#
    ));
    insta::assert_snapshot!(problems, @r#"
    services[3].name: `api` is already the name of services[0] (opsbot.toml:18:1)
      hint: give each service its own name
    services[4].name: `Billing API` is not a valid service name (opsbot.toml:23:1)
      hint: use 1 to 32 lowercase letters, digits, `-` or `_`, starting with a letter or digit (it becomes a Discord option value)
    services[4].environments: lists no environment (opsbot.toml:24:1)
      hint: list where it deploys, e.g. environments = ["staging", "production"]
    services[5].owner: unknown key (opsbot.toml:30:1)
      hint: known keys in [[services]]: name, environments, backend, panels
    services[5]: has no `name` (opsbot.toml:27:1)
      hint: add name = "api": the name people type in /deploy
    services[5].environments[1]: `Prod` is not a valid environment name (opsbot.toml:28:25)
      hint: use 1 to 32 lowercase letters, digits, `-` or `_`, starting with a letter or digit (it becomes a Discord option value)
    services[5].environments[2]: `prod` is listed twice (opsbot.toml:28:33)
    services[5].environments[3]: expected an environment name such as "staging", found integer 3 (opsbot.toml:28:41)
    services[6]: has no `environments` (opsbot.toml:32:1)
      hint: list where it deploys, e.g. environments = ["staging", "production"]
    services[6]: has no `backend` (opsbot.toml:32:1)
      hint: e.g. backend = { kind = "command", program = "./scripts/deploy.sh" }; kinds: github_actions, webhook, command, kubernetes
    "#);
}

#[test]
fn bad_backends() {
    let problems = problems(
        r#"
[[services]]
name = "a"
environments = ["staging"]
backend = { kind = "github", repo = "acme/a" }

[[services]]
name = "b"
environments = ["staging"]
backend = { kind = "github_actions", repo = "acme", workflow = " ", token = "ghp_literal", poll_interval = 10, timeout = "0m", secret = "env:X" }

[[services]]
name = "c"
environments = ["staging"]
backend = { kind = "webhook", url = "ftp://deployer.internal", secret = "env:UNSET_SECRET", timout = "5m" }

[[services]]
name = "d"
environments = ["staging"]
backend = { kind = "command", program = "", args = ["{service}", "{versoin}", "{\"json\": 1}", "{whatever}"], workdir = "" }

[[services]]
name = "e"
environments = ["staging"]
backend = { program = "true" }

[[services]]
name = "f"
environments = ["staging"]
backend = "./deploy.sh"
"#,
    );
    assert!(!problems.contains("ghp_literal"), "{problems}");
    insta::assert_snapshot!(problems, @r#"
    services[0].backend.kind: unknown backend kind `github` (opsbot.toml:5:13)
      hint: kinds: github_actions, webhook, command, kubernetes
    services[1].backend.secret: unknown key (opsbot.toml:10:128)
      hint: known keys in a github_actions backend: kind, repo, workflow, ref, token, api_base, poll_interval, timeout
    services[1].backend.repo: `acme` is not a repository as owner/name (opsbot.toml:10:38)
      hint: write the GitHub repository as owner/name, e.g. "acme/api"
    services[1].backend.workflow: is empty (opsbot.toml:10:53)
      hint: write a workflow file name such as "deploy.yml"
    services[1].backend.token: secrets are never written in the config file; write env:NAME or file:PATH (opsbot.toml:10:69)
      hint: e.g. services[1].backend.token = "env:GITHUB_TOKEN", and remove the secret from the file (rotate it if the file was shared)
    services[1].backend.poll_interval: expected a duration, found integer 10 (opsbot.toml:10:92)
      hint: write a number and a unit, e.g. "30s", "10m", "1h" or "1h 30m"
    services[1].backend.timeout: `0m` is no time at all (opsbot.toml:10:112)
      hint: write a number and a unit, e.g. "30s", "10m", "1h" or "1h 30m"
    services[2].backend.timout: unknown key (opsbot.toml:15:93)
      hint: did you mean `timeout`? known keys in a webhook backend: kind, url, secret, timeout
    services[2].backend.url: `ftp://deployer.internal` is not an absolute http(s) URL (opsbot.toml:15:31)
      hint: write the scheme, host and any path, e.g. "https://deployer.internal/hooks/opsbot"
    services[2].backend.secret: environment variable UNSET_SECRET is not set (opsbot.toml:15:64)
      hint: export UNSET_SECRET=..., or point services[2].backend.secret at a file with file:PATH
    services[3].backend.program: is empty (opsbot.toml:20:31)
      hint: write a program such as "./scripts/deploy.sh"
    services[3].backend.args[1]: unknown placeholder `{versoin}` (opsbot.toml:20:66)
      hint: did you mean `{version}`? placeholders: {service} {version} {environment} {deploy_id} {requested_by}
    services[3].backend.args[3]: unknown placeholder `{whatever}` (opsbot.toml:20:96)
      hint: placeholders: {service} {version} {environment} {deploy_id} {requested_by}
    services[3].backend.workdir: is empty (opsbot.toml:20:111)
      hint: write a directory
    services[4].backend: has no `kind` (opsbot.toml:25:1)
      hint: kinds: github_actions, webhook, command, kubernetes
    services[5].backend: expected a table, found string "./deploy.sh" (opsbot.toml:30:1)
      hint: e.g. backend = { kind = "command", program = "./scripts/deploy.sh" }; kinds: github_actions, webhook, command, kubernetes
    "#);
}

#[test]
fn a_missing_backend_key_is_named() {
    let problems = problems(
        "[[services]]\nname = \"a\"\nenvironments = [\"staging\"]\nbackend = { kind = \"github_actions\" }\n[[services]]\nname = \"b\"\nenvironments = [\"staging\"]\nbackend = { kind = \"webhook\" }\n[[services]]\nname = \"c\"\nenvironments = [\"staging\"]\nbackend = { kind = \"command\" }\n",
    );
    insta::assert_snapshot!(problems, @r#"
    services[0].backend: has no `repo`, which a github_actions backend needs (opsbot.toml:4:1)
      hint: add repo = "owner/name"
    services[0].backend: has no `workflow`, which a github_actions backend needs (opsbot.toml:4:1)
      hint: add workflow = "deploy.yml"
    services[0].backend: has no `token`, which a github_actions backend needs (opsbot.toml:4:1)
      hint: add token = "env:GITHUB_TOKEN"
    services[1].backend: has no `url`, which a webhook backend needs (opsbot.toml:8:1)
      hint: add url = "https://deployer.internal/hooks/opsbot"
    services[1].backend: has no `secret`, which a webhook backend needs (opsbot.toml:8:1)
      hint: add secret = "env:DEPLOY_WEBHOOK_SECRET"
    services[2].backend: has no `program`, which a command backend needs (opsbot.toml:12:1)
      hint: add program = "./scripts/deploy.sh"
    "#);
}

#[test]
fn every_nested_key_is_read() {
    // Like `every_documented_key_is_read`: each key listed for a backend kind or an
    // environment is read (it gets a type error, not "unknown key").
    let mut text = String::new();
    for (kind, keys) in BACKEND_KINDS {
        let fields: Vec<String> = keys
            .iter()
            .filter(|key| **key != "kind")
            .map(|key| format!("{key} = 1"))
            .collect();
        text.push_str(&format!(
            "[[services]]\nname = \"{}\"\nenvironments = [\"staging\"]\nbackend = {{ kind = \"{kind}\", {} }}\n",
            kind.replace('_', "-"),
            fields.join(", ")
        ));
    }
    text.push_str("[environments.staging]\n");
    for key in ENVIRONMENT_KEYS {
        text.push_str(&format!("{key} = \"x\"\n"));
    }
    let errors = load_text(&text, &[]).expect_err("wrong types refused");
    for problem in &errors.problems {
        assert!(!problem.message.contains("unknown"), "{errors}");
    }
    assert!(errors.problems.len() > 10, "{errors}");
}

#[test]
fn the_change_failure_window_defaults_to_an_hour_and_takes_env() {
    let defaults = load_text("", &[]).expect("config loads");
    assert_eq!(
        defaults.deploy.change_failure_window,
        Duration::from_secs(3600)
    );
    let text = "[deploy]\nchange_failure_window = \"2h\"\n";
    let config = load_text(text, &[]).expect("config loads");
    assert_eq!(
        config.deploy.change_failure_window,
        Duration::from_secs(7200)
    );
    let config =
        load_text(text, &[("OPSBOT_DEPLOY_CHANGE_FAILURE_WINDOW", "15m")]).expect("config loads");
    assert_eq!(
        config.deploy.change_failure_window,
        Duration::from_secs(900)
    );
    let refused =
        load_text("[deploy]\nchange_failure_window = \"soon\"\n", &[]).expect_err("not a duration");
    assert!(
        refused.to_string().contains("deploy.change_failure_window"),
        "{refused}"
    );
}
