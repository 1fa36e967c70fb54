//! Values of one key, checked and with the key named in every problem: strings, secrets
//! (`env:`/`file:` references), Discord ids, durations, URLs, addresses and pool sizes. The
//! sections (`values.rs` and one file per section) are built from these.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::Value;

use super::secret::{self, Secret, Written};
use super::values::{UrlUse, Values};

/// Fewest bytes of a dashboard token or `http.session_secret`: even written in hex (4 bits a
/// character) that is 128 bits, beyond guessing however many attempts get through.
pub const MIN_WEB_SECRET_BYTES: usize = 32;

/// Most pool connections allowed: beyond this, Postgres' own limits bite first.
const MAX_CONNECTIONS_LIMIT: i64 = 1000;

impl Values<'_> {
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
    pub(super) fn long_secret(&mut self, path: &str, secret: Secret) -> Option<Secret> {
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
    pub(super) fn secrets(&mut self, path: &str, value: Value) -> Vec<Secret> {
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
    pub(super) fn snowflake(&mut self, path: &str, value: Value) -> Option<u64> {
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

    pub(super) fn guild_ids(&mut self, value: Value) -> Vec<u64> {
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

    pub(super) fn api_base(&mut self, value: Value) -> Option<String> {
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

    pub(super) fn max_connections(&mut self, value: Value) -> Option<u32> {
        self.count(
            "database.max_connections",
            value,
            MAX_CONNECTIONS_LIMIT,
            "the default 10 is plenty for one bot",
        )
    }

    /// An integer from 1 to `max` at `path`; `advice` follows the range in the hint.
    pub(super) fn count(
        &mut self,
        path: &str,
        value: Value,
        max: i64,
        advice: &str,
    ) -> Option<u32> {
        let hint = Some(format!("a number from 1 to {max}; {advice}"));
        match value {
            Value::Integer(n) if (1..=max).contains(&n) => u32::try_from(n).ok(),
            Value::Integer(n) => {
                self.report(path, format!("{n} is out of range 1..={max}"), hint);
                None
            }
            other => {
                self.report(
                    path,
                    format!("expected an integer, found {} {other}", other.type_str()),
                    hint,
                );
                None
            }
        }
    }

    pub(super) fn embedded_dir(&mut self, value: Value) -> Option<PathBuf> {
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

    pub(super) fn listen(&mut self, value: Value) -> Option<SocketAddr> {
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
}
