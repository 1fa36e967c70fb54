//! `[[digests]]`: scheduled summaries posted to a channel (see `opsbot_commands::digest`).
//!
//! ```toml
//! [[digests]]
//! name = "daily"                           # /digest preview name:daily, opsbot digest run daily
//! cron = "0 0 9 * * Mon-Fri"               # six fields, seconds first
//! timezone = "Europe/Berlin"               # IANA name; DST neither skips nor doubles a fire
//! channel = 111
//! include = ["deploys", "incidents", "alerts", "audit"]   # default: all four
//! when_empty = "post"                      # "post" (says all quiet, the default) or "skip"
//! grace = "1h"                             # missed fire times this recent are caught up once
//! ```
//! Checked by hand, so each problem names the digest: `digests[0].cron: digest "daily": …`.

use std::collections::BTreeSet;

use opsbot_commands::digest::{DEFAULT_GRACE, DigestSpec, Schedule, Section, WhenEmpty};
use toml::Value;

use super::values::Values;

/// The keys of a `[[digests]]` entry.
pub(super) const DIGEST_KEYS: &[&str] = &[
    "name",
    "cron",
    "timezone",
    "channel",
    "include",
    "when_empty",
    "grace",
];

/// Longest digest name: it is a Discord option value.
const MAX_NAME_LEN: usize = 32;

/// `[[digests]]` as the domain takes it.
pub type DigestConfig = DigestSpec;

