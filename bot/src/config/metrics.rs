//! `[prometheus]` (where `/metrics` queries go) and the `panels` of a `[[services]]` entry
//! (what `/metrics service` draws).
//!
//! ```toml
//! [prometheus]
//! url = "http://127.0.0.1:9090"
//! timeout = "10s"              # per query; Prometheus is told the same
//! max_range = "30d"            # the longest `range` a query may ask for
//! username = "opsbot"          # basic auth, with password; or bearer_token
//! password = "env:PROMETHEUS_PASSWORD"
//!
//! [[services]]
//! name = "api"
//! panels = [{ title = "p99 latency", promql = "histogram_quantile(0.99, ...)", unit = "seconds" }]
//! ```

use std::time::Duration;

use serde::Deserialize;
use toml::Value;

use super::secret::Secret;
use super::values::{UrlUse, Values};

/// The keys of `[prometheus]`.
pub(super) const PROMETHEUS_KEYS: &[&str] = &[
    "url",
    "timeout",
    "max_range",
    "username",
    "password",
    "bearer_token",
];

/// The keys of one entry of a service's `panels`.
const PANEL_KEYS: &[&str] = &["title", "promql", "unit"];

/// Default `prometheus.timeout`.
pub const DEFAULT_PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `prometheus.max_range`: Prometheus' default retention is 15 days; a month covers
/// a longer one without inviting queries that take minutes.
pub const DEFAULT_MAX_RANGE: Duration = Duration::from_secs(30 * 86400);
/// Most panels a service may have: the small multiples stay readable.
const MAX_PANELS: usize = 8;

/// `[prometheus]`: the Prometheus `/metrics` commands query.
#[derive(Debug, Clone)]
pub struct PrometheusConfig {
    /// Base URL, without a trailing `/`, e.g. `http://127.0.0.1:9090`.
    pub url: String,
    /// How long one query may take (default 10s).
    pub timeout: Duration,
    /// The longest `range` a query may ask for (default 30d).
    pub max_range: Duration,
    /// Basic auth: `username` with `password` (a secret).
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Or a bearer token (a secret).
    pub bearer_token: Option<Secret>,
}

/// One panel of a service: a titled PromQL expression and its unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanelConfig {
    pub title: String,
    pub promql: String,
    /// `seconds`, `bytes`, `ratio`, `/s`, or any word to write after values; empty: none.
    pub unit: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawPrometheus {
    url: Option<Value>,
    timeout: Option<Value>,
    max_range: Option<Value>,
    username: Option<Value>,
    password: Option<Value>,
    bearer_token: Option<Value>,
}

impl Values<'_> {
    pub(super) fn prometheus(&mut self, raw: RawPrometheus) -> Option<PrometheusConfig> {
        let url = raw.url.and_then(|value| {
            self.http_url(
                "prometheus.url",
                value,
                "\"http://127.0.0.1:9090\"",
                UrlUse::Base,
            )
        });
        let timeout = raw
            .timeout
            .and_then(|value| self.duration("prometheus.timeout", value))
            .unwrap_or(DEFAULT_PROMETHEUS_TIMEOUT);
        let max_range = raw
            .max_range
            .and_then(|value| self.duration("prometheus.max_range", value))
            .unwrap_or(DEFAULT_MAX_RANGE);
        let username = raw
            .username
            .and_then(|value| self.string("prometheus.username", value, "a user name"));
        let password = raw
            .password
            .and_then(|value| self.secret("prometheus.password", value));
        let bearer_token = raw
            .bearer_token
            .and_then(|value| self.secret("prometheus.bearer_token", value));
        if password.is_some() != username.is_some() {
            self.report(
                if username.is_some() {
                    "prometheus.password"
                } else {
                    "prometheus.username"
                },
                "basic auth needs both username and password",
                Some("set both, or neither (or use bearer_token)".to_owned()),
            );
        }
        if bearer_token.is_some() && username.is_some() {
            self.report(
                "prometheus.bearer_token",
                "set either basic auth (username, password) or bearer_token, not both",
                None,
            );
        }
        url.map(|url| PrometheusConfig {
            url,
            timeout,
            max_range,
            username,
            password,
            bearer_token,
        })
    }

    /// A service's `panels`: an array of `{ title, promql, unit }`.
    pub(super) fn panels(&mut self, service: &str, raw: Option<Value>) -> Vec<PanelConfig> {
        let path = format!("{service}.panels");
        let hint = || {
            Some(
                "write panels = [{ title = \"requests\", promql = \"sum(rate(http_requests_total[5m]))\", unit = \"/s\" }]"
                    .to_owned(),
            )
        };
        let entries = match raw {
            None => return Vec::new(),
            Some(Value::Array(entries)) => entries,
            Some(other) => {
                self.report(
                    &path,
                    format!("expected a list of panels, found {}", other.type_str()),
                    hint(),
                );
                return Vec::new();
            }
        };
        if entries.len() > MAX_PANELS {
            self.report(
                &path,
                format!(
                    "{} panels; at most {MAX_PANELS} stay readable in one image",
                    entries.len()
                ),
                None,
            );
        }
        let mut panels = Vec::new();
        for (index, entry) in entries.into_iter().enumerate().take(MAX_PANELS) {
            let at = format!("{path}[{index}]");
            let Value::Table(mut table) = entry else {
                self.report(
                    &at,
                    format!("expected a table, found {}", entry.type_str()),
                    hint(),
                );
                continue;
            };
            self.unknown_keys(&at, &table, PANEL_KEYS, "a panel");
            let mut text = |values: &mut Values<'_>, key: &str, required: bool| {
                let place = format!("{at}.{key}");
                match table.remove(key) {
                    Some(value) => values.string(&place, value, "a string").filter(|text| {
                        let empty = text.trim().is_empty();
                        if empty && required {
                            values.report(&place, "is empty", hint());
                        }
                        !empty || !required
                    }),
                    None if required => {
                        values.report(&place, "is missing", hint());
                        None
                    }
                    None => Some(String::new()),
                }
            };
            let title = text(self, "title", true);
            let promql = text(self, "promql", true);
            let unit = text(self, "unit", false);
            if let (Some(title), Some(promql), Some(unit)) = (title, promql, unit) {
                panels.push(PanelConfig {
                    title,
                    promql,
                    unit,
                });
            }
        }
        panels
    }
}

