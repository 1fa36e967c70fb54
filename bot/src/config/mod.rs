//! The bot's configuration: one TOML file plus environment overrides.
//!
//! How a user configures opsbot:
//! - Copy `opsbot.example.toml` to `opsbot.toml` and edit it. `opsbot --config PATH` reads
//!   another file; without `--config` and without `opsbot.toml`, built-in defaults apply.
//! - Every key directly under a section can be overridden from the environment as
//!   `OPSBOT_<SECTION>_<KEY>`: `OPSBOT_HTTP_LISTEN=0.0.0.0:9000`,
//!   `OPSBOT_DISCORD_GUILD_IDS=[1,2]`, `OPSBOT_ROLES_OPS='["audit:*"]'`,
//!   `OPSBOT_DEPLOY_APPROVAL_TIMEOUT=1h`. The environment wins over the file. A value is read as
//!   a TOML literal when it is one, else as a plain string. `DATABASE_URL` also sets
//!   `database.url` (`OPSBOT_DATABASE_URL` wins over it). `[[services]]` are set in the file
//!   only.
//! - Secrets (`discord.token`, `database.url`, `audit.chain_key`, a backend's `token` or
//!   `secret`) are written in the file as `env:NAME` or `file:PATH`, never literally; in the
//!   environment they may also be the secret itself.
//! - Unknown keys are errors, and loading reports every problem at once:
//!   `opsbot config check` prints them all (see [`check_command`]).

mod alerts;
mod audit;
mod backend;
mod digests;
mod env;
mod events;
mod incidents;
mod metrics;
mod problem;
mod scalars;
mod secret;
mod services;
mod values;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;
use toml::de::DeTable;
use toml::{Table, Value};

pub use alerts::{AlertRouteConfig, AlertmanagerConfig, AlertsConfig};
pub use audit::{AuditConfig, DEFAULT_CHECKPOINT_INTERVAL};
pub use backend::{BackendConfig, COMMAND_PLACEHOLDERS, KubernetesTargetConfig};
pub use digests::DigestConfig;
pub use events::{EventsConfig, NatsConfig, NatsCredentials, PubsubConfig};
pub use incidents::{ArchiveConfig, IncidentsConfig, SeverityConfig};
pub use metrics::{DEFAULT_MAX_RANGE, DEFAULT_PROMETHEUS_TIMEOUT, PanelConfig, PrometheusConfig};
pub use problem::{ConfigErrors, Problem};
pub use secret::Secret;
pub use services::{EnvironmentConfig, ServiceConfig};

/// The file read when no `--config` is given, from the working directory.
pub const DEFAULT_PATH: &str = "opsbot.toml";

/// Each section and its keys. `[roles]` takes any role name as a key, `[environments]` any
/// environment name (their keys are in [`services::ENVIRONMENT_KEYS`]); `[[services]]` is an
/// array of tables (see [`ARRAY_SECTIONS`]).
/// Keep in step with the `Raw*` structs: unknown-key hints and env overrides rely on it.
const SECTIONS: &[(&str, &[&str])] = &[
    ("alertmanager", alerts::ALERTMANAGER_KEYS),
    ("alerts", alerts::ALERTS_KEYS),
    ("audit", audit::AUDIT_KEYS),
    (
        "channels",
        &[
            "deploys",
            "incidents",
            "alerts",
            "incident_category",
            "incident_archive_category",
        ],
    ),
    ("database", &["url", "max_connections", "embedded_dir"]),
    ("deploy", &["approval_timeout", "change_failure_window"]),
    ("digests", digests::DIGEST_KEYS),
    (
        "discord",
        &[
            "token",
            "guild_ids",
            "api_base",
            "client_id",
            "client_secret",
            "gateway",
            "max_in_flight",
        ],
    ),
    ("environments", &[]),
    ("events", events::EVENTS_KEYS),
    ("incidents", incidents::INCIDENT_KEYS),
    (
        "http",
        &[
            "listen",
            "public_url",
            "dashboard_tokens",
            "session_secret",
            "session_ttl",
        ],
    ),
    ("prometheus", metrics::PROMETHEUS_KEYS),
    ("roles", &[]),
    ("services", services::SERVICE_KEYS),
];

/// Sections written as arrays of tables (`[[services]]`), which the environment cannot set.
const ARRAY_SECTIONS: &[&str] = &["services", "digests"];

/// Keys holding secrets: never echoed in problems, never parsed as TOML literals from env.
const SECRET_KEYS: &[&str] = &[
    "alerts.webhook_token",
    "alertmanager.bearer_token",
    "alertmanager.password",
    "discord.token",
    "database.url",
    "audit.chain_key",
    "prometheus.password",
    "prometheus.bearer_token",
];

