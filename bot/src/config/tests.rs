use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use super::*;

mod audit;
mod deploy;
mod digests;
mod events;
mod kubernetes;
mod replicas;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

/// A config file holding `text`, kept alive as long as the returned handle.
fn file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("create temp config");
    file.write_all(text.as_bytes()).expect("write temp config");
    file
}

fn load_text(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    let file = file(text);
    Config::load_with_env(Some(file.path()), &env(vars))
}

/// The problems' text with the temp file's name replaced, for stable assertions.
fn problems_of(text: &str, vars: &[(&str, &str)]) -> String {
    let file = file(text);
    let errors =
        Config::load_with_env(Some(file.path()), &env(vars)).expect_err("config should be refused");
    errors
        .to_string()
        .replace(&file.path().display().to_string(), "opsbot.toml")
}

#[test]
fn defaults_when_no_file() {
    let config = Config::load_with_env(None, &env(&[])).expect("defaults load");
    assert!(config.discord.token.is_none());
    assert!(config.discord.guild_ids.is_empty());
    assert_eq!(config.discord.api_base, "https://discord.com");
    assert!(config.database.url.is_none());
    assert_eq!(config.database.max_connections, 10);
    assert_eq!(config.database.embedded_dir, Path::new(".opsbot/pg"));
    assert_eq!(config.http.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.http.public_url, None);
    assert!(config.roles.is_empty());
    assert_eq!(config.channels, ChannelsConfig::default());
    assert_eq!(config.channels.deploys, None);
    assert_eq!(
        config.deploy.approval_timeout,
        std::time::Duration::from_secs(30 * 60)
    );
    assert!(config.environments.is_empty());
    assert!(config.services.is_empty());
}

#[test]
fn env_overrides_win_over_the_file() {
    let config = load_text(
        "[http]\nlisten = \"127.0.0.1:1000\"\n[database]\nmax_connections = 5\n[roles]\nops = [\"deploy:*\"]\n",
        &[
            ("OPSBOT_HTTP_LISTEN", "0.0.0.0:9000"),
            ("OPSBOT_DATABASE_MAX_CONNECTIONS", "20"),
            ("OPSBOT_DISCORD_GUILD_IDS", "[1, 2]"),
            ("OPSBOT_DISCORD_API_BASE", "http://127.0.0.1:3000/"),
            ("OPSBOT_ROLES_OPS", r#"["audit:*"]"#),
            ("OPSBOT_CONFIG", "elsewhere.toml"),
            ("OPSBOT_LOG_FORMAT", "json"),
            // The test harness's own variables reach every opsbot a test starts.
            ("OPSBOT_REQUIRE_ALL", "1"),
            ("OPSBOT_TEST_PG_LINGER", "3"),
            ("HOME", "/root"),
        ],
    )
    .expect("config loads");
    assert_eq!(config.http.listen.to_string(), "0.0.0.0:9000");
    assert_eq!(config.database.max_connections, 20);
    assert_eq!(config.discord.guild_ids, vec![1, 2]);
    assert_eq!(config.discord.api_base, "http://127.0.0.1:3000");
    assert_eq!(config.roles["ops"], vec!["audit:*".to_owned()]);
}

#[test]
fn database_url_alias() {
    let text = "[database]\nurl = \"env:PG\"\n";
    let vars = [
        ("PG", "postgres://file"),
        ("DATABASE_URL", "postgres://alias"),
    ];
    let config = load_text(text, &vars).expect("config loads");
    let url = config.database.url.expect("url set");
    assert_eq!(url.expose(), "postgres://alias");
    assert_eq!(url.origin(), "env:DATABASE_URL");

    let vars = [
        ("DATABASE_URL", "postgres://alias"),
        ("OPSBOT_DATABASE_URL", "postgres://opsbot"),
    ];
    let config = load_text(text, &vars).expect("config loads");
    assert_eq!(
        config.database.url.expect("url set").expose(),
        "postgres://opsbot"
    );
}

#[test]
fn every_unknown_key_is_reported_with_its_path() {
    let errors = load_text(
        "[http]\nlistne = \"x\"\n[database]\nmax_conections = 3\n",
        &[],
    )
    .expect_err("typos refused");
    let keys: Vec<&str> = errors.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["database.max_conections", "http.listne"]);
    assert_eq!(
        errors.problems[1].hint.as_deref(),
        Some(
            "did you mean `listen`? known keys in [http]: listen, public_url, dashboard_tokens, session_secret, session_ttl"
        )
    );
}

