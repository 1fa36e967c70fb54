//! `[events.nats]` and `[events.pubsub]`: where sealed audit events are published (events
//! out, see `opsbot_commands::events`). Each section present turns its sink on.
//!
//! ```toml
//! [events.nats]
//! url = "nats://127.0.0.1:4222"
//! subject = "opsbot.audit"      # events go to opsbot.audit.deploy, opsbot.audit.incident, …
//! stream = "OPSBOT_AUDIT"       # created when missing, capturing opsbot.audit.>
//! token = "env:NATS_TOKEN"      # or user + password, or credentials = "file:/run/nats.creds"
//!
//! [events.pubsub]
//! project = "acme-ops"
//! topic = "opsbot-audit"
//! access_token = "env:PUBSUB_ACCESS_TOKEN"   # not needed with PUBSUB_EMULATOR_HOST
//! ```

use opsbot_commands::events::nats::{NatsAuth, NatsSink, NatsSpec};
use opsbot_commands::events::pubsub::{PubsubSink, PubsubSpec};
use opsbot_commands::events::{EventsError, Sink};
use secrecy::SecretString;
use serde::Deserialize;
use toml::{Table, Value};

use super::secret::Secret;
use super::values::Values;

/// The keys of `[events]`: one table per sink.
pub(super) const EVENTS_KEYS: &[&str] = &["nats", "pubsub"];
/// The keys of `[events.nats]`.
const NATS_KEYS: &[&str] = &[
    "url",
    "subject",
    "stream",
    "user",
    "password",
    "token",
    "credentials",
];
/// The keys of `[events.pubsub]`.
const PUBSUB_KEYS: &[&str] = &["project", "topic", "emulator_host", "access_token"];
/// Google's convention for pointing clients at the Pub/Sub emulator; wins over
/// `events.pubsub.emulator_host`.
const EMULATOR_HOST_VAR: &str = "PUBSUB_EMULATOR_HOST";

/// Default `events.nats.subject`.
pub const DEFAULT_NATS_SUBJECT: &str = "opsbot.audit";
/// Default `events.nats.stream`.
pub const DEFAULT_NATS_STREAM: &str = "OPSBOT_AUDIT";

/// `[events]`: the sinks configured; none by default.
#[derive(Debug, Clone, Default)]
pub struct EventsConfig {
    pub nats: Option<NatsConfig>,
    pub pubsub: Option<PubsubConfig>,
}

/// How opsbot logs in to NATS.
#[derive(Debug, Clone)]
pub enum NatsCredentials {
    None,
    UserPassword {
        user: String,
        password: Secret,
    },
    Token(Secret),
    /// The contents of a `.creds` file (`file:/path/to/user.creds`).
    CredsFile(Secret),
}

/// `[events.nats]`
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// `nats://host:port` or `tls://host:port`.
    pub url: String,
    /// The subject prefix; default [`DEFAULT_NATS_SUBJECT`].
    pub subject: String,
    /// The stream; default [`DEFAULT_NATS_STREAM`].
    pub stream: String,
    pub credentials: NatsCredentials,
}

/// `[events.pubsub]`
#[derive(Debug, Clone)]
pub struct PubsubConfig {
    pub project: String,
    pub topic: String,
    /// `host:port` of the emulator: `PUBSUB_EMULATOR_HOST`, else `emulator_host`.
    pub emulator_host: Option<String>,
    /// A bearer token for Google's API.
    pub access_token: Option<Secret>,
}

