//! `[alertmanager]` (where silences are made) and `[alerts]` with its `[[alerts.routes]]`
//! (which channel each alert group goes to).
//!
//! ```toml
//! [alertmanager]
//! url = "http://127.0.0.1:9093"
//! bearer_token = "env:ALERTMANAGER_API_TOKEN"   # optional; or username + password
//! timeout = "10s"                               # default
//!
//! [alerts]
//! webhook_token = "env:ALERTMANAGER_WEBHOOK_TOKEN"
//! service_label = "service"                     # default
//! correlate_window = "30m"                      # default
//!
//! [[alerts.routes]]
//! matchers = ['severity="critical"', 'team=~"platform|sre"']
//! channel = 333
//! mode = "immediate"                            # immediate | digest | drop
//! mention = ["oncall"]                          # role names
//! send_resolved = true                          # default
//! ```

use std::time::Duration;

use opsbot_commands::alerts::{Matcher, Mode};
use serde::Deserialize;
use toml::Value;

use super::secret::Secret;
use super::values::{UrlUse, Values};

/// The keys of `[alertmanager]`.
pub(super) const ALERTMANAGER_KEYS: &[&str] =
    &["url", "bearer_token", "username", "password", "timeout"];
/// Default `alertmanager.timeout`: a button press waits for Alertmanager, and Discord wants
/// an answer within 3 s; a silence call normally takes milliseconds.
pub const DEFAULT_ALERTMANAGER_TIMEOUT: Duration = Duration::from_secs(2);
/// The keys of `[alerts]`.
pub(super) const ALERTS_KEYS: &[&str] = &[
    "webhook_token",
    "service_label",
    "correlate_window",
    "routes",
];
/// The keys of one `[[alerts.routes]]` entry.
const ROUTE_KEYS: &[&str] = &["matchers", "channel", "mode", "mention", "send_resolved"];

/// Default `alerts.correlate_window`.
const DEFAULT_CORRELATE_WINDOW: Duration = Duration::from_secs(30 * 60);

/// `[alertmanager]`: Alertmanager's v2 API, for silences.
#[derive(Debug, Clone)]
pub struct AlertmanagerConfig {
    /// Base URL without a trailing `/`; `None`: no silences from Discord.
    pub url: Option<String>,
    /// Sent as `Authorization: Bearer ...` when set.
    pub bearer_token: Option<Secret>,
    /// Basic auth (both or neither).
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub timeout: Duration,
}

impl Default for AlertmanagerConfig {
    fn default() -> AlertmanagerConfig {
        AlertmanagerConfig {
            url: None,
            bearer_token: None,
            username: None,
            password: None,
            timeout: DEFAULT_ALERTMANAGER_TIMEOUT,
        }
    }
}

/// `[alerts]`.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// The token Alertmanager sends as `Authorization: Bearer ...`; `None`: the webhook
    /// refuses every delivery (401).
    pub webhook_token: Option<Secret>,
    /// The label that names an alert's service. Default `service`.
    pub service_label: String,
    /// A deploy of the alert's service this long before it started correlates. Default 30m.
    pub correlate_window: Duration,
    /// `[[alerts.routes]]`, first match wins.
    pub routes: Vec<AlertRouteConfig>,
}

impl Default for AlertsConfig {
    fn default() -> AlertsConfig {
        AlertsConfig {
            webhook_token: None,
            service_label: "service".to_owned(),
            correlate_window: DEFAULT_CORRELATE_WINDOW,
            routes: Vec::new(),
        }
    }
}

