//! `[environments.<name>]` and `[[services]]`: what can be deployed where, and how.
//!
//! Both are checked by hand from raw values, so each problem names its place, e.g.
//! `services[1].environments[0]` or `environments.production.freeze[0]`. Backends are in
//! [`super::backend`].

use std::collections::{BTreeMap, BTreeSet};

use opsbot_commands::deploy::freeze::FreezeWindow;
use toml::Value;

use super::backend::BackendConfig;
use super::problem::closest;
use super::values::Values;

/// The keys of a `[[services]]` entry.
pub(super) const SERVICE_KEYS: &[&str] = &["name", "environments", "backend", "panels"];

/// The keys of an `[environments.<name>]` table.
pub(super) const ENVIRONMENT_KEYS: &[&str] = &["approvals", "freeze"];

/// Most approvals an environment may require: more than a team can gather within any
/// sensible `approval_timeout`, and a sign the number was mistyped.
const MAX_APPROVALS: i64 = 10;

/// Longest service or environment name: Discord option values and button ids carry it, and it
/// appears in every deploy message.
const MAX_NAME_LEN: usize = 32;

/// `[environments.<name>]`: the rules for deploying to one environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnvironmentConfig {
    /// Approvals needed from people other than the requester, 0..=10. Default 0.
    pub approvals: u32,
    /// When deploys are refused unless overridden. Default none.
    pub freeze: Vec<FreezeWindow>,
}

/// `[[services]]`: one deployable service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Unique; 1 to 32 of `a-z 0-9 _ -`, starting with a letter or digit.
    pub name: String,
    /// Where it deploys: at least one, no repeats, named like services.
    pub environments: Vec<String>,
    /// How a deploy is carried out.
    pub backend: BackendConfig,
    /// What `/metrics service` draws (see [`super::metrics`]); may be empty.
    pub panels: Vec<super::PanelConfig>,
}

/// Whether `name` can name a service or environment: `^[a-z0-9][a-z0-9_-]{0,31}$`.
fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && name.len() <= MAX_NAME_LEN
}