fn section_names() -> Vec<&'static str> {
    SECTIONS.iter().map(|(name, _)| *name).collect()
}

/// The whole bot's configuration, validated. Build it with [`Config::load`].
#[derive(Debug, Clone)]
pub struct Config {
    /// `[discord]`
    pub discord: DiscordConfig,
    /// `[database]`
    pub database: DatabaseConfig,
    /// `[http]`
    pub http: HttpConfig,
    /// `[roles]`: Discord role name → grants such as `deploy:*`; every grant is valid.
    pub roles: BTreeMap<String, Vec<String>>,
    /// `[channels]`
    pub channels: ChannelsConfig,
    /// `[deploy]`
    pub deploy: DeployConfig,
    /// `[environments.<name>]`: approvals and freeze windows per environment. Every name here
    /// is deployed to by some service; an environment without a section has the
    /// [`EnvironmentConfig::default`] policy (no approvals, no freeze).
    pub environments: BTreeMap<String, EnvironmentConfig>,
    /// `[[services]]`, in file order; names are unique.
    pub services: Vec<ServiceConfig>,
    /// `[audit]`
    pub audit: AuditConfig,
    /// `[alertmanager]`
    pub alertmanager: AlertmanagerConfig,
    /// `[alerts]` and `[[alerts.routes]]`
    pub alerts: AlertsConfig,
    /// `[incidents]`
    pub incidents: IncidentsConfig,
    /// `[prometheus]`; `None` without a `url` (the `/metrics` commands say so).
    pub prometheus: Option<PrometheusConfig>,
    /// `[[digests]]`, in file order; names are unique.
    pub digests: Vec<DigestConfig>,
    /// `[events.nats]`, `[events.pubsub]`: where sealed audit events are published.
    pub events: EventsConfig,
}

/// `[discord]`: how the bot reaches Discord.
#[derive(Debug, Clone)]
pub struct DiscordConfig {
    /// The bot token; `None` when not configured (commands that need Discord refuse to start).
    pub token: Option<Secret>,
    /// The guilds (servers) the bot registers its commands in; every id is non-zero.
    pub guild_ids: Vec<u64>,
    /// Scheme and host of the Discord API, without a trailing `/`; point it at a proxy or an
    /// emulator. Default `https://discord.com`.
    pub api_base: String,
    /// The application's OAuth2 client id (its application id): with `client_secret`, people
    /// log in to the dashboard with Discord.
    pub client_id: Option<u64>,
    pub client_secret: Option<Secret>,
    /// Whether this replica may run the gateway. Default [`GatewayMode::Leader`].
    pub gateway: GatewayMode,
    /// Commands and button presses one replica works on at once; past that (after a short
    /// wait) "busy, try again". Default: 8 per database connection.
    pub max_in_flight: Option<u32>,
}

/// `[discord] gateway`: which replica connects to Discord's gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayMode {
    /// The replica that holds the `discord gateway` lease connects; the others stand by and
    /// take over when it dies (`"leader"`, the default; one replica is simply the leader).
    Leader,
    /// Never connects (a web-only replica); it still serves HTTP and drains the outbox.
    Off,
}

/// `[database]`: the Postgres database.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// The connection URL; `None` means: run the embedded database in `embedded_dir`.
    pub url: Option<Secret>,
    /// Pool size, 1..=1000. Default 10.
    pub max_connections: u32,
    /// Where the embedded database keeps its files. Default `.opsbot/pg`.
    pub embedded_dir: PathBuf,
}

/// `[http]`: the HTTP server (health, metrics, webhooks, dashboard).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The address to listen on. Default `127.0.0.1:8080` (this machine only).
    pub listen: SocketAddr,
    /// Where people reach opsbot's web pages (deploy pages are linked from Discord messages):
    /// an absolute http(s) URL without a trailing `/`, e.g. `https://opsbot.example.com`.
    /// `None`: messages carry no links.
    pub public_url: Option<String>,
    /// Bearer tokens that open every dashboard page and API call (scripts, monitoring,
    /// and the dashboard's token login).
    pub dashboard_tokens: Vec<Secret>,
    /// Signs the dashboard's session cookies; without it a random key is made at start
    /// (sessions end when opsbot restarts, and replicas do not share them).
    pub session_secret: Option<Secret>,
    /// How long a dashboard login lasts.
    pub session_ttl: Duration,
}

/// `[channels]`: Discord channel ids (every one non-zero); `None` when not configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelsConfig {
    /// Where deploys are announced and their threads live.
    pub deploys: Option<u64>,
    /// Where incidents are announced.
    pub incidents: Option<u64>,
    /// Where alerts are posted.
    pub alerts: Option<u64>,
    /// The category under which each incident gets its own channel.
    pub incident_category: Option<u64>,
    /// Where a resolved incident's channel is moved (`[incidents] archive = "move"`).
    pub incident_archive_category: Option<u64>,
}