/// One `[[alerts.routes]]` entry, validated.
#[derive(Debug, Clone)]
pub struct AlertRouteConfig {
    pub matchers: Vec<Matcher>,
    pub channel: u64,
    pub mode: Mode,
    pub mention: Vec<String>,
    pub send_resolved: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawAlertmanager {
    url: Option<Value>,
    bearer_token: Option<Value>,
    username: Option<Value>,
    password: Option<Value>,
    timeout: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawAlerts {
    webhook_token: Option<Value>,
    service_label: Option<Value>,
    correlate_window: Option<Value>,
    /// Checked by hand, entry by entry.
    routes: Option<Value>,
}

impl Values<'_> {
    pub(super) fn alertmanager(&mut self, raw: RawAlertmanager) -> AlertmanagerConfig {
        let config = AlertmanagerConfig {
            url: raw.url.and_then(|value| {
                self.http_url(
                    "alertmanager.url",
                    value,
                    "\"http://127.0.0.1:9093\"",
                    UrlUse::Base,
                )
            }),
            bearer_token: raw
                .bearer_token
                .and_then(|value| self.secret("alertmanager.bearer_token", value)),
            username: raw
                .username
                .and_then(|value| self.string("alertmanager.username", value, "a user name")),
            password: raw
                .password
                .and_then(|value| self.secret("alertmanager.password", value)),
            timeout: raw
                .timeout
                .and_then(|value| self.duration("alertmanager.timeout", value))
                .unwrap_or(DEFAULT_ALERTMANAGER_TIMEOUT),
        };
        if config.password.is_some() != config.username.is_some() {
            self.report(
                if config.username.is_some() {
                    "alertmanager.password"
                } else {
                    "alertmanager.username"
                },
                "basic auth needs both username and password",
                Some("set both, or neither (or use bearer_token)".to_owned()),
            );
        }
        if config.bearer_token.is_some() && config.username.is_some() {
            self.report(
                "alertmanager.bearer_token",
                "set either basic auth (username, password) or bearer_token, not both",
                None,
            );
        }
        config
    }

    pub(super) fn alerts(&mut self, raw: RawAlerts) -> AlertsConfig {
        let defaults = AlertsConfig::default();
        let service_label = raw
            .service_label
            .and_then(|value| self.string("alerts.service_label", value, "a label name"))
            .filter(|label| {
                let valid = Matcher::parse(&format!("{label}=\"\"")).is_ok();
                if !valid {
                    self.report(
                        "alerts.service_label",
                        format!("`{label}` is not a label name"),
                        Some("write letters, digits and _, e.g. \"service\"".to_owned()),
                    );
                }
                valid
            })
            .unwrap_or(defaults.service_label);
        AlertsConfig {
            webhook_token: raw
                .webhook_token
                .and_then(|value| self.secret("alerts.webhook_token", value)),
            service_label,
            correlate_window: raw
                .correlate_window
                .and_then(|value| self.duration("alerts.correlate_window", value))
                .unwrap_or(defaults.correlate_window),
            routes: raw.routes.map(|v| self.routes(v)).unwrap_or_default(),
        }
    }

    fn routes(&mut self, value: Value) -> Vec<AlertRouteConfig> {
        if let Some(var) = self.origins.get("alerts.routes").cloned() {
            self.report(
                "alerts.routes",
                "[[alerts.routes]] can only be set in the config file",
                Some(format!(
                    "write each route under its own [[alerts.routes]] header, and unset {var}"
                )),
            );
            return Vec::new();
        }
        let Value::Array(entries) = value else {
            self.report(
                "alerts.routes",
                format!(
                    "expected [[alerts.routes]] entries, found {}",
                    value.type_str()
                ),
                Some("write each route under its own [[alerts.routes]] header".to_owned()),
            );
            return Vec::new();
        };
        let mut routes = Vec::new();
        for (index, entry) in entries.into_iter().enumerate() {
            let path = format!("alerts.routes[{index}]");
            let Value::Table(mut table) = entry else {
                self.report(
                    &path,
                    format!("expected a table, found {}", entry.type_str()),
                    Some("write each route under its own [[alerts.routes]] header".to_owned()),
                );
                continue;
            };
            self.unknown_keys(&path, &table, ROUTE_KEYS, "[[alerts.routes]]");
            let matchers = self.matchers(&path, table.remove("matchers"));
            let channel = self.route_channel(&path, table.remove("channel"));
            let mode = match table.remove("mode") {
                None => Some(Mode::Immediate),
                Some(value) => {
                    let key = format!("{path}.mode");
                    self.string(&key, value, "immediate, digest or drop")
                        .and_then(|text| {
                            let mode = Mode::parse(&text);
                            if mode.is_none() {
                                self.report(
                                    &key,
                                    format!("`{text}` is not a mode"),
                                    Some("write \"immediate\", \"digest\" or \"drop\"".to_owned()),
                                );
                            }
                            mode
                        })
                }
            };
            let mention = self.role_names(&path, table.remove("mention"));
            let send_resolved = match table.remove("send_resolved") {
                None => Some(true),
                Some(Value::Boolean(b)) => Some(b),
                Some(other) => {
                    self.report(
                        &format!("{path}.send_resolved"),
                        format!("expected true or false, found {} {other}", other.type_str()),
                        None,
                    );
                    None
                }
            };
            if let (Some(matchers), Some(channel), Some(mode), Some(mention), Some(send_resolved)) =
                (matchers, channel, mode, mention, send_resolved)
            {
                routes.push(AlertRouteConfig {
                    matchers,
                    channel,
                    mode,
                    mention,
                    send_resolved,
                });
            }
        }
        routes
    }

    fn matchers(&mut self, path: &str, value: Option<Value>) -> Option<Vec<Matcher>> {
        let key = format!("{path}.matchers");
        let hint = || {
            Some(
                "write Alertmanager matchers, e.g. matchers = ['severity=\"critical\"', 'service=~\"api|web\"']"
                    .to_owned(),
            )
        };
        let items = match value {
            None => return Some(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.report(
                    &key,
                    format!("expected a list of matchers, found {}", other.type_str()),
                    hint(),
                );
                return None;
            }
        };
        let mut matchers = Vec::new();
        let mut ok = true;
        for (i, item) in items.into_iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            let Some(text) =
                self.string(&item_key, item, "a matcher such as severity=\"critical\"")
            else {
                ok = false;
                continue;
            };
            match Matcher::parse(&text) {
                Ok(matcher) => matchers.push(matcher),
                Err(why) => {
                    self.report(&item_key, why, hint());
                    ok = false;
                }
            }
        }
        ok.then_some(matchers)
    }

