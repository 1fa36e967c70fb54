//! Requests to GitHub's REST API and what their failures mean for people.

use std::time::Duration;

use octocrab::Octocrab;
use serde::Deserialize;
use serde_json::Value;

use super::GithubActionsSpec;

/// One request to GitHub (connect, send, read); a hung connection must not stall the poll.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Connecting to GitHub takes milliseconds; longer means it is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Characters of an unexpected GitHub answer kept in a failure reason.
const BODY_EXCERPT: usize = 300;

/// Why a request to GitHub did not give what was asked.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ApiError {
    Unauthorized,
    NotFound,
    Unprocessable(String),
    /// `resets_at`: unix seconds, when known.
    RateLimited {
        resets_at: Option<i64>,
    },
    Forbidden(String),
    Server {
        status: u16,
        excerpt: String,
    },
    Unexpected {
        status: u16,
        excerpt: String,
    },
    Network(String),
}

impl ApiError {
    /// Worth trying again at the next poll (GitHub or the network will recover).
    pub(super) fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::RateLimited { .. } | ApiError::Server { .. } | ApiError::Network(_)
        )
    }

    pub(super) fn reason(&self, spec: &GithubActionsSpec) -> String {
        match self {
            ApiError::Unauthorized => {
                "GitHub rejected the token: check [[services]] backend token (expired, revoked or mistyped?)".to_owned()
            }
            ApiError::NotFound => format!(
                "repository or workflow not found, or the token cannot see it: {} {}",
                spec.repo, spec.workflow
            ),
            ApiError::Unprocessable(message) => {
                format!("GitHub refused to start {} in {} on {}: {message}", spec.workflow, spec.repo, spec.git_ref)
            }
            ApiError::RateLimited { resets_at } => match resets_at {
                Some(at) => {
                    let wait = (at - chrono::Utc::now().timestamp()).max(0);
                    let when = chrono::DateTime::from_timestamp(*at, 0)
                        .map(|t| t.format("%H:%M:%S UTC").to_string())
                        .unwrap_or_else(|| at.to_string());
                    format!("GitHub's API rate limit for this token is used up; it resets at {when} (in {wait}s)")
                }
                None => "GitHub's API rate limit for this token is used up; try again in a minute".to_owned(),
            },
            ApiError::Forbidden(message) => format!(
                "GitHub refused: {message} (the token needs the actions: write permission on {})",
                spec.repo
            ),
            ApiError::Server { status, excerpt } => format!("GitHub answered {status}: {excerpt}"),
            ApiError::Unexpected { status, excerpt } => format!("unexpected answer from GitHub ({status}): {excerpt}"),
            ApiError::Network(e) => format!("could not reach GitHub at {}: {e}", spec.api_base),
        }
    }
}

/// GitHub's REST API with the service's token, without retries.
pub(super) struct GitHub {
    octocrab: Octocrab,
}

impl GitHub {
    pub(super) fn new(spec: &GithubActionsSpec) -> Result<GitHub, String> {
        let builder = Octocrab::builder()
            .base_uri(spec.api_base.as_str())
            .map_err(|e| format!("invalid GitHub api_base {:?}: {e}", spec.api_base))?;
        let octocrab = builder
            // Retries are decided here: a retried dispatch could start a second deploy.
            .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
            .set_connect_timeout(Some(CONNECT_TIMEOUT))
            .set_read_timeout(Some(REQUEST_TIMEOUT))
            .set_write_timeout(Some(REQUEST_TIMEOUT))
            .personal_token(spec.token.clone())
            .build()
            .map_err(|e| format!("could not set up the GitHub client: {}", error_chain(&e)))?;
        Ok(GitHub { octocrab })
    }

    /// One request; the body of a 2xx answer, or why there is none.
    pub(super) async fn request(&self, method: Method<'_>, path: &str) -> Result<String, ApiError> {
        let send = async {
            match method {
                Method::Get => self.octocrab._get(path).await,
                Method::Post(body) => self.octocrab._post(path, Some(body)).await,
            }
        };
        let response = match tokio::time::timeout(REQUEST_TIMEOUT, send).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(ApiError::Network(error_chain(&e))),
            Err(_) => {
                return Err(ApiError::Network(format!(
                    "no answer within {}",
                    humantime::format_duration(REQUEST_TIMEOUT)
                )));
            }
        };
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let remaining = header("x-ratelimit-remaining");
        let reset = header("x-ratelimit-reset").and_then(|v| v.parse::<i64>().ok());
        let retry_after = header("retry-after").and_then(|v| v.parse::<i64>().ok());
        let body =
            match tokio::time::timeout(REQUEST_TIMEOUT, self.octocrab.body_to_string(response))
                .await
            {
                Ok(Ok(body)) => body,
                Ok(Err(e)) => return Err(ApiError::Network(error_chain(&e))),
                Err(_) => return Err(ApiError::Network("the answer stopped arriving".to_owned())),
            };
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| excerpt(&body));
        let rate_limited = remaining.as_deref() == Some("0")
            || retry_after.is_some()
            || message.to_lowercase().contains("rate limit");
        Err(match status {
            401 => ApiError::Unauthorized,
            404 => ApiError::NotFound,
            422 => ApiError::Unprocessable(message),
            403 | 429 if rate_limited => ApiError::RateLimited {
                resets_at: retry_after
                    .map(|s| chrono::Utc::now().timestamp() + s)
                    .or(reset),
            },
            403 => ApiError::Forbidden(message),
            500..=599 => ApiError::Server {
                status,
                excerpt: message,
            },
            _ => ApiError::Unexpected {
                status,
                excerpt: message,
            },
        })
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Method<'a> {
    Get,
    Post(&'a Value),
}

/// How long to wait for a rate limit to reset.
pub(super) fn rate_limit_wait(e: &ApiError) -> Option<Duration> {
    match e {
        ApiError::RateLimited {
            resets_at: Some(at),
        } => Some(Duration::from_secs(
            u64::try_from(at - chrono::Utc::now().timestamp()).unwrap_or(0) + 1,
        )),
        _ => None,
    }
}

pub(super) fn parse<T: for<'de> Deserialize<'de>>(body: &str) -> Result<T, ApiError> {
    serde_json::from_str(body).map_err(|e| ApiError::Unexpected {
        status: 200,
        excerpt: format!("{e}: {}", excerpt(body)),
    })
}

pub(super) fn is_path_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub(super) fn excerpt(body: &str) -> String {
    let flat: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > BODY_EXCERPT {
        format!("{}…", flat.chars().take(BODY_EXCERPT).collect::<String>())
    } else {
        flat
    }
}

/// An error and its sources on one line (octocrab's own message rarely names the cause).
pub(super) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let text = crate::error::ErrorChain(e).to_string();
    match text.strip_prefix("Service Error: ") {
        Some(rest) => rest.to_owned(),
        None => text,
    }
}