/// `[deploy]`: rules for every deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployConfig {
    /// How long a deploy waits for its approvals before it expires. Default 30 minutes.
    pub approval_timeout: Duration,
    /// How long after a deploy a rollback or an incident on its service makes it a failed
    /// change on the dashboard's overview. Default 1 hour.
    pub change_failure_window: Duration,
}

/// Default `database.max_connections`: plenty for one bot, a tenth of Postgres' default limit.
const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// Default `http.listen` port.
const DEFAULT_HTTP_PORT: u16 = 8080;
/// Default `http.session_ttl`: a working day; after that the dashboard asks to log in again.
const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Default `deploy.approval_timeout`: long enough to find a reviewer during working hours,
/// short enough that an approval is given for the state of things the requester saw.
const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

impl Default for Config {
    fn default() -> Config {
        Config {
            discord: DiscordConfig {
                token: None,
                guild_ids: Vec::new(),
                api_base: "https://discord.com".to_owned(),
                client_id: None,
                client_secret: None,
                gateway: GatewayMode::Leader,
                max_in_flight: None,
            },
            database: DatabaseConfig {
                url: None,
                max_connections: DEFAULT_MAX_CONNECTIONS,
                embedded_dir: PathBuf::from(".opsbot/pg"),
            },
            http: HttpConfig {
                listen: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_HTTP_PORT)),
                public_url: None,
                dashboard_tokens: Vec::new(),
                session_secret: None,
                session_ttl: DEFAULT_SESSION_TTL,
            },
            roles: BTreeMap::new(),
            channels: ChannelsConfig::default(),
            deploy: DeployConfig {
                approval_timeout: DEFAULT_APPROVAL_TIMEOUT,
                change_failure_window: opsbot_commands::overview::DEFAULT_CHANGE_FAILURE_WINDOW,
            },
            environments: BTreeMap::new(),
            services: Vec::new(),
            audit: AuditConfig::default(),
            alertmanager: AlertmanagerConfig::default(),
            alerts: AlertsConfig::default(),
            incidents: IncidentsConfig::default(),
            prometheus: None,
            digests: Vec::new(),
            events: EventsConfig::default(),
        }
    }
}

impl Config {
    /// Loads the configuration with the process environment's overrides.
    ///
    /// `path` `None`: `opsbot.toml` in the working directory if it exists, else built-in
    /// defaults. `path` `Some`: that file must exist.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigErrors> {
        Config::load_with_env(path, &process_env())
    }

    /// [`Config::load`] with the environment given explicitly (the testable form).
    pub fn load_with_env(
        path: Option<&Path>,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigErrors> {
        load(path, env).map(|(config, _)| config)
    }

    /// The roles as the domain's [`RoleMap`](opsbot_commands::access::RoleMap).
    pub fn role_map(&self) -> opsbot_commands::access::RoleMap {
        // Grants were validated at load; filtering again keeps a hand-built `Config` from
        // failing here, since the fields are public.
        let roles = self
            .roles
            .iter()
            .map(|(role, grants)| {
                let valid = grants
                    .iter()
                    .filter(|grant| opsbot_commands::access::validate_grant(grant).is_ok())
                    .cloned()
                    .collect();
                (role.clone(), valid)
            })
            .collect();
        opsbot_commands::access::RoleMap::new(roles).unwrap_or_default()
    }
}

/// `opsbot config check`: prints every problem (`<key>: <message>`, then `  hint: <hint>`), or
/// `ok: <file> is valid`, to stdout. Exit code 2 when invalid, 0 when valid.
pub fn check_command(path: Option<&Path>) -> ExitCode {
    let mut out = std::io::stdout().lock();
    // A closed stdout leaves nothing useful to do with a write error; the exit code still tells.
    match load(path, &process_env()) {
        Ok((_, source)) => {
            let _ = writeln!(out, "ok: {source} is valid");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            let _ = writeln!(out, "{errors}");
            ExitCode::from(2)
        }
    }
}

/// The process environment; variables that are not UTF-8 cannot be config values and are skipped.
fn process_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .collect()
}

/// The config file as read, kept to point problems at a line and column.
struct ConfigFile {
    label: String,
    text: String,
}

