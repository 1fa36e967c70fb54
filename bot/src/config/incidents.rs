//! `[incidents]`: severities, roles, the deploy freeze and what happens to a channel after
//! resolve.
//!
//! ```toml
//! [incidents]
//! freeze_environments = ["production"]   # default
//! roles = ["commander", "comms", "scribe"] # default
//! archive = "move"                        # move | read_only | keep (default: move when
//!                                         # [channels] incident_archive_category is set)
//! [incidents.severities.sev1]
//! description = "customer-facing outage"
//! color = "#d83c3e"
//! reminder = "15m"
//! responders = ["oncall"]
//! freeze_deploys = true
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Value;

use super::values::Values;

/// The keys of `[incidents]`.
pub(super) const INCIDENT_KEYS: &[&str] = &[
    "severities",
    "freeze_environments",
    "roles",
    "archive",
    "github",
];

/// The keys of `[incidents.github]`.
const GITHUB_KEYS: &[&str] = &["repo", "token", "labels", "api_base"];

/// The keys of `[incidents.severities.<name>]`.
const SEVERITY_KEYS: &[&str] = &[
    "description",
    "color",
    "reminder",
    "responders",
    "freeze_deploys",
];

/// `[incidents]`.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentsConfig {
    /// By name; `/incident declare` offers these.
    pub severities: BTreeMap<String, SeverityConfig>,
    /// Where an open incident at a severity with `freeze_deploys` blocks deploys of its
    /// services. Default `["production"]`.
    pub freeze_environments: Vec<String>,
    /// The roles people take. Default commander, comms, scribe.
    pub roles: Vec<String>,
    /// What happens to the channel after resolve; `None`: move when an archive category is
    /// configured, else keep.
    pub archive: Option<ArchiveConfig>,
    /// `[incidents.github]`: postmortems also become GitHub issues.
    pub github: Option<PostmortemGithub>,
}

/// `[incidents.github]`.
#[derive(Debug, Clone)]
pub struct PostmortemGithub {
    /// `owner/name`.
    pub repo: String,
    pub token: super::Secret,
    pub labels: Vec<String>,
    /// Default `https://api.github.com`.
    pub api_base: String,
}

/// Equal when everything but the token's value is (secrets are not compared).
impl PartialEq for PostmortemGithub {
    fn eq(&self, other: &PostmortemGithub) -> bool {
        (&self.repo, &self.labels, &self.api_base) == (&other.repo, &other.labels, &other.api_base)
    }
}