impl super::Config {
    /// What the config says about metrics, in the domain's terms.
    pub fn metrics_catalog(&self) -> opsbot_commands::metrics::MetricsCatalog {
        use opsbot_commands::metrics::{
            MetricsCatalog, Panel, PrometheusAuth, PrometheusSettings, Unit,
        };
        use secrecy::SecretString;
        let secret = |s: &Secret| SecretString::from(s.expose().to_owned());
        MetricsCatalog {
            prometheus: self.prometheus.as_ref().map(|p| PrometheusSettings {
                url: p.url.clone(),
                timeout: p.timeout,
                max_range: p.max_range,
                auth: match (&p.username, &p.password, &p.bearer_token) {
                    (Some(username), Some(password), _) => PrometheusAuth::Basic {
                        username: username.clone(),
                        password: secret(password),
                    },
                    (_, _, Some(token)) => PrometheusAuth::Bearer(secret(token)),
                    _ => PrometheusAuth::None,
                },
            }),
            panels: self
                .services
                .iter()
                .map(|service| {
                    let panels = service
                        .panels
                        .iter()
                        .map(|p| Panel {
                            title: p.title.clone(),
                            promql: p.promql.clone(),
                            unit: Unit::from_config(&p.unit),
                        })
                        .collect();
                    (service.name.clone(), panels)
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::config::Config;

    fn load(toml: &str) -> Result<Config, String> {
        let file = tempfile::NamedTempFile::new().expect("file");
        std::fs::write(file.path(), toml).expect("write");
        let env = BTreeMap::from([("PROM_TOKEN".to_owned(), "t0k3n".to_owned())]);
        Config::load_with_env(Some(file.path()), &env).map_err(|e| e.to_string())
    }

    #[test]
    fn prometheus_and_panels_are_read_and_checked() {
        let config = load(
            r#"
[prometheus]
url = "http://127.0.0.1:9090/"
timeout = "3s"
bearer_token = "env:PROM_TOKEN"

[[services]]
name = "api"
environments = ["staging"]
backend = { kind = "command", program = "true" }
panels = [{ title = "up", promql = "up", unit = "ratio" }, { title = "rss", promql = "process_resident_memory_bytes" }]
"#,
        )
        .expect("valid");
        let prometheus = config.prometheus.clone().expect("configured");
        assert_eq!(prometheus.url, "http://127.0.0.1:9090");
        assert_eq!(prometheus.timeout, std::time::Duration::from_secs(3));
        assert_eq!(prometheus.max_range, super::DEFAULT_MAX_RANGE);
        assert_eq!(prometheus.bearer_token.expect("token").expose(), "t0k3n");
        assert_eq!(config.services[0].panels.len(), 2);
        assert_eq!(config.services[0].panels[1].unit, "");
        let catalog = config.metrics_catalog();
        let settings = catalog.prometheus.expect("settings");
        assert!(matches!(
            &settings.auth,
            opsbot_commands::metrics::PrometheusAuth::Bearer(t) if secrecy::ExposeSecret::expose_secret(t) == "t0k3n"
        ));
        assert_eq!(settings.timeout, std::time::Duration::from_secs(3));
        let panels = &catalog.panels["api"];
        assert_eq!(panels[0].unit, opsbot_commands::metrics::Unit::Ratio);
        assert_eq!(panels[1].title, "rss");

        let problems = load(
            r#"
[prometheus]
url = "127.0.0.1:9090"
username = "opsbot"

[[services]]
name = "api"
environments = ["staging"]
backend = { kind = "command", program = "true" }
panels = [{ title = "", promql = "up", colour = "red" }]
"#,
        )
        .expect_err("invalid");
        for expected in [
            "prometheus.url",
            "prometheus.password: basic auth needs both",
            "services[0].panels[0].title: is empty",
            "services[0].panels[0].colour: unknown key",
        ] {
            assert!(problems.contains(expected), "{expected} in {problems}");
        }
    }
}