/// Loads and validates; also returns what was loaded (`opsbot.toml` or `built-in defaults`).
fn load(
    path: Option<&Path>,
    env: &BTreeMap<String, String>,
) -> Result<(Config, String), ConfigErrors> {
    let mut problems = Vec::new();
    let file = read_file(path, &mut problems);
    let source = file
        .as_ref()
        .map_or_else(|| "built-in defaults".to_owned(), |file| file.label.clone());

    let spans = file
        .as_ref()
        .and_then(|file| DeTable::parse(&file.text).ok());
    let mut table = match &file {
        Some(file) => match file.text.parse::<Table>() {
            Ok(table) => table,
            Err(error) => {
                let at = error
                    .span()
                    .map(|span| format!(" ({}:{})", file.label, line_col(&file.text, span.start)))
                    .unwrap_or_default();
                problems.push(
                    Problem::new(
                        "config",
                        format!(
                            "{} is not valid TOML: {}{at}",
                            file.label,
                            error.message().trim()
                        ),
                    )
                    .with_hint("fix the syntax; `opsbot.example.toml` shows every key"),
                );
                Table::new()
            }
        },
        None => Table::new(),
    };

    let origins = env::apply(&mut table, env, &mut problems);
    let mut values = values::Values {
        env,
        origins: &origins,
        file: file
            .as_ref()
            .zip(spans.as_ref())
            .map(|(file, spans)| (file, spans.get_ref())),
        problems,
    };
    values.drop_misshapen_sections(&mut table);

    let mut ignored = Vec::new();
    let raw: RawConfig = match serde_ignored::deserialize(Value::Table(table), |path| {
        ignored.push(dotted(&path));
    }) {
        Ok(raw) => raw,
        Err(error) => {
            values
                .problems
                .push(Problem::new("config", error.message().trim().to_owned()));
            RawConfig::default()
        }
    };
    for path in ignored {
        values.unknown_key(&path);
    }
    let config = values.build(raw);
    if values.problems.is_empty() {
        Ok((config, source))
    } else {
        Err(ConfigErrors {
            problems: values.problems,
        })
    }
}

fn read_file(path: Option<&Path>, problems: &mut Vec<Problem>) -> Option<ConfigFile> {
    let (path, explicit) = match path {
        Some(path) => (path, true),
        None => (Path::new(DEFAULT_PATH), false),
    };
    if !path.exists() {
        if explicit {
            problems.push(
                Problem::new("config", format!("{} does not exist", path.display())).with_hint(
                    format!(
                        "copy opsbot.example.toml to {} and edit it, or leave out --config to use built-in defaults",
                        path.display()
                    ),
                ),
            );
        }
        return None;
    }
    let label = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Some(ConfigFile { label, text }),
        Err(error) => {
            problems.push(
                Problem::new("config", format!("cannot read {label}: {error}"))
                    .with_hint("check the path and that opsbot's user may read it"),
            );
            None
        }
    }
}

/// 1-based `line:column` of a byte offset.
fn line_col(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("{line}:{column}")
}

/// A serde_ignored path as the user writes it: `http.listne`, `services[0].name`.
fn dotted(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", dotted(parent)),
        Path::Map { parent, key } => {
            let parent = dotted(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => dotted(parent),
    }
}

/// The file and env overrides merged, before validation. Values stay `toml::Value` so each one
/// is checked on its own and a wrong type names its key.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawConfig {
    discord: RawDiscord,
    database: RawDatabase,
    http: RawHttp,
    roles: BTreeMap<String, Value>,
    channels: RawChannels,
    deploy: RawDeploy,
    /// Checked by hand, key by key, so that one bad environment does not hide the others.
    environments: BTreeMap<String, Value>,
    /// Checked by hand: the array, each service and its backend (whose keys depend on `kind`).
    services: Option<Value>,
    audit: audit::RawAudit,
    alertmanager: alerts::RawAlertmanager,
    alerts: alerts::RawAlerts,
    incidents: incidents::RawIncidents,
    prometheus: metrics::RawPrometheus,
    /// Checked by hand: the array and each digest.
    digests: Option<Value>,
    events: events::RawEvents,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawDiscord {
    token: Option<Value>,
    guild_ids: Option<Value>,
    api_base: Option<Value>,
    client_id: Option<Value>,
    client_secret: Option<Value>,
    gateway: Option<Value>,
    max_in_flight: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawDatabase {
    url: Option<Value>,
    max_connections: Option<Value>,
    embedded_dir: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawHttp {
    listen: Option<Value>,
    public_url: Option<Value>,
    dashboard_tokens: Option<Value>,
    session_secret: Option<Value>,
    session_ttl: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawChannels {
    deploys: Option<Value>,
    incidents: Option<Value>,
    alerts: Option<Value>,
    incident_category: Option<Value>,
    incident_archive_category: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawDeploy {
    approval_timeout: Option<Value>,
    change_failure_window: Option<Value>,
}
