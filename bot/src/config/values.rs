//! Turns the merged raw values into a [`Config`], checking each one and naming its key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::{Table, Value};

use super::problem::{Problem, closest};
use super::secret::{self, Secret, Written};
use super::{
    ARRAY_SECTIONS, ChannelsConfig, Config, ConfigFile, DatabaseConfig, DeployConfig,
    DiscordConfig, HttpConfig, RawChannels, RawConfig, SECTIONS, line_col, section_names,
};

/// Fewest bytes of a dashboard token or `http.session_secret`: even written in hex (4 bits a
/// character) that is 128 bits, beyond guessing however many attempts get through.
pub const MIN_WEB_SECRET_BYTES: usize = 32;

/// Most pool connections allowed: beyond this, Postgres' own limits bite first.
const MAX_CONNECTIONS_LIMIT: i64 = 1000;

/// What a URL setting is for, which decides whether it may carry a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UrlUse {
    /// Paths are appended to it (`http.public_url`, a GitHub `api_base`).
    Base,
    /// Requested as written (a webhook `url`).
    Endpoint,
}

/// The state of one load: where values came from, and every problem found so far.
pub(super) struct Values<'a> {
    pub(super) env: &'a BTreeMap<String, String>,
    /// Key path → the environment variable that set it.
    pub(super) origins: &'a BTreeMap<String, String>,
    /// The file and its parsed spans, to point problems at `file:line:column`.
    pub(super) file: Option<(&'a ConfigFile, &'a DeTable<'a>)>,
    pub(super) problems: Vec<Problem>,
}