    fn route_channel(&mut self, path: &str, value: Option<Value>) -> Option<u64> {
        let key = format!("{path}.channel");
        let hint = "write the channel's id as a bare number (Developer Mode → right-click the channel → Copy Channel ID)";
        match value {
            Some(Value::Integer(id)) if id > 0 => u64::try_from(id).ok(),
            Some(Value::String(text)) if text.trim().parse::<u64>().is_ok_and(|id| id > 0) => {
                text.trim().parse().ok()
            }
            None => {
                self.report(
                    &key,
                    "missing: every route needs a channel",
                    Some(hint.to_owned()),
                );
                None
            }
            Some(other) => {
                self.report(
                    &key,
                    format!("expected a channel id, found {} {other}", other.type_str()),
                    Some(hint.to_owned()),
                );
                None
            }
        }
    }

    fn role_names(&mut self, path: &str, value: Option<Value>) -> Option<Vec<String>> {
        let key = format!("{path}.mention");
        match value {
            None => Some(Vec::new()),
            Some(Value::Array(items)) => {
                let mut names = Vec::new();
                for (i, item) in items.into_iter().enumerate() {
                    let name = self.string(&format!("{key}[{i}]"), item, "a role name")?;
                    names.push(name);
                }
                Some(names)
            }
            Some(other) => {
                self.report(
                    &key,
                    format!("expected a list of role names, found {}", other.type_str()),
                    Some("write mention = [\"oncall\"]".to_owned()),
                );
                None
            }
        }
    }
}

impl super::Config {
    /// The Alertmanager client of `[alertmanager]`, when a URL is configured.
    fn alertmanager_client(&self) -> Option<opsbot_commands::alerts::silence::Alertmanager> {
        use opsbot_commands::alerts::silence::{
            Alertmanager, AlertmanagerAuth, AlertmanagerSettings,
        };
        let config = &self.alertmanager;
        let url = config.url.clone()?;
        let secret = |s: &Secret| secrecy::SecretString::from(s.expose().to_owned());
        let auth = match (&config.username, &config.password, &config.bearer_token) {
            (Some(username), Some(password), _) => AlertmanagerAuth::Basic {
                username: username.clone(),
                password: secret(password),
            },
            (_, _, Some(token)) => AlertmanagerAuth::Bearer(secret(token)),
            _ => AlertmanagerAuth::None,
        };
        match Alertmanager::new(AlertmanagerSettings {
            url,
            timeout: config.timeout,
            auth,
        }) {
            Ok(client) => Some(client),
            Err(e) => {
                tracing::error!(error = %e, "no Alertmanager client: silences from Discord are off");
                None
            }
        }
    }