#[test]
fn a_wrong_type_names_its_key_and_line() {
    let problems = problems_of("[database]\n\nmax_connections = \"ten\"\n", &[]);
    assert!(
        problems.starts_with(
            "database.max_connections: expected an integer, found string \"ten\" (opsbot.toml:3:1)"
        ),
        "{problems}"
    );
}

#[test]
fn a_literal_secret_in_the_file_is_refused_and_not_echoed() {
    let problems = problems_of("[discord]\ntoken = \"hunter2\"\n", &[]);
    assert!(problems.starts_with("discord.token: secrets are never written in the config file; write env:NAME or file:PATH"), "{problems}");
    assert!(!problems.contains("hunter2"), "{problems}");
}

#[test]
fn a_missing_env_secret_names_the_variable() {
    let errors = load_text("[discord]\ntoken = \"env:DISCORD_TOKEN\"\n", &[])
        .expect_err("missing variable refused");
    assert_eq!(errors.problems[0].key, "discord.token");
    assert!(
        errors.problems[0]
            .message
            .starts_with("environment variable DISCORD_TOKEN is not set"),
        "{errors}"
    );
    let errors = load_text(
        "[discord]\ntoken = \"env:DISCORD_TOKEN\"\n",
        &[("DISCORD_TOKEN", "")],
    )
    .expect_err("empty variable refused");
    assert!(
        errors.problems[0]
            .message
            .contains("DISCORD_TOKEN is empty")
    );
}

#[test]
fn a_file_secret_is_read_without_its_trailing_newline() {
    let secret = file("s3cret\n");
    let text = format!("[discord]\ntoken = \"file:{}\"\n", secret.path().display());
    let config = load_text(&text, &[]).expect("config loads");
    let token = config.discord.token.expect("token set");
    assert_eq!(token.expose(), "s3cret");

    let problems = problems_of("[discord]\ntoken = \"file:/nonexistent/token\"\n", &[]);
    assert!(
        problems.starts_with("discord.token: cannot read secret file /nonexistent/token: "),
        "{problems}"
    );
}

#[test]
fn debug_never_shows_secrets() {
    let config = load_text(
        "[discord]\ntoken = \"env:DISCORD_TOKEN\"\n",
        &[
            ("DISCORD_TOKEN", "tok-123"),
            ("OPSBOT_DATABASE_URL", "postgres://u:pw@db/x"),
        ],
    )
    .expect("config loads");
    let debug = format!("{config:?} {config:#?}");
    assert!(!debug.contains("tok-123"), "{debug}");
    assert!(!debug.contains("pw@db"), "{debug}");
    assert!(debug.contains("Secret(env:DISCORD_TOKEN)"), "{debug}");
    assert!(debug.contains("Secret(env:OPSBOT_DATABASE_URL)"), "{debug}");
    let made = Secret::new("hidden");
    assert_eq!(
        format!("{made:?} {made}"),
        "Secret(<redacted>) Secret(<redacted>)"
    );
}

#[test]
fn a_bad_grant_names_its_role() {
    let errors = load_text("[roles]\nops = [\"deploy:*\", \"Deploy Prod\"]\n", &[])
        .expect_err("bad grant refused");
    assert_eq!(errors.problems.len(), 1, "{errors}");
    assert_eq!(errors.problems[0].key, "roles.ops");
    assert!(
        errors.problems[0]
            .message
            .contains("`Deploy Prod` is not a permission")
    );
}