impl Values<'_> {
    pub(super) fn digests(&mut self, raw: Option<Value>) -> Vec<DigestConfig> {
        // Anything but an array was reported and removed with the misshapen sections.
        let Some(Value::Array(entries)) = raw else {
            return Vec::new();
        };
        let mut digests = Vec::new();
        let mut names = BTreeSet::new();
        for (index, entry) in entries.into_iter().enumerate() {
            let path = format!("digests[{index}]");
            let Value::Table(mut table) = entry else {
                self.report(
                    &path,
                    format!("expected a table, found {}", entry.type_str()),
                    Some("write each digest under its own [[digests]] header".to_owned()),
                );
                continue;
            };
            self.unknown_keys(&path, &table, DIGEST_KEYS, "[[digests]]");
            let name = self.digest_name(&path, table.remove("name"), &mut names);
            let label = name.clone().unwrap_or_else(|| format!("#{index}"));
            let schedule = self.digest_schedule(
                &path,
                &label,
                table.remove("cron"),
                table.remove("timezone"),
            );
            let channel = match table.remove("channel") {
                Some(value) => self.channel(&format!("{path}.channel"), value),
                None => {
                    self.report(
                        &format!("{path}.channel"),
                        format!("digest \"{label}\" has no channel"),
                        Some("add channel = <the channel id> to post it to".to_owned()),
                    );
                    None
                }
            };
            let include = self.digest_include(&path, &label, table.remove("include"));
            let when_empty = self.when_empty(&path, &label, table.remove("when_empty"));
            let grace = match table.remove("grace") {
                None => Some(DEFAULT_GRACE),
                Some(value) => self.duration(&format!("{path}.grace"), value),
            };
            if let (
                Some(name),
                Some(schedule),
                Some(channel),
                Some(include),
                Some(when_empty),
                Some(grace),
            ) = (name, schedule, channel, include, when_empty, grace)
            {
                digests.push(DigestSpec {
                    name,
                    schedule,
                    channel: i64::try_from(channel).unwrap_or(i64::MAX),
                    include,
                    when_empty,
                    grace,
                });
            }
        }
        digests
    }

    fn digest_name(
        &mut self,
        path: &str,
        value: Option<Value>,
        names: &mut BTreeSet<String>,
    ) -> Option<String> {
        let key = format!("{path}.name");
        let Some(value) = value else {
            self.report(
                &key,
                "a digest needs a name",
                Some(
                    "add name = \"daily\" (used by /digest preview and opsbot digest run)"
                        .to_owned(),
                ),
            );
            return None;
        };
        let name = self.string(&key, value, "a digest name")?;
        let valid = name.len() <= MAX_NAME_LEN
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid {
            self.report(
                &key,
                format!("`{name}` is not a valid digest name"),
                Some(format!(
                    "use 1 to {MAX_NAME_LEN} lowercase letters, digits, `-` or `_`, starting with a letter or digit"
                )),
            );
            return None;
        }
        if !names.insert(name.clone()) {
            self.report(
                &key,
                format!("digest \"{name}\" is configured twice"),
                Some("give each [[digests]] entry its own name".to_owned()),
            );
            return None;
        }
        Some(name)
    }

    fn digest_schedule(
        &mut self,
        path: &str,
        label: &str,
        cron: Option<Value>,
        timezone: Option<Value>,
    ) -> Option<Schedule> {
        let cron_key = format!("{path}.cron");
        let Some(cron) = cron else {
            self.report(
                &cron_key,
                format!("digest \"{label}\" has no cron schedule"),
                Some("add cron = \"0 0 9 * * Mon-Fri\" (six fields, seconds first)".to_owned()),
            );
            return None;
        };
        let cron = self.string(&cron_key, cron, "a cron expression")?;
        let zone_key = format!("{path}.timezone");
        let zone = match timezone {
            None => "UTC".to_owned(),
            Some(value) => self.string(&zone_key, value, "an IANA time zone name")?,
        };
        if let Err(why) = opsbot_commands::digest::schedule::parse_zone(&zone) {
            self.report(&zone_key, format!("digest \"{label}\": {why}"), None);
            return None;
        }
        match Schedule::parse(&cron, &zone) {
            Ok(schedule) => Some(schedule),
            Err(why) => {
                self.report(&cron_key, format!("digest \"{label}\": {why}"), None);
                None
            }
        }
    }

    fn digest_include(
        &mut self,
        path: &str,
        label: &str,
        value: Option<Value>,
    ) -> Option<Vec<Section>> {
        let key = format!("{path}.include");
        let known: Vec<&str> = Section::ALL.iter().map(|s| s.as_str()).collect();
        let hint = || Some(format!("write a list of sections: {}", known.join(", ")));
        let items = match value {
            None => return Some(Section::ALL.to_vec()),
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.report(
                    &key,
                    format!(
                        "digest \"{label}\": expected a list of sections, found {}",
                        other.type_str()
                    ),
                    hint(),
                );
                return None;
            }
        };
        let mut sections = Vec::new();
        let mut ok = true;
        for (i, item) in items.into_iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            let section = match &item {
                Value::String(text) => {
                    Section::parse(text).ok_or_else(|| format!("`{text}` is not a section"))
                }
                other => Err(format!(
                    "expected a section name, found {}",
                    other.type_str()
                )),
            };
            match section {
                Ok(section) if sections.contains(&section) => {
                    self.report(
                        &item_key,
                        format!("digest \"{label}\": `{}` is listed twice", section.as_str()),
                        None,
                    );
                    ok = false;
                }
                Ok(section) => sections.push(section),
                Err(why) => {
                    self.report(&item_key, format!("digest \"{label}\": {why}"), hint());
                    ok = false;
                }
            }
        }
        if ok && sections.is_empty() {
            self.report(
                &key,
                format!("digest \"{label}\" includes no section"),
                hint(),
            );
            return None;
        }
        ok.then_some(sections)
    }

    fn when_empty(&mut self, path: &str, label: &str, value: Option<Value>) -> Option<WhenEmpty> {
        let key = format!("{path}.when_empty");
        let Some(value) = value else {
            return Some(WhenEmpty::default());
        };
        match self.string(&key, value, "\"post\" or \"skip\"")?.as_str() {
            "post" => Some(WhenEmpty::Post),
            "skip" => Some(WhenEmpty::Skip),
            other => {
                self.report(
                    &key,
                    format!("digest \"{label}\": `{other}` is not a when_empty choice"),
                    Some("write \"post\" (says all quiet) or \"skip\" (posts nothing)".to_owned()),
                );
                None
            }
        }
    }
}

impl super::Config {
    /// The digests as the domain's catalog (with the dashboard's address for the links).
    pub fn digest_catalog(&self) -> opsbot_commands::digest::DigestCatalog {
        opsbot_commands::digest::DigestCatalog {
            digests: self.digests.clone(),
            public_url: self.http.public_url.clone(),
        }
    }
}