    /// What the config says about alerts, in the domain's terms.
    pub fn alerts_catalog(&self) -> opsbot_commands::alerts::AlertsCatalog {
        use opsbot_commands::alerts::{AlertsCatalog, Route};
        AlertsCatalog {
            webhook_token: self
                .alerts
                .webhook_token
                .as_ref()
                .map(|t| secrecy::SecretString::from(t.expose().to_owned())),
            service_label: self.alerts.service_label.clone(),
            correlate_window: self.alerts.correlate_window,
            routes: self
                .alerts
                .routes
                .iter()
                .map(|r| Route {
                    matchers: r.matchers.clone(),
                    channel: i64::try_from(r.channel).unwrap_or(i64::MAX),
                    mode: r.mode,
                    mention: r.mention.clone(),
                    send_resolved: r.send_resolved,
                })
                .collect(),
            alertmanager: self.alertmanager_client(),
            upkeep_wake: Default::default(),
            ingest_queue: Default::default(),
            role_ids: Default::default(),
            guild_id: self
                .discord
                .guild_ids
                .first()
                .and_then(|id| i64::try_from(*id).ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::Config;

    fn load(text: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("opsbot.toml");
        std::fs::write(&path, text).expect("write");
        let env: BTreeMap<String, String> = [("AM_TOKEN".to_owned(), "t0ken".to_owned())]
            .into_iter()
            .collect();
        Config::load_with_env(Some(&path), &env).map_err(|e| e.to_string())
    }

    #[test]
    fn routes_load_with_defaults_and_matchers_are_validated() {
        let config = load(
            r#"
[alertmanager]
url = "http://127.0.0.1:9093/"
[alerts]
webhook_token = "env:AM_TOKEN"
correlate_window = "1h"
[[alerts.routes]]
matchers = ['severity="critical"', 'team=~"platform|sre"']
channel = 333
mention = ["oncall"]
[[alerts.routes]]
channel = 444
mode = "digest"
send_resolved = false
"#,
        )
        .expect("valid");
        assert_eq!(
            config.alertmanager.url.as_deref(),
            Some("http://127.0.0.1:9093")
        );
        assert_eq!(
            config.alerts.webhook_token.as_ref().map(|t| t.expose()),
            Some("t0ken")
        );
        assert_eq!(config.alerts.correlate_window.as_secs(), 3600);
        assert_eq!(config.alerts.routes.len(), 2);
        assert_eq!(config.alerts.routes[0].matchers.len(), 2);
        assert!(config.alerts.routes[0].send_resolved);
        assert!(config.alerts.routes[1].matchers.is_empty());
        assert!(!config.alerts.routes[1].send_resolved);

        let errors = load(
            r#"
[alerts]
[[alerts.routes]]
matchers = ['severity', 'team=~"("']
mode = "loud"
colour = 1
"#,
        )
        .expect_err("invalid");
        for expected in [
            "alerts.routes[0].matchers[0]",
            "no operator",
            "alerts.routes[0].matchers[1]",
            "regular expression",
            "alerts.routes[0].channel",
            "`loud` is not a mode",
            "alerts.routes[0].colour",
        ] {
            assert!(
                errors.contains(expected),
                "{expected} missing in:\n{errors}"
            );
        }
    }

    #[test]
    fn alertmanager_auth_and_timeout_are_read_and_checked() {
        let config = load(
            r#"
[alertmanager]
url = "http://127.0.0.1:9093"
username = "opsbot"
password = "env:AM_TOKEN"
timeout = "3s"
"#,
        )
        .expect("valid");
        assert_eq!(config.alertmanager.timeout.as_secs(), 3);
        assert_eq!(config.alertmanager.username.as_deref(), Some("opsbot"));
        assert!(config.alerts_catalog().alertmanager.is_some());
        assert_eq!(
            Config::default().alertmanager.timeout,
            super::DEFAULT_ALERTMANAGER_TIMEOUT
        );
        assert!(Config::default().alerts_catalog().alertmanager.is_none());

        let errors = load(
            r#"
[alertmanager]
url = "http://127.0.0.1:9093"
username = "opsbot"
bearer_token = "env:AM_TOKEN"
"#,
        )
        .expect_err("invalid");
        for expected in [
            "alertmanager.password: basic auth needs both",
            "alertmanager.bearer_token: set either basic auth",
        ] {
            assert!(
                errors.contains(expected),
                "{expected} missing in:\n{errors}"
            );
        }
        assert!(
            !errors.contains("t0ken"),
            "secrets are never echoed: {errors}"
        );
    }
}