impl Values<'_> {
    /// `[[services]]`, and every environment named by some entry, even one with other problems,
    /// so that a broken service does not also make its environments look unused.
    pub(super) fn services(
        &mut self,
        raw: Option<Value>,
    ) -> (Vec<ServiceConfig>, BTreeSet<String>) {
        let mut services = Vec::new();
        let mut deployed_to = BTreeSet::new();
        // Anything but an array was reported and removed with the misshapen sections.
        let Some(Value::Array(entries)) = raw else {
            return (services, deployed_to);
        };
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        for (index, entry) in entries.into_iter().enumerate() {
            let path = format!("services[{index}]");
            let Value::Table(mut table) = entry else {
                self.report(
                    &path,
                    format!("expected a table, found {}", entry.type_str()),
                    Some("write each service under its own [[services]] header".to_owned()),
                );
                continue;
            };
            self.unknown_keys(&path, &table, SERVICE_KEYS, "[[services]]");
            let name = self.service_name(&path, table.remove("name"), index, &mut names);
            let environments = self.service_environments(&path, table.remove("environments"));
            if let Some(environments) = &environments {
                deployed_to.extend(environments.iter().cloned());
            }
            let backend = self.backend(&path, table.remove("backend"));
            let panels = self.panels(&path, table.remove("panels"));
            if let (Some(environments), Some(backend)) = (&environments, &backend) {
                self.backend_environments_known(&path, environments, backend);
            }
            if let (Some(name), Some(environments), Some(backend)) = (name, environments, backend) {
                services.push(ServiceConfig {
                    name,
                    environments,
                    backend,
                    panels,
                });
            }
        }
        (services, deployed_to)
    }

    /// `[environments.<name>]`; each must be deployed to by some service in `deployed_to`.
    pub(super) fn environments(
        &mut self,
        raw: BTreeMap<String, Value>,
        deployed_to: &BTreeSet<String>,
    ) -> BTreeMap<String, EnvironmentConfig> {
        let mut environments = BTreeMap::new();
        for (name, value) in raw {
            let path = format!("environments.{name}");
            let Value::Table(mut table) = value else {
                self.report(
                    &path,
                    format!("expected a table, found {}", value.type_str()),
                    Some(format!(
                        "write its keys under an [environments.{name}] header, e.g. approvals = 1"
                    )),
                );
                continue;
            };
            if self.check_name(&path, &name, "environment") && !deployed_to.contains(&name) {
                self.unused_environment(&path, &name, deployed_to);
            }
            self.unknown_keys(
                &path,
                &table,
                ENVIRONMENT_KEYS,
                &format!("[environments.{name}]"),
            );
            let approvals = table
                .remove("approvals")
                .and_then(|value| self.approvals(&format!("{path}.approvals"), value))
                .unwrap_or_default();
            let freeze = table
                .remove("freeze")
                .map(|value| self.freeze(&format!("{path}.freeze"), value))
                .unwrap_or_default();
            environments.insert(name, EnvironmentConfig { approvals, freeze });
        }
        environments
    }

    fn unused_environment(&mut self, path: &str, name: &str, deployed_to: &BTreeSet<String>) {
        if deployed_to.is_empty() {
            self.report(
                path,
                format!("no service deploys to `{name}`; no [[services]] are configured"),
                Some(format!(
                    "add a [[services]] entry that deploys to {name}, or remove [environments.{name}]"
                )),
            );
            return;
        }
        let known: Vec<&str> = deployed_to.iter().map(String::as_str).collect();
        let hint = match closest(name, &known) {
            Some(guess) => format!(
                "did you mean [environments.{guess}]? Its approvals and freeze windows apply only under the right name"
            ),
            None => format!(
                "add `{name}` to the environments of a service, or remove [environments.{name}]"
            ),
        };
        self.report(
            path,
            format!(
                "no service deploys to `{name}`; services deploy to: {}",
                known.join(", ")
            ),
            Some(hint),
        );
    }

    /// Reports `name` if it cannot name a `what` (service or environment); true when it can.
    fn check_name(&mut self, path: &str, name: &str, what: &str) -> bool {
        if is_valid_name(name) {
            return true;
        }
        self.report(
            path,
            format!("`{name}` is not a valid {what} name"),
            Some(format!(
                "use 1 to {MAX_NAME_LEN} lowercase letters, digits, `-` or `_`, starting with a letter or digit (it becomes a Discord option value)"
            )),
        );
        false
    }

    fn service_name(
        &mut self,
        path: &str,
        value: Option<Value>,
        index: usize,
        names: &mut BTreeMap<String, usize>,
    ) -> Option<String> {
        let Some(value) = value else {
            self.report(
                path,
                "has no `name`",
                Some("add name = \"api\": the name people type in /deploy".to_owned()),
            );
            return None;
        };
        let path = format!("{path}.name");
        let name = self.string(&path, value, "a service name such as \"api\"")?;
        if !self.check_name(&path, &name, "service") {
            return None;
        }
        if let Some(first) = names.get(&name) {
            self.report(
                &path,
                format!("`{name}` is already the name of services[{first}]"),
                Some("give each service its own name".to_owned()),
            );
            return None;
        }
        names.insert(name.clone(), index);
        Some(name)
    }

    /// The valid environment names of a service; `None` when it names none at all.
    fn service_environments(&mut self, path: &str, value: Option<Value>) -> Option<Vec<String>> {
        let hint = || {
            Some(
                "list where it deploys, e.g. environments = [\"staging\", \"production\"]"
                    .to_owned(),
            )
        };
        let Some(value) = value else {
            self.report(path, "has no `environments`", hint());
            return None;
        };
        let path = format!("{path}.environments");
        let Value::Array(items) = value else {
            self.report(
                &path,
                format!(
                    "expected a list of environment names, found {} {value}",
                    value.type_str()
                ),
                hint(),
            );
            return None;
        };
        if items.is_empty() {
            self.report(&path, "lists no environment", hint());
            return None;
        }
        let mut environments: Vec<String> = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            let path = format!("{path}[{index}]");
            let Some(name) = self.string(&path, item, "an environment name such as \"staging\"")
            else {
                continue;
            };
            if !self.check_name(&path, &name, "environment") {
                continue;
            }
            if environments.contains(&name) {
                self.report(&path, format!("`{name}` is listed twice"), None);
                continue;
            }
            environments.push(name);
        }
        (!environments.is_empty()).then_some(environments)
    }

    fn approvals(&mut self, path: &str, value: Value) -> Option<u32> {
        let hint = Some(format!(
            "the number of people other than the requester who must approve, 0 to {MAX_APPROVALS}"
        ));
        match value {
            Value::Integer(n) if (0..=MAX_APPROVALS).contains(&n) => u32::try_from(n).ok(),
            Value::Integer(n) => {
                self.report(
                    path,
                    format!("{n} is out of range 0..={MAX_APPROVALS}"),
                    hint,
                );
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

    fn freeze(&mut self, path: &str, value: Value) -> Vec<FreezeWindow> {
        let Value::Array(items) = value else {
            self.report(
                path,
                format!(
                    "expected a list of freeze windows, found {} {value}",
                    value.type_str()
                ),
                Some("write freeze = [\"Fri 16:00 - Mon 08:00 America/Los_Angeles\"]".to_owned()),
            );
            return Vec::new();
        };
        let mut windows = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            let path = format!("{path}[{index}]");
            let Some(text) = self.string(
                &path,
                item,
                "a freeze window such as \"Fri 16:00 - Mon 08:00 UTC\"",
            ) else {
                continue;
            };
            match FreezeWindow::parse(&text) {
                Ok(window) => windows.push(window),
                Err(error) => {
                    // The parser ends its errors with the accepted forms: they make the hint.
                    let (message, hint) = match error.rsplit_once("; write ") {
                        Some((message, forms)) => {
                            (message.to_owned(), Some(format!("write {forms}")))
                        }
                        None => (error, None),
                    };
                    self.report(&path, message, hint);
                }
            }
        }
        windows
    }
}
