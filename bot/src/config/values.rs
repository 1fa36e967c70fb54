//! Turns the merged raw values into a [`Config`], checking each one and naming its key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use toml::de::{DeTable, DeValue};
use toml::{Table, Value};

use super::problem::{Problem, closest};
use super::secret::{self, Secret, Written};
use super::{
    Config, ConfigFile, DatabaseConfig, DiscordConfig, HttpConfig, RawConfig, SECTIONS, line_col,
    section_names,
};

/// Most pool connections allowed: beyond this, Postgres' own limits bite first.
const MAX_CONNECTIONS_LIMIT: i64 = 1000;

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
        match self.origins.get(path) {
            Some(var) => format!("{var} (env)"),
            None => path.to_owned(),
        }
    }

    /// Records a problem with the value at `path`, pointing at the file when it came from there.
    fn report(&mut self, path: &str, message: impl Into<String>, hint: Option<String>) {
        let mut message = message.into();
        if !self.origins.contains_key(path)
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

    /// `file:line:column` of the deepest key of `path` present in the file.
    fn locate(&self, path: &str) -> Option<String> {
        let (file, mut table) = self.file?;
        let mut found = None;
        for segment in path.split('.') {
            let Some((key, value)) = table.get_key_value(segment) else {
                break;
            };
            found = Some(key.span().start);
            match value.get_ref() {
                DeValue::Table(inner) => table = inner,
                _ => break,
            }
        }
        found.map(|offset| format!("{}:{}", file.label, line_col(&file.text, offset)))
    }

    /// Reports and removes known sections that are not tables, so the rest still loads.
    pub(super) fn drop_misshapen_sections(&mut self, table: &mut Table) {
        for name in section_names() {
            let misshapen = table
                .get(name)
                .filter(|value| !value.is_table())
                .map(|value| value.type_str());
            if let Some(found) = misshapen {
                self.report(
                    name,
                    format!("expected a table [{name}], found {found}"),
                    Some(format!("write the keys of {name} under a [{name}] header")),
                );
                table.remove(name);
            }
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
        };
        let roles = raw
            .roles
            .into_iter()
            .filter_map(|(role, value)| {
                let grants = self.grants(&role, value)?;
                Some((role, grants))
            })
            .collect();
        Config {
            discord,
            database,
            http,
            roles,
        }
    }

    fn secret(&mut self, path: &str, value: Value) -> Option<Secret> {
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

    /// The string at `path`, or a problem saying what was expected instead.
    fn string(&mut self, path: &str, value: Value, expected: &str) -> Option<String> {
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