impl EventsConfig {
    /// The configured sinks, in the domain's terms: `nats` first, then `pubsub`.
    pub fn sinks(&self) -> Result<Vec<Box<dyn Sink>>, EventsError> {
        let secret = |s: &Secret| SecretString::from(s.expose().to_owned());
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        if let Some(nats) = &self.nats {
            let auth = match &nats.credentials {
                NatsCredentials::None => NatsAuth::None,
                NatsCredentials::UserPassword { user, password } => NatsAuth::UserPassword {
                    user: user.clone(),
                    password: secret(password),
                },
                NatsCredentials::Token(token) => NatsAuth::Token(secret(token)),
                NatsCredentials::CredsFile(creds) => NatsAuth::Credentials(secret(creds)),
            };
            sinks.push(Box::new(NatsSink::new(NatsSpec {
                url: nats.url.clone(),
                subject: nats.subject.clone(),
                stream: nats.stream.clone(),
                auth,
            })));
        }
        if let Some(pubsub) = &self.pubsub {
            sinks.push(Box::new(PubsubSink::new(PubsubSpec {
                project: pubsub.project.clone(),
                topic: pubsub.topic.clone(),
                emulator_host: pubsub.emulator_host.clone(),
                access_token: pubsub.access_token.as_ref().map(secret),
            })?));
        }
        Ok(sinks)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawEvents {
    /// Checked by hand, so that an unknown key names its place.
    nats: Option<Value>,
    pubsub: Option<Value>,
}

/// Whether `text` is `a.b.c` with each token of ASCII letters, digits, `-` and `_`.
fn is_subject(text: &str) -> bool {
    text.split('.').all(|token| {
        !token.is_empty()
            && token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

/// A Pub/Sub topic name: 3–255 characters, a letter first, then letters, digits and `-_.~+%`.
fn is_topic(text: &str) -> bool {
    (3..=255).contains(&text.len())
        && text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.~+%".contains(c))
}

impl Values<'_> {
    pub(super) fn events(&mut self, raw: RawEvents) -> EventsConfig {
        EventsConfig {
            nats: raw.nats.and_then(|value| self.nats(value)),
            pubsub: raw.pubsub.and_then(|value| self.pubsub(value)),
        }
    }

    fn sink_table(&mut self, path: &str, value: Value, known: &[&str]) -> Option<Table> {
        match value {
            Value::Table(table) => {
                self.unknown_keys(path, &table, known, &format!("[{path}]"));
                Some(table)
            }
            other => {
                self.report(
                    path,
                    format!("expected a table [{path}], found {}", other.type_str()),
                    Some(format!("write its keys under a [{path}] header")),
                );
                None
            }
        }
    }

    /// A string that passes `valid`, else a problem with `hint`.
    fn checked(
        &mut self,
        path: &str,
        value: Value,
        expected: &str,
        valid: fn(&str) -> bool,
        hint: &str,
    ) -> Option<String> {
        let text = self.string(path, value, expected)?;
        if valid(&text) {
            Some(text)
        } else {
            self.report(
                path,
                format!("`{text}` is not {expected}"),
                Some(hint.to_owned()),
            );
            None
        }
    }

    fn nats(&mut self, value: Value) -> Option<NatsConfig> {
        let mut table = self.sink_table("events.nats", value, NATS_KEYS)?;
        let url = match table.remove("url") {
            None => {
                self.report(
                    "events.nats.url",
                    "is missing",
                    Some("write url = \"nats://127.0.0.1:4222\"".to_owned()),
                );
                None
            }
            Some(value) => self.checked(
                "events.nats.url",
                value,
                "a NATS URL",
                |text| {
                    url::Url::parse(text).is_ok_and(|url| {
                        matches!(url.scheme(), "nats" | "tls")
                            && url.host_str().is_some_and(|h| !h.is_empty())
                    })
                },
                "write nats://HOST:PORT or tls://HOST:PORT, e.g. \"nats://127.0.0.1:4222\"",
            ),
        };
        let subject = table.remove("subject").map(|value| {
            self.checked(
                "events.nats.subject",
                value,
                "a subject prefix",
                is_subject,
                "dot-separated tokens of letters, digits, - and _, without wildcards, e.g. \"opsbot.audit\"",
            )
        });
        let stream = table.remove("stream").map(|value| {
            self.checked(
                "events.nats.stream",
                value,
                "a stream name",
                |text| {
                    !text.is_empty()
                        && text
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                },
                "letters, digits, - and _ only, e.g. \"OPSBOT_AUDIT\"",
            )
        });
        let user = table
            .remove("user")
            .and_then(|value| self.string("events.nats.user", value, "a user name"));
        let password = table
            .remove("password")
            .and_then(|value| self.secret("events.nats.password", value));
        let token = table
            .remove("token")
            .and_then(|value| self.secret("events.nats.token", value));
        let creds = table
            .remove("credentials")
            .and_then(|value| self.secret("events.nats.credentials", value));
        let given = usize::from(user.is_some() || password.is_some())
            + usize::from(token.is_some())
            + usize::from(creds.is_some());
        let credentials = if given > 1 {
            self.report(
                "events.nats",
                "more than one way to log in is set",
                Some("set user and password, or token, or credentials".to_owned()),
            );
            None
        } else {
            match (user, password, token, creds) {
                (Some(user), Some(password), None, None) => {
                    Some(NatsCredentials::UserPassword { user, password })
                }
                (Some(_), None, _, _) | (None, Some(_), _, _) => {
                    self.report(
                        "events.nats",
                        "user and password go together",
                        Some("set both events.nats.user and events.nats.password".to_owned()),
                    );
                    None
                }
                (None, None, Some(token), None) => Some(NatsCredentials::Token(token)),
                (None, None, None, Some(creds)) => Some(NatsCredentials::CredsFile(creds)),
                _ => Some(NatsCredentials::None),
            }
        };
        Some(NatsConfig {
            url: url?,
            subject: subject.unwrap_or(Some(DEFAULT_NATS_SUBJECT.to_owned()))?,
            stream: stream.unwrap_or(Some(DEFAULT_NATS_STREAM.to_owned()))?,
            credentials: credentials?,
        })
    }

    fn pubsub(&mut self, value: Value) -> Option<PubsubConfig> {
        let mut table = self.sink_table("events.pubsub", value, PUBSUB_KEYS)?;
        let mut required =
            |values: &mut Values<'_>, key: &str, check: fn(&str) -> bool, hint: &str| {
                let path = format!("events.pubsub.{key}");
                match table.remove(key) {
                    None => {
                        values.report(&path, "is missing", Some(format!("write {key} = {hint}")));
                        None
                    }
                    Some(value) => values.checked(
                        &path,
                        value,
                        &format!("a Pub/Sub {key} name"),
                        check,
                        &format!("e.g. {key} = {hint}"),
                    ),
                }
            };
        let project = required(
            self,
            "project",
            |text| {
                !text.is_empty()
                    && text
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-.:".contains(c))
            },
            "\"acme-ops\"",
        );
        let topic = required(self, "topic", is_topic, "\"opsbot-audit\"");
        let from_file = table
            .remove("emulator_host")
            .and_then(|value| self.string("events.pubsub.emulator_host", value, "HOST:PORT"));
        let emulator_host = self
            .env
            .get(EMULATOR_HOST_VAR)
            .filter(|host| !host.trim().is_empty())
            .cloned()
            .or(from_file)
            .map(|host| host.trim().to_owned());
        let access_token = table
            .remove("access_token")
            .and_then(|value| self.secret("events.pubsub.access_token", value));
        Some(PubsubConfig {
            project: project?,
            topic: topic?,
            emulator_host,
            access_token,
        })
    }
}