impl Default for IncidentsConfig {
    fn default() -> IncidentsConfig {
        IncidentsConfig {
            severities: BTreeMap::new(),
            freeze_environments: vec!["production".to_owned()],
            roles: vec![
                "commander".to_owned(),
                "comms".to_owned(),
                "scribe".to_owned(),
            ],
            archive: None,
            github: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveConfig {
    Move,
    ReadOnly,
    Keep,
}

/// `[incidents.severities.<name>]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeverityConfig {
    pub description: String,
    /// 0xRRGGBB, written `"#d83c3e"`.
    pub color: Option<u32>,
    /// Remind the commander when no status update came for this long; `None`: never.
    pub reminder: Option<Duration>,
    /// Discord role names pinged when an incident at this severity is declared.
    pub responders: Vec<String>,
    /// Open incidents at this severity block deploys of their services.
    pub freeze_deploys: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawIncidents {
    severities: Option<Value>,
    freeze_environments: Option<Value>,
    roles: Option<Value>,
    archive: Option<Value>,
    github: Option<Value>,
}

impl Values<'_> {
    pub(super) fn incidents(&mut self, raw: RawIncidents) -> IncidentsConfig {
        let defaults = IncidentsConfig::default();
        let severities = raw
            .severities
            .map(|value| self.severities(value))
            .unwrap_or_default();
        let freeze_environments = raw
            .freeze_environments
            .and_then(|value| self.names("incidents.freeze_environments", value))
            .unwrap_or(defaults.freeze_environments);
        let roles = raw
            .roles
            .and_then(|value| self.names("incidents.roles", value))
            .filter(|roles| {
                if roles.is_empty() {
                    self.report(
                        "incidents.roles",
                        "needs at least one role",
                        Some("e.g. roles = [\"commander\", \"comms\", \"scribe\"]".to_owned()),
                    );
                }
                !roles.is_empty()
            })
            .unwrap_or(defaults.roles);
        let archive = raw.archive.and_then(|value| {
            let text = self.string("incidents.archive", value, "move, read_only or keep")?;
            match text.as_str() {
                "move" => Some(ArchiveConfig::Move),
                "read_only" => Some(ArchiveConfig::ReadOnly),
                "keep" => Some(ArchiveConfig::Keep),
                other => {
                    self.report(
                        "incidents.archive",
                        format!("unknown archive mode `{other}`"),
                        Some("one of: move (to [channels] incident_archive_category), read_only, keep".to_owned()),
                    );
                    None
                }
            }
        });
        let github = raw.github.and_then(|value| self.postmortem_github(value));
        IncidentsConfig {
            severities,
            freeze_environments,
            roles,
            archive,
            github,
        }
    }

    fn postmortem_github(&mut self, value: Value) -> Option<PostmortemGithub> {
        const PATH: &str = "incidents.github";
        let Value::Table(mut table) = value else {
            self.report(
                PATH,
                format!("expected a table, found {}", value.type_str()),
                None,
            );
            return None;
        };
        self.unknown_keys(PATH, &table, GITHUB_KEYS, "[incidents.github]");
        let repo = match table.remove("repo") {
            Some(value) => self.string("incidents.github.repo", value, "\"owner/name\""),
            None => {
                self.report(
                    "incidents.github.repo",
                    "is required",
                    Some("repo = \"acme/postmortems\"".to_owned()),
                );
                None
            }
        }
        .filter(|repo| {
            let ok = repo
                .split_once('/')
                .is_some_and(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'));
            if !ok {
                self.report(
                    "incidents.github.repo",
                    format!("`{repo}` is not owner/name"),
                    Some("repo = \"acme/postmortems\"".to_owned()),
                );
            }
            ok
        });
        let token = match table.remove("token") {
            Some(value) => self.secret("incidents.github.token", value),
            None => {
                self.report(
                    "incidents.github.token",
                    "is required",
                    Some("token = \"env:GITHUB_TOKEN\" (needs issues: write)".to_owned()),
                );
                None
            }
        };
        let labels = table
            .remove("labels")
            .and_then(|value| self.names("incidents.github.labels", value))
            .unwrap_or_else(|| vec!["postmortem".to_owned()]);
        let api_base = match table.remove("api_base") {
            Some(value) => self.string(
                "incidents.github.api_base",
                value,
                "a URL such as \"https://api.github.com\"",
            )?,
            None => "https://api.github.com".to_owned(),
        };
        Some(PostmortemGithub {
            repo: repo?,
            token: token?,
            labels,
            api_base: api_base.trim_end_matches('/').to_owned(),
        })
    }

    fn severities(&mut self, value: Value) -> BTreeMap<String, SeverityConfig> {
        let Value::Table(table) = value else {
            self.report(
                "incidents.severities",
                format!("expected a table, found {}", value.type_str()),
                Some("write each under its own [incidents.severities.<name>] header".to_owned()),
            );
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        for (name, value) in table {
            let path = format!("incidents.severities.{name}");
            let Value::Table(mut table) = value else {
                self.report(
                    &path,
                    format!("expected a table, found {}", value.type_str()),
                    Some(format!("write its keys under an [{path}] header")),
                );
                continue;
            };
            if !is_name(&name) {
                self.report(
                    &path,
                    "a severity name is 1 to 32 of a-z 0-9 _ -",
                    Some("e.g. sev1".to_owned()),
                );
                continue;
            }
            self.unknown_keys(&path, &table, SEVERITY_KEYS, &format!("[{path}]"));
            let description = table
                .remove("description")
                .and_then(|v| self.string(&format!("{path}.description"), v, "a description"))
                .unwrap_or_default();
            let color = table
                .remove("color")
                .and_then(|v| self.color(&format!("{path}.color"), v));
            let reminder = table
                .remove("reminder")
                .and_then(|v| self.duration(&format!("{path}.reminder"), v));
            let responders = table
                .remove("responders")
                .and_then(|v| self.names(&format!("{path}.responders"), v))
                .unwrap_or_default();
            let freeze_deploys = match table.remove("freeze_deploys") {
                None => false,
                Some(Value::Boolean(b)) => b,
                Some(other) => {
                    self.report(
                        &format!("{path}.freeze_deploys"),
                        format!("expected true or false, found {}", other.type_str()),
                        None,
                    );
                    false
                }
            };
            out.insert(
                name,
                SeverityConfig {
                    description,
                    color,
                    reminder,
                    responders,
                    freeze_deploys,
                },
            );
        }
        out
    }

    /// A list of non-empty strings without repeats.
    fn names(&mut self, path: &str, value: Value) -> Option<Vec<String>> {
        let Value::Array(items) = value else {
            self.report(
                path,
                format!("expected a list of names, found {}", value.type_str()),
                Some("e.g. [\"production\"]".to_owned()),
            );
            return None;
        };
        let mut out: Vec<String> = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Value::String(s) if !s.trim().is_empty() => {
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
                other => self.report(
                    &format!("{path}[{i}]"),
                    format!("expected a non-empty name, found {}", other.type_str()),
                    None,
                ),
            }
        }
        Some(out)
    }

    fn color(&mut self, path: &str, value: Value) -> Option<u32> {
        let text = self.string(path, value, "a colour like \"#d83c3e\"")?;
        let parsed = text
            .strip_prefix('#')
            .filter(|hex| hex.len() == 6)
            .and_then(|hex| u32::from_str_radix(hex, 16).ok());
        if parsed.is_none() {
            self.report(
                path,
                format!("`{text}` is not a colour"),
                Some("write it as #RRGGBB, e.g. \"#d83c3e\"".to_owned()),
            );
        }
        parsed
    }
}

impl super::Config {
    /// What the config says about incidents, in the domain's terms.
    pub fn incident_catalog(&self) -> opsbot_commands::incident::IncidentCatalog {
        use opsbot_commands::incident::{Archive, IncidentCatalog, Severity, role_spec};
        let incidents = &self.incidents;
        let archive_category = self.channels.incident_archive_category.map(|c| c as i64);
        let archive = match incidents.archive {
            Some(ArchiveConfig::Move) => Archive::Move,
            Some(ArchiveConfig::ReadOnly) => Archive::ReadOnly,
            Some(ArchiveConfig::Keep) => Archive::Keep,
            None if archive_category.is_some() => Archive::Move,
            None => Archive::Keep,
        };
        IncidentCatalog {
            severities: incidents
                .severities
                .iter()
                .map(|(name, s)| {
                    (
                        name.clone(),
                        Severity {
                            name: name.clone(),
                            description: s.description.clone(),
                            color: s.color,
                            reminder: s.reminder,
                            responders: s.responders.clone(),
                            freeze_deploys: s.freeze_deploys,
                        },
                    )
                })
                .collect(),
            roles: incidents.roles.iter().map(|r| role_spec(r)).collect(),
            freeze_environments: incidents.freeze_environments.clone(),
            announce_channel: self.channels.incidents.map(|c| c as i64),
            category: self.channels.incident_category.map(|c| c as i64),
            archive_category,
            archive,
            guild_id: self.discord.guild_ids.first().map(|g| *g as i64),
            public_url: self.http.public_url.clone(),
            github: incidents.github.as_ref().map(|g| {
                opsbot_commands::incident::postmortem::GithubIssues {
                    repo: g.repo.clone(),
                    token: secrecy::SecretString::from(g.token.expose().to_owned()),
                    labels: g.labels.clone(),
                    api_base: g.api_base.clone(),
                }
            }),
        }
    }
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::Config;

    fn load(toml: &str) -> Result<Config, String> {
        let file = tempfile::NamedTempFile::new().expect("file");
        std::fs::write(file.path(), toml).expect("write");
        Config::load_with_env(Some(file.path()), &BTreeMap::new()).map_err(|e| e.to_string())
    }

    #[test]
    fn severities_roles_and_archive_load_with_defaults() {
        let config = load(
            r##"
[channels]
incidents = 222
incident_category = 444
incident_archive_category = 555
[incidents.severities.sev1]
description = "customer-facing outage"
color = "#d83c3e"
reminder = "15m"
responders = ["oncall"]
freeze_deploys = true
[incidents.severities.sev3]
reminder = "1h"
"##,
        )
        .expect("valid");
        let sev1 = &config.incidents.severities["sev1"];
        assert_eq!(sev1.color, Some(0xd83c3e));
        assert_eq!(sev1.reminder, Some(Duration::from_secs(900)));
        assert_eq!(sev1.responders, ["oncall"]);
        assert!(sev1.freeze_deploys);
        assert!(!config.incidents.severities["sev3"].freeze_deploys);
        assert_eq!(config.incidents.freeze_environments, ["production"]);
        assert_eq!(config.incidents.roles, ["commander", "comms", "scribe"]);
        assert_eq!(config.channels.incident_archive_category, Some(555));
    }

    #[test]
    fn bad_values_and_unknown_keys_are_named() {
        let error = load(
            r##"
[incidents]
archive = "burn"
[incidents.severities.sev1]
color = "red"
freeze = true
"##,
        )
        .expect_err("invalid");
        assert!(error.contains("incidents.archive"), "{error}");
        assert!(error.contains("incidents.severities.sev1.color"), "{error}");
        assert!(
            error.contains("incidents.severities.sev1.freeze"),
            "{error}"
        );
        assert!(error.contains("freeze_deploys"), "{error}");

        let error = load("[incidents.github]\nrepo = \"postmortems\"\nlabel = [\"x\"]\n")
            .expect_err("invalid");
        assert!(
            error.contains("incidents.github.repo") && error.contains("not owner/name"),
            "{error}"
        );
        assert!(error.contains("incidents.github.token"), "{error}");
        assert!(error.contains("incidents.github.label"), "{error}");
    }
}