#[test]
fn an_unknown_opsbot_variable_is_reported() {
    let errors = Config::load_with_env(
        None,
        &env(&[("OPSBOT_HTTP_LISTNE", "x"), ("OPSBOT_HTTPS_LISTEN", "x")]),
    )
    .expect_err("unknown variables refused");
    let lines: Vec<String> = errors
        .problems
        .iter()
        .map(|p| format!("{}: {}", p.key, p.message))
        .collect();
    assert_eq!(
        lines,
        [
            "OPSBOT_HTTPS_LISTEN (env): unknown section [https] (from https.listen)",
            "OPSBOT_HTTP_LISTNE (env): unknown key http.listne",
        ]
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let problems = problems_of(
        r#"
[discord]
token = "literal"
guild_ids = [0, 42]
api_base = "https://discord.com/api/v10"

[database]
url = "env:PG_URL"
max_connections = 0

[http]
listen = "localhost"
port = 8080

[roles]
ops = ["deploy:*", "Deploy"]

[chanels]
deploys = 1
"#,
        &[("OPSBOT_DATABASE_EMBEDDED_DIR", ""), ("OPSBOT_HTTP", "x")],
    );
    insta::assert_snapshot!(problems, @r#"
    OPSBOT_HTTP (env): names no config key
      hint: write OPSBOT_<SECTION>_<KEY>, e.g. OPSBOT_HTTP_LISTEN
    chanels: unknown section (opsbot.toml:18:2)
      hint: did you mean [channels]? known sections: alertmanager, alerts, audit, channels, database, deploy, digests, discord, environments, events, incidents, http, prometheus, roles, services
    http.port: unknown key (opsbot.toml:13:1)
      hint: known keys in [http]: listen, public_url, dashboard_tokens, session_secret, session_ttl
    discord.token: secrets are never written in the config file; write env:NAME or file:PATH (opsbot.toml:3:1)
      hint: e.g. discord.token = "env:DISCORD_TOKEN", and remove the secret from the file (rotate it if the file was shared)
    discord.guild_ids: 0 is not a guild id; Discord ids are positive (opsbot.toml:4:1)
      hint: write server ids as bare numbers, e.g. guild_ids = [123456789012345678] (Developer Mode → right-click the server → Copy Server ID)
    discord.api_base: `https://discord.com/api/v10` is not an http(s) base URL (opsbot.toml:5:1)
      hint: write the scheme and host only, e.g. "https://discord.com" or "http://127.0.0.1:3000"; opsbot adds the API path
    database.url: environment variable PG_URL is not set (opsbot.toml:8:1)
      hint: export PG_URL=..., or point database.url at a file with file:PATH
    database.max_connections: 0 is out of range 1..=1000 (opsbot.toml:9:1)
      hint: a number from 1 to 1000; the default 10 is plenty for one bot
    OPSBOT_DATABASE_EMBEDDED_DIR (env): is empty
      hint: write a directory, e.g. ".opsbot/pg" (the default)
    http.listen: `localhost` is not an IP:PORT address (opsbot.toml:12:1)
      hint: write IP:PORT, e.g. "127.0.0.1:8080" (this machine only) or "0.0.0.0:8080" (every interface)
    roles.ops: `Deploy` is not a permission: write lowercase segments separated by `:`, optionally ending in `*` (e.g. `deploy:*`, `audit:read`) (opsbot.toml:16:1)
    "#);
}

#[test]
fn a_missing_config_file_is_a_problem() {
    let errors = Config::load_with_env(Some(Path::new("/nonexistent/opsbot.toml")), &env(&[]))
        .expect_err("missing file refused");
    insta::assert_snapshot!(errors.to_string(), @r#"
    config: /nonexistent/opsbot.toml does not exist
      hint: copy opsbot.example.toml to /nonexistent/opsbot.toml and edit it, or leave out --config to use built-in defaults
    "#);
}

#[test]
fn a_syntax_error_points_at_its_line() {
    let problems = problems_of("[http]\nlisten = \n", &[]);
    assert!(
        problems.starts_with("config: opsbot.toml is not valid TOML: "),
        "{problems}"
    );
    assert!(problems.contains("(opsbot.toml:2:"), "{problems}");
}

#[test]
fn every_documented_key_is_read() {
    let mut text = String::new();
    for (section, keys) in SECTIONS {
        if ARRAY_SECTIONS.contains(section) {
            text.push_str(&format!("[[{section}]]\n"));
        } else {
            text.push_str(&format!("[{section}]\n"));
        }
        for key in *keys {
            text.push_str(&format!("{key} = 1\n"));
        }
    }
    let errors = load_text(&text, &[]).expect_err("wrong types refused");
    for problem in &errors.problems {
        assert!(!problem.message.contains("unknown"), "{errors}");
    }
}

#[test]
fn the_example_file_loads() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../opsbot.example.toml"
    ));
    let config = Config::load_with_env(Some(path), &env(&[])).expect("example is valid");
    assert_eq!(config.roles.len(), 2);
    assert!(config.discord.token.is_none());
    assert!(config.database.url.is_none());
    let defaults = Config::default();
    assert_eq!(config.http.listen, defaults.http.listen);
    assert_eq!(
        config.database.max_connections,
        defaults.database.max_connections
    );
    assert_eq!(config.database.embedded_dir, defaults.database.embedded_dir);
    assert_eq!(config.discord.api_base, defaults.discord.api_base);
    assert_eq!(config.http.public_url, None);
    assert_eq!(config.channels.deploys, Some(111_111_111_111_111_111));
    assert_eq!(config.channels.incidents, None);
    assert_eq!(
        config.deploy.approval_timeout,
        defaults.deploy.approval_timeout
    );
    let production = &config.environments["production"];
    assert_eq!(production.approvals, 1);
    assert_eq!(
        production
            .freeze
            .iter()
            .map(|window| window.describe())
            .collect::<Vec<_>>(),
        ["2026-12-24 00:00 - 2026-12-27 08:00 Europe/Berlin"]
    );
    let [daily] = config.digests.as_slice() else {
        panic!("one digest: {:?}", config.digests);
    };
    assert_eq!(
        (
            daily.name.as_str(),
            daily.schedule.expression(),
            daily.channel
        ),
        ("daily", "0 0 9 * * Mon-Fri", 111_111_111_111_111_111)
    );
    // Only the service that needs no secret is left uncommented.
    assert_eq!(config.services.len(), 1);
    let worker = &config.services[0];
    assert_eq!(worker.name, "worker");
    assert_eq!(worker.environments, ["staging", "production"]);
    let BackendConfig::Command {
        program,
        args,
        timeout,
        workdir,
    } = &worker.backend
    else {
        panic!("worker deploys with a command: {:?}", worker.backend);
    };
    assert_eq!(program, "./scripts/example-deploy.sh");
    assert_eq!(args, &["{service}", "{version}", "{environment}"]);
    assert_eq!(*timeout, std::time::Duration::from_secs(120));
    assert_eq!(*workdir, None);
    let script = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(program);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&script)
            .expect("the example script exists")
            .permissions(),
    );
    assert!(mode & 0o111 != 0, "{} is executable", script.display());
}

