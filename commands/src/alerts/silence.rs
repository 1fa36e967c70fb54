//! Alertmanager's v2 API, for silences: create (`POST /api/v2/silences`), expire
//! (`DELETE /api/v2/silence/{id}`) and list (`GET /api/v2/silences`, active ones only).
//! Configured by `[alertmanager]` (`url`, optional basic auth or bearer token, `timeout`).
//! Each way a call can fail reads as words for the person who pressed the button.

use std::time::Duration;

pub use crate::http_client::Auth as AlertmanagerAuth;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::routing::{Matcher, Op};
use crate::error::CommandError;

/// The largest answer read from Alertmanager (a list of silences); more is refused.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Alertmanager's default `--data.retention` is 120 h; a silence longer than a month is
/// almost certainly a typo (`/alerts silence duration:300d`).
pub const MAX_SILENCE: Duration = Duration::from_secs(31 * 24 * 3600);

/// `[alertmanager]`, as the domain needs it.
#[derive(Debug, Clone)]
pub struct AlertmanagerSettings {
    /// Base URL without a trailing `/`, e.g. `http://127.0.0.1:9093`.
    pub url: String,
    pub timeout: Duration,
    pub auth: AlertmanagerAuth,
}

/// One matcher as Alertmanager's API spells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl From<&Matcher> for ApiMatcher {
    fn from(m: &Matcher) -> ApiMatcher {
        ApiMatcher {
            name: m.name.clone(),
            value: m.value.clone(),
            is_regex: matches!(m.op, Op::Matches | Op::NotMatches),
            is_equal: matches!(m.op, Op::Equal | Op::Matches),
        }
    }
}

impl ApiMatcher {
    /// Alertmanager's own spelling: `name="value"`, `name=~"re"`, `name!="v"`, `name!~"re"`.
    pub fn display(&self) -> String {
        let op = match (self.is_equal, self.is_regex) {
            (true, false) => "=",
            (true, true) => "=~",
            (false, false) => "!=",
            (false, true) => "!~",
        };
        format!("{}{op}{:?}", self.name, self.value)
    }
}

/// A silence to create.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSilence {
    pub matchers: Vec<ApiMatcher>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
}

/// A silence as Alertmanager lists it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<ApiMatcher>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    #[serde(default)]
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
    pub status: SilenceStatus,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SilenceStatus {
    /// `active`, `pending` or `expired`.
    pub state: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    #[serde(rename = "silenceID")]
    silence_id: String,
}

/// What went wrong talking to Alertmanager.
#[derive(Debug, thiserror::Error)]
pub enum AlertmanagerError {
    #[error(
        "Alertmanager at {url} cannot be reached ({reason}); nothing was changed, try again when it is back"
    )]
    Unreachable { url: String, reason: String },
    #[error(
        "Alertmanager did not answer within {}; nothing was changed, try again",
        humantime::format_duration(*.0)
    )]
    Timeout(Duration),
    #[error(
        "Alertmanager rejected opsbot's credentials (HTTP {0}); check [alertmanager] in the config"
    )]
    Unauthorized(u16),
    /// Alertmanager refused the request (a bad matcher, an end before the start): its words.
    #[error("Alertmanager refused: {0}")]
    Refused(String),
    /// No silence with that id (expiring one that is gone).
    #[error("Alertmanager has no silence {0}")]
    NotFound(String),
    #[error("Alertmanager answered something opsbot does not understand: {0}")]
    Unexpected(String),
}

impl From<AlertmanagerError> for CommandError {
    fn from(error: AlertmanagerError) -> CommandError {
        match error {
            AlertmanagerError::Refused(_) => CommandError::Invalid(error.to_string()),
            AlertmanagerError::NotFound(_) => CommandError::NotFound(error.to_string()),
            _ => CommandError::Unavailable(error.to_string()),
        }
    }
}

/// A client for one Alertmanager.
#[derive(Debug, Clone)]
pub struct Alertmanager {
    settings: AlertmanagerSettings,
    http: reqwest::Client,
}

impl Alertmanager {
    pub fn new(settings: AlertmanagerSettings) -> Result<Alertmanager, CommandError> {
        let http = crate::http_client::client(settings.timeout)?;
        Ok(Alertmanager { settings, http })
    }

    pub fn url(&self) -> &str {
        &self.settings.url
    }

    /// Creates `silence`; returns its id.
    pub async fn create(&self, silence: &NewSilence) -> Result<String, AlertmanagerError> {
        let request = self
            .http
            .post(format!("{}/api/v2/silences", self.settings.url))
            .json(silence);
        let body = self.send(request, None).await?;
        let created: Created = serde_json::from_slice(&body)
            .map_err(|e| AlertmanagerError::Unexpected(format!("a created silence: {e}")))?;
        Ok(created.silence_id)
    }