impl Values<'_> {
    /// The problem key for a path: the variable when the value came from the environment.
    fn key(&self, path: &str) -> String {
        if let Some(var) = self.origins.get(path) {
            return format!("{var} (env)");
        }
        match self.env_origin(path) {
            Some(var) => format!("{path} (in {var})"),
            None => path.to_owned(),
        }
    }

    /// The variable that set `path` or a table holding it (`OPSBOT_ENVIRONMENTS_PROD` for
    /// `environments.prod.approvals`).
    fn env_origin(&self, path: &str) -> Option<&str> {
        path.char_indices()
            .filter(|(_, c)| matches!(c, '.' | '['))
            .map(|(end, _)| &path[..end])
            .chain([path])
            .find_map(|prefix| self.origins.get(prefix))
            .map(String::as_str)
    }

    /// Records a problem with the value at `path`, pointing at the file when it came from there.
    pub(super) fn report(&mut self, path: &str, message: impl Into<String>, hint: Option<String>) {
        let mut message = message.into();
        if self.env_origin(path).is_none()
            && let Some(at) = self.locate(path)
        {
            message = format!("{message} ({at})");
        }
        self.problems.push(Problem {
            key: self.key(path),
            message,
            hint,
        });
    }

    /// `file:line:column` of the deepest part of `path` present in the file; `path` is dotted
    /// keys with list indexes, e.g. `services[1].backend.args[0]`.
    fn locate(&self, path: &str) -> Option<String> {
        let (file, root) = self.file?;
        let mut found = None;
        let mut table = Some(root);
        'segments: for segment in path.split('.') {
            let mut parts = segment.split('[');
            let name = parts.next().unwrap_or_default();
            let Some((key, value)) = table.and_then(|table| table.get_key_value(name)) else {
                break;
            };
            found = Some(key.span().start);
            let mut current = value.get_ref();
            for index in parts {
                let item = match (current, index.trim_end_matches(']').parse::<usize>()) {
                    (DeValue::Array(items), Ok(index)) => items.get(index),
                    _ => None,
                };
                let Some(item) = item else {
                    break 'segments;
                };
                found = Some(item.span().start);
                current = item.get_ref();
            }
            table = match current {
                DeValue::Table(inner) => Some(inner),
                _ => None,
            };
        }
        found.map(|offset| format!("{}:{}", file.label, line_col(&file.text, offset)))
    }

    /// Reports and removes known sections of the wrong shape, so the rest still loads.
    pub(super) fn drop_misshapen_sections(&mut self, table: &mut Table) {
        for name in section_names() {
            let Some(value) = table.get(name) else {
                continue;
            };
            let found = value.type_str();
            if ARRAY_SECTIONS.contains(&name) {
                if !value.is_array() {
                    self.report(
                        name,
                        format!("expected [[{name}]] entries, found {found}"),
                        Some(format!("write each entry under its own [[{name}]] header")),
                    );
                    table.remove(name);
                }
            } else if !value.is_table() {
                self.report(
                    name,
                    format!("expected a table [{name}], found {found}"),
                    Some(format!("write the keys of {name} under a [{name}] header")),
                );
                table.remove(name);
            }
        }
    }

    /// Reports every key of `table` (at `path`) not in `known`; `place` names where, for the
    /// hint: `[environments.production]`, `a command backend`.
    pub(super) fn unknown_keys(&mut self, path: &str, table: &Table, known: &[&str], place: &str) {
        for key in table.keys().filter(|key| !known.contains(&key.as_str())) {
            let list = format!("known keys in {place}: {}", known.join(", "));
            let hint = match closest(key, known) {
                Some(guess) => format!("did you mean `{guess}`? {list}"),
                None => list,
            };
            self.report(&format!("{path}.{key}"), "unknown key", Some(hint));
        }
    }

    /// Reports a key that no setting reads, with the keys that would have been read there.
    pub(super) fn unknown_key(&mut self, path: &str) {
        let (message, hint) = match path.split_once('.') {
            None => {
                let known = section_names();
                let mut hint = format!("known sections: {}", known.join(", "));
                if let Some(guess) = closest(path, &known) {
                    hint = format!("did you mean [{guess}]? {hint}");
                }
                ("unknown section".to_owned(), Some(hint))
            }
            Some((section, rest)) => {
                let known = SECTIONS
                    .iter()
                    .find(|(name, _)| *name == section)
                    .map(|(_, keys)| *keys)
                    .filter(|keys| !keys.is_empty());
                let hint = known.map(|keys| {
                    let list = format!("known keys in [{section}]: {}", keys.join(", "));
                    match closest(rest, keys) {
                        Some(guess) => format!("did you mean `{guess}`? {list}"),
                        None => list,
                    }
                });
                // From the environment the problem key is the variable, so name the key too.
                let message = if self.origins.contains_key(path) {
                    format!("unknown key {path}")
                } else {
                    "unknown key".to_owned()
                };
                (message, hint)
            }
        };
        self.report(path, message, hint);
    }

    /// Checks every value and builds the config; missing values take the defaults.
    pub(super) fn build(&mut self, raw: RawConfig) -> Config {
        let defaults = Config::default();
        let discord = DiscordConfig {
            token: raw
                .discord
                .token
                .and_then(|value| self.secret("discord.token", value)),
            guild_ids: raw
                .discord
                .guild_ids
                .map_or(defaults.discord.guild_ids, |value| self.guild_ids(value)),
            api_base: raw
                .discord
                .api_base
                .and_then(|value| self.api_base(value))
                .unwrap_or(defaults.discord.api_base),
            client_id: raw
                .discord
                .client_id
                .and_then(|value| self.snowflake("discord.client_id", value)),
            client_secret: raw
                .discord
                .client_secret
                .and_then(|value| self.secret("discord.client_secret", value)),
            gateway: match raw.discord.gateway {
                None => defaults.discord.gateway,
                Some(value) => self
                    .string("discord.gateway", value, "\"leader\" or \"off\"")
                    .and_then(|text| match text.as_str() {
                        "leader" => Some(super::GatewayMode::Leader),
                        "off" => Some(super::GatewayMode::Off),
                        _ => {
                            self.report(
                                "discord.gateway",
                                format!("`{text}` is not a gateway mode"),
                                Some("write \"leader\" (the default) or \"off\"".to_owned()),
                            );
                            None
                        }
                    })
                    .unwrap_or(defaults.discord.gateway),
            },
        };
        let database = DatabaseConfig {
            url: raw
                .database
                .url
                .and_then(|value| self.secret("database.url", value)),
            max_connections: raw
                .database
                .max_connections
                .and_then(|value| self.max_connections(value))
                .unwrap_or(defaults.database.max_connections),
            embedded_dir: raw
                .database
                .embedded_dir
                .and_then(|value| self.embedded_dir(value))
                .unwrap_or(defaults.database.embedded_dir),
        };
        let http = HttpConfig {
            listen: raw
                .http
                .listen
                .and_then(|value| self.listen(value))
                .unwrap_or(defaults.http.listen),
            public_url: raw.http.public_url.and_then(|value| {
                self.http_url(
                    "http.public_url",
                    value,
                    "\"https://opsbot.example.com\"",
                    UrlUse::Base,
                )
            }),
            dashboard_tokens: raw
                .http
                .dashboard_tokens
                .map(|value| self.secrets("http.dashboard_tokens", value))
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .filter_map(|(i, token)| {
                    self.long_secret(&format!("http.dashboard_tokens[{i}]"), token)
                })
                .collect(),
            session_secret: raw
                .http
                .session_secret
                .and_then(|value| self.secret("http.session_secret", value))
                .and_then(|secret| self.long_secret("http.session_secret", secret)),
            session_ttl: raw
                .http
                .session_ttl
                .and_then(|value| self.duration("http.session_ttl", value))
                .unwrap_or(defaults.http.session_ttl),
        };
        let roles = raw
            .roles
            .into_iter()
            .filter_map(|(role, value)| {
                let grants = self.grants(&role, value)?;
                Some((role, grants))
            })
            .collect();
        let channels = self.channels(raw.channels);
        let deploy = DeployConfig {
            approval_timeout: raw
                .deploy
                .approval_timeout
                .and_then(|value| self.duration("deploy.approval_timeout", value))
                .unwrap_or(defaults.deploy.approval_timeout),
        };
        let (services, deployed_to) = self.services(raw.services);
        let environments = self.environments(raw.environments, &deployed_to);
        let audit = self.audit(raw.audit);
        let alertmanager = self.alertmanager(raw.alertmanager);
        let alerts = self.alerts(raw.alerts);
        let incidents = self.incidents(raw.incidents);
        let prometheus = self.prometheus(raw.prometheus);
        let digests = self.digests(raw.digests);
        let events = self.events(raw.events);
        Config {
            discord,
            database,
            http,
            roles,
            channels,
            deploy,
            environments,
            services,
            audit,
            incidents,
            alertmanager,
            alerts,
            prometheus,
            digests,
            events,
        }
    }

    pub(super) fn secret(&mut self, path: &str, value: Value) -> Option<Secret> {
        let Value::String(text) = value else {
            // The value is not shown: it might be the secret.
            self.report(
                path,
                format!(
                    "expected a string (env:NAME or file:PATH), found {}",
                    value.type_str()
                ),
                None,
            );
            return None;
        };
        let written = match self.origins.get(path) {
            Some(var) => Written::Env(var),
            None => Written::File,
        };
        match secret::resolve(&self.key(path), path, &text, written, self.env) {
            Ok(secret) => Some(secret),
            Err(mut problem) => {
                if !self.origins.contains_key(path)
                    && let Some(at) = self.locate(path)
                {
                    problem.message = format!("{} ({at})", problem.message);
                }
                self.problems.push(problem);
                None
            }
        }
    }

    /// `secret` when it has at least [`MIN_WEB_SECRET_BYTES`] bytes; a problem otherwise.
    /// The value is never shown, only its length and where it came from.
    fn long_secret(&mut self, path: &str, secret: Secret) -> Option<Secret> {
        let length = secret.expose().len();
        if length >= MIN_WEB_SECRET_BYTES {
            return Some(secret);
        }
        self.report(
            path,
            format!(
                "{} is {length} bytes long; at least {MIN_WEB_SECRET_BYTES} are needed",
                secret.origin()
            ),
            Some("generate one with `openssl rand -hex 32`".to_owned()),
        );
        None
    }

    /// A list of secrets (each `env:NAME` or `file:PATH`).
    fn secrets(&mut self, path: &str, value: Value) -> Vec<Secret> {
        match value {
            Value::Array(items) => items
                .into_iter()
                .filter_map(|item| self.secret(path, item))
                .collect(),
            other => {
                self.report(
                    path,
                    format!("expected a list of secrets, found {}", other.type_str()),
                    Some(format!("write {path} = [\"env:DASHBOARD_TOKEN\"]")),
                );
                Vec::new()
            }
        }
    }

    /// A Discord id (a snowflake), written as a number or a string of digits.
    fn snowflake(&mut self, path: &str, value: Value) -> Option<u64> {
        let parsed = match &value {
            Value::Integer(id) => u64::try_from(*id).ok().filter(|id| *id > 0),
            Value::String(text) => text.trim().parse::<u64>().ok().filter(|id| *id > 0),
            _ => None,
        };
        if parsed.is_none() {
            self.report(
                path,
                format!("expected a Discord id, found {} {value}", value.type_str()),
                Some(
                    "copy the Application ID from the Developer Portal (General Information)"
                        .to_owned(),
                ),
            );
        }
        parsed
    }

    /// The string at `path`, or a problem saying what was expected instead.
    pub(super) fn string(&mut self, path: &str, value: Value, expected: &str) -> Option<String> {
        match value {
            Value::String(text) => Some(text),
            other => {
                self.report(
                    path,
                    format!("expected {expected}, found {} {other}", other.type_str()),
                    None,
                );
                None
            }
        }
    }

    fn guild_ids(&mut self, value: Value) -> Vec<u64> {
        const PATH: &str = "discord.guild_ids";
        const HINT: &str = "write server ids as bare numbers, e.g. guild_ids = [123456789012345678] (Developer Mode → right-click the server → Copy Server ID)";
        let Value::Array(items) = value else {
            self.report(
                PATH,
                format!(
                    "expected a list of guild ids, found {} {value}",
                    value.type_str()
                ),
                Some(HINT.to_owned()),
            );
            return Vec::new();
        };
        let mut ids = Vec::new();
        for item in items {
            match item {
                Value::Integer(id) if id > 0 => ids.extend(u64::try_from(id).ok()),
                Value::Integer(id) => self.report(
                    PATH,
                    format!("{id} is not a guild id; Discord ids are positive"),
                    Some(HINT.to_owned()),
                ),
                other => self.report(
                    PATH,
                    format!("expected a guild id, found {} {other}", other.type_str()),
                    Some(HINT.to_owned()),
                ),
            }
        }
        ids
    }

    fn api_base(&mut self, value: Value) -> Option<String> {
        const PATH: &str = "discord.api_base";
        let text = self.string(PATH, value, "a URL such as \"https://discord.com\"")?;
        let base = text.strip_suffix('/').unwrap_or(&text);
        let host = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"));
        match host {
            Some(host)
                if !host.is_empty()
                    && !host.contains(['/', '?', '#'])
                    && !host.contains(char::is_whitespace) =>
            {
                Some(base.to_owned())
            }
            _ => {
                self.report(
                    PATH,
                    format!("`{text}` is not an http(s) base URL"),
                    Some(
                        "write the scheme and host only, e.g. \"https://discord.com\" or \"http://127.0.0.1:3000\"; opsbot adds the API path".to_owned(),
                    ),
                );
                None
            }
        }
    }

    fn channels(&mut self, raw: RawChannels) -> ChannelsConfig {
        ChannelsConfig {
            deploys: raw
                .deploys
                .and_then(|value| self.channel("channels.deploys", value)),
            incidents: raw
                .incidents
                .and_then(|value| self.channel("channels.incidents", value)),
            alerts: raw
                .alerts
                .and_then(|value| self.channel("channels.alerts", value)),
            incident_category: raw
                .incident_category
                .and_then(|value| self.channel("channels.incident_category", value)),
            incident_archive_category: raw
                .incident_archive_category
                .and_then(|value| self.channel("channels.incident_archive_category", value)),
        }
    }

    /// A Discord channel (or category) id.
    pub(super) fn channel(&mut self, path: &str, value: Value) -> Option<u64> {
        const HINT: &str = "write the channel id as a bare number, e.g. 111111111111111111 (Developer Mode → right-click the channel → Copy Channel ID)";
        match value {
            Value::Integer(id) if id > 0 => u64::try_from(id).ok(),
            Value::Integer(id) => {
                self.report(
                    path,
                    format!("{id} is not a channel id; Discord ids are positive"),
                    Some(HINT.to_owned()),
                );
                None
            }
            other => {
                self.report(
                    path,
                    format!("expected a channel id, found {} {other}", other.type_str()),
                    Some(HINT.to_owned()),
                );
                None
            }
        }
    }

    /// A duration longer than zero, written like `"30s"`, `"10m"` or `"1h 30m"`.
    pub(super) fn duration(&mut self, path: &str, value: Value) -> Option<Duration> {
        let hint = || {
            Some(
                "write a number and a unit, e.g. \"30s\", \"10m\", \"1h\" or \"1h 30m\"".to_owned(),
            )
        };
        let Value::String(text) = value else {
            self.report(
                path,
                format!("expected a duration, found {} {value}", value.type_str()),
                hint(),
            );
            return None;
        };
        match humantime::parse_duration(&text) {
            Ok(duration) if duration.is_zero() => {
                self.report(path, format!("`{text}` is no time at all"), hint());
                None
            }
            Ok(duration) => Some(duration),
            Err(error) => {
                self.report(path, format!("`{text}` is not a duration: {error}"), hint());
                None
            }
        }
    }

    /// An absolute http(s) URL without fragment, returned without a trailing `/`; a
    /// [`UrlUse::Base`] has no query either, since paths are appended to it. `example` is shown
    /// in the hint.
    pub(super) fn http_url(
        &mut self,
        path: &str,
        value: Value,
        example: &str,
        url_use: UrlUse,
    ) -> Option<String> {
        let text = self.string(path, value, &format!("a URL such as {example}"))?;
        let trimmed = text.trim_end_matches('/');
        let valid = (trimmed.starts_with("https://") || trimmed.starts_with("http://"))
            && !trimmed.contains(char::is_whitespace)
            && url::Url::parse(trimmed).is_ok_and(|url| {
                url.host_str().is_some_and(|host| !host.is_empty())
                    && (url_use == UrlUse::Endpoint || url.query().is_none())
                    && url.fragment().is_none()
            });
        if valid {
            Some(trimmed.to_owned())
        } else {
            self.report(
                path,
                format!("`{text}` is not an absolute http(s) URL"),
                Some(format!(
                    "write the scheme, host and any path, e.g. {example}"
                )),
            );
            None
        }
    }

    fn max_connections(&mut self, value: Value) -> Option<u32> {
        const PATH: &str = "database.max_connections";
        let hint = Some(format!(
            "a number from 1 to {MAX_CONNECTIONS_LIMIT}; the default 10 is plenty for one bot"
        ));
        match value {
            Value::Integer(n) if (1..=MAX_CONNECTIONS_LIMIT).contains(&n) => u32::try_from(n).ok(),
            Value::Integer(n) => {
                self.report(
                    PATH,
                    format!("{n} is out of range 1..={MAX_CONNECTIONS_LIMIT}"),
                    hint,
                );
                None
            }
            other => {
                self.report(
                    PATH,
                    format!("expected an integer, found {} {other}", other.type_str()),
                    hint,
                );
                None
            }
        }
    }

    fn embedded_dir(&mut self, value: Value) -> Option<PathBuf> {
        const PATH: &str = "database.embedded_dir";
        let text = self.string(PATH, value, "a directory path")?;
        if text.trim().is_empty() {
            self.report(
                PATH,
                "is empty",
                Some("write a directory, e.g. \".opsbot/pg\" (the default)".to_owned()),
            );
            return None;
        }
        Some(PathBuf::from(text))
    }

    fn listen(&mut self, value: Value) -> Option<SocketAddr> {
        const PATH: &str = "http.listen";
        let hint = || {
            Some(
                "write IP:PORT, e.g. \"127.0.0.1:8080\" (this machine only) or \"0.0.0.0:8080\" (every interface)"
                    .to_owned(),
            )
        };
        let Value::String(text) = value else {
            self.report(
                PATH,
                format!("expected an address, found {} {value}", value.type_str()),
                hint(),
            );
            return None;
        };
        match text.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.report(PATH, format!("`{text}` is not an IP:PORT address"), hint());
                None
            }
        }
    }

    /// The grants of one role; every problem with them is reported under `roles.<role>`.
    fn grants(&mut self, role: &str, value: Value) -> Option<Vec<String>> {
        let path = format!("roles.{role}");
        let hint = || {
            Some(format!(
                "write a list of permissions, e.g. {role} = [\"deploy:staging\", \"audit:read\"]"
            ))
        };
        let Value::Array(items) = value else {
            self.report(
                &path,
                format!(
                    "expected a list of grants, found {} {value}",
                    value.type_str()
                ),
                hint(),
            );
            return None;
        };
        let mut grants = Vec::new();
        let mut valid = true;
        for item in items {
            match item {
                Value::String(grant) => match opsbot_commands::access::validate_grant(&grant) {
                    Ok(()) => grants.push(grant),
                    Err(message) => {
                        self.report(&path, message, None);
                        valid = false;
                    }
                },
                other => {
                    self.report(
                        &path,
                        format!(
                            "expected a grant string, found {} {other}",
                            other.type_str()
                        ),
                        hint(),
                    );
                    valid = false;
                }
            }
        }
        valid.then_some(grants)
    }
}