#[test]
fn the_example_file_documents_the_commented_out_backends() {
    // Uncommented, with their secrets set, the github_actions, webhook and kubernetes
    // examples load.
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../opsbot.example.toml"
    ));
    let example = std::fs::read_to_string(path).expect("read the example");
    let uncommented: String = example
        .lines()
        .map(|line| {
            let code = line.strip_prefix("# ").unwrap_or(line);
            if code == "[[services]]"
                || code.starts_with("name = ")
                || code.starts_with("environments = ")
                || code.starts_with("backend = ")
            {
                code
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config = load_text(
        &uncommented,
        &[
            ("GITHUB_TOKEN", "ghp-example"),
            ("DEPLOY_WEBHOOK_SECRET", "whsec-example"),
        ],
    )
    .expect("the commented-out services are valid");
    let kinds: Vec<(&str, &str)> = config
        .services
        .iter()
        .map(|service| (service.name.as_str(), service.backend.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("worker", "command"),
            ("api", "github_actions"),
            ("web", "webhook"),
            ("storefront", "kubernetes")
        ]
    );
}

#[test]
fn role_map_carries_the_roles() {
    let config = load_text("[roles]\nops = [\"audit:*\"]\n", &[]).expect("config loads");
    let debug = format!("{:?}", config.role_map());
    assert!(debug.contains("audit:*"), "{debug}");
}

#[test]
fn config_check_names_what_it_loaded() {
    let (_, source) = load(None, &env(&[])).expect("defaults load");
    assert_eq!(source, "built-in defaults");
    let file = file("[http]\nlisten = \"127.0.0.1:9\"\n");
    let (_, source) = load(Some(file.path()), &env(&[])).expect("file loads");
    assert_eq!(source, file.path().display().to_string());
}

#[test]
fn short_dashboard_tokens_and_session_secrets_are_refused() {
    let text = "[http]\ndashboard_tokens = [\"env:LONG_TOKEN\", \"env:SHORT_TOKEN\"]\nsession_secret = \"env:SESSION_SECRET\"\n";
    let long = "x".repeat(scalars::MIN_WEB_SECRET_BYTES);
    let short = "y".repeat(scalars::MIN_WEB_SECRET_BYTES - 1);
    let errors = load_text(
        text,
        &[
            ("LONG_TOKEN", &long),
            ("SHORT_TOKEN", "hunter2"),
            ("SESSION_SECRET", &short),
        ],
    )
    .expect_err("short secrets refused");
    let keys: Vec<&str> = errors.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["http.dashboard_tokens[1]", "http.session_secret"],
        "{errors}"
    );
    let shown = errors.to_string();
    assert!(
        shown.contains("env:SHORT_TOKEN is 7 bytes long; at least 32 are needed"),
        "{shown}"
    );
    assert!(
        shown.contains("env:SESSION_SECRET is 31 bytes long"),
        "{shown}"
    );
    assert!(
        !shown.contains("hunter2") && !shown.contains(&short),
        "{shown}"
    );

    let config = load_text(
        text,
        &[
            ("LONG_TOKEN", &long),
            ("SHORT_TOKEN", &long),
            ("SESSION_SECRET", &long),
        ],
    )
    .expect("32 bytes are enough");
    assert_eq!(config.http.dashboard_tokens.len(), 2);
    assert!(config.http.session_secret.is_some());
}
