//! Turns the merged raw values into a [`Config`], checking each one and naming its key.

use std::collections::BTreeMap;

use toml::de::{DeTable, DeValue};
use toml::{Table, Value};

use super::problem::{Problem, closest};
use super::{
    ARRAY_SECTIONS, ChannelsConfig, Config, ConfigFile, DatabaseConfig, DeployConfig,
    DiscordConfig, HttpConfig, RawChannels, RawConfig, SECTIONS, line_col, section_names,
};

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
    pub(super) fn key(&self, path: &str) -> String {
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
    pub(super) fn locate(&self, path: &str) -> Option<String> {
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
            max_in_flight: raw.discord.max_in_flight.and_then(|value| {
                self.count(
                    "discord.max_in_flight",
                    value,
                    100_000,
                    "by default 8 per database connection",
                )
            }),
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
            change_failure_window: raw
                .deploy
                .change_failure_window
                .and_then(|value| self.duration("deploy.change_failure_window", value))
                .unwrap_or(defaults.deploy.change_failure_window),
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