    /// Expires silence `id` (Alertmanager keeps it, as expired).
    pub async fn expire(&self, id: &str) -> Result<(), AlertmanagerError> {
        let request = self.http.delete(format!(
            "{}/api/v2/silence/{}",
            self.settings.url,
            urlencoding(id)
        ));
        self.send(request, Some(id)).await.map(|_| ())
    }

    /// The active silences, ending soonest first.
    pub async fn active(&self) -> Result<Vec<Silence>, AlertmanagerError> {
        let request = self
            .http
            .get(format!("{}/api/v2/silences", self.settings.url));
        let body = self.send(request, None).await?;
        let mut silences: Vec<Silence> = serde_json::from_slice(&body)
            .map_err(|e| AlertmanagerError::Unexpected(format!("the list of silences: {e}")))?;
        silences.retain(|s| s.status.state == "active");
        silences.sort_by(|a, b| a.ends_at.cmp(&b.ends_at).then(a.id.cmp(&b.id)));
        Ok(silences)
    }

    /// How many alerts matching `matchers` Alertmanager still has firing (silenced and
    /// inhibited ones included). A group silenced while it resolves gets no resolved
    /// notification from Alertmanager (it mutes resolved alerts too), so opsbot asks.
    pub async fn firing_alerts(&self, matchers: &[ApiMatcher]) -> Result<usize, AlertmanagerError> {
        let mut query: Vec<(&str, String)> =
            matchers.iter().map(|m| ("filter", m.display())).collect();
        for flag in ["active", "silenced", "inhibited", "unprocessed"] {
            query.push((flag, "true".to_owned()));
        }
        let request = self
            .http
            .get(format!("{}/api/v2/alerts", self.settings.url))
            .query(&query);
        let body = self.send(request, None).await?;
        let alerts: Vec<serde_json::Value> = serde_json::from_slice(&body)
            .map_err(|e| AlertmanagerError::Unexpected(format!("the list of alerts: {e}")))?;
        let now = Utc::now();
        Ok(alerts
            .iter()
            .filter(|a| {
                a["endsAt"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .is_none_or(|t| t > now)
            })
            .count())
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        silence_id: Option<&str>,
    ) -> Result<Vec<u8>, AlertmanagerError> {
        let request = self.settings.auth.apply(request);
        let mut response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(e))? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(AlertmanagerError::Unexpected(
                    "an answer larger than 4 MiB".to_owned(),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_success() {
            return Ok(body);
        }
        let text: String = String::from_utf8_lossy(&body)
            .trim()
            .trim_matches('"')
            .chars()
            .take(300)
            .collect();
        Err(match status.as_u16() {
            401 | 403 => AlertmanagerError::Unauthorized(status.as_u16()),
            404 if silence_id.is_some() => {
                AlertmanagerError::NotFound(silence_id.unwrap_or_default().to_owned())
            }
            400 | 422 => AlertmanagerError::Refused(text),
            code if code >= 500 => AlertmanagerError::Unreachable {
                url: self.settings.url.clone(),
                reason: format!("HTTP {code}: {text}"),
            },
            code => AlertmanagerError::Unexpected(format!("HTTP {code}: {text}")),
        })
    }

    fn transport(&self, error: reqwest::Error) -> AlertmanagerError {
        if error.is_timeout() {
            return AlertmanagerError::Timeout(self.settings.timeout);
        }
        let reason = if error.is_connect() {
            "connection refused or no route".to_owned()
        } else {
            crate::error::causes(&error).unwrap_or_else(|| "the connection failed".to_owned())
        };
        AlertmanagerError::Unreachable {
            url: self.settings.url.clone(),
            reason,
        }
    }
}

/// Silence ids are UUIDs; anything else is percent-encoded rather than trusted in a path.
fn urlencoding(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_are_spelled_as_alertmanager_takes_them() {
        let m = Matcher::parse(r#"team!~"data|ml""#).expect("matcher");
        let api = ApiMatcher::from(&m);
        assert_eq!(
            serde_json::to_value(&api).expect("json"),
            serde_json::json!({ "name": "team", "value": "data|ml", "isRegex": true, "isEqual": false })
        );
        assert_eq!(api.display(), r#"team!~"data|ml""#);
    }

    #[test]
    fn odd_ids_are_encoded() {
        assert_eq!(urlencoding("ab-12"), "ab-12");
        assert_eq!(urlencoding("../x"), "..%2Fx");
    }

    #[tokio::test]
    async fn an_unreachable_alertmanager_says_so() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        drop(listener);
        let am = Alertmanager::new(AlertmanagerSettings {
            url: url.clone(),
            timeout: Duration::from_secs(2),
            auth: AlertmanagerAuth::None,
        })
        .expect("client");
        let error = am.active().await.expect_err("nothing listens");
        assert!(
            matches!(error, AlertmanagerError::Unreachable { .. }),
            "{error}"
        );
        assert!(error.to_string().contains(&url), "{error}");
        assert!(matches!(
            CommandError::from(error),
            CommandError::Unavailable(_)
        ));
    }
}
