//! What one answer from Discord means for the outbox row: sent, rate limited, worth retrying,
//! or refused for good. Pure functions of status, headers and body, so they are unit-testable.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;

use crate::discord::render::message::truncate;

/// When a 429 names no delay at all (neither body nor headers), wait this long: Discord's
/// buckets reset within seconds.
const RATE_LIMIT_FALLBACK: Duration = Duration::from_secs(1);
/// How much of a non-JSON error body goes into `last_error`: enough to recognise a proxy's
/// error page, not a whole HTML document.
const ERROR_BODY_MAX: usize = 300;

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Delivery {
    /// 2xx: the message exists (new, or the one Discord already had for this nonce).
    Sent { message_id: Option<i64> },
    /// 429: not the message's fault; try again after `retry_after`.
    RateLimited {
        retry_after: Duration,
        global: bool,
        error: String,
    },
    /// 5xx, 401, timeouts, connection errors: try again later with backoff.
    Transient { error: String },
    /// Other 4xx: Discord will never accept this message as it is.
    Permanent { error: String },
}

#[derive(Debug, Deserialize)]
struct SentMessage {
    id: String,
}

#[derive(Debug, Default, Deserialize)]
struct DiscordError {
    message: Option<String>,
    code: Option<i64>,
    retry_after: Option<f64>,
    #[serde(default)]
    global: bool,
    errors: Option<serde_json::Value>,
}

/// Classifies Discord's answer to a create-message request.
pub(super) fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Delivery {
    if status.is_success() {
        let message_id = serde_json::from_slice::<SentMessage>(body)
            .ok()
            .and_then(|m| m.id.parse().ok());
        return Delivery::Sent { message_id };
    }
    let parsed: Option<DiscordError> = serde_json::from_slice(body).ok();
    let error = describe(status, parsed.as_ref(), body);
    if status == StatusCode::TOO_MANY_REQUESTS {
        let parsed = parsed.unwrap_or_default();
        let retry_after = parsed
            .retry_after
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .or_else(|| header_seconds(headers, RETRY_AFTER.as_str()))
            .or_else(|| header_seconds(headers, "x-ratelimit-reset-after"))
            .unwrap_or(RATE_LIMIT_FALLBACK);
        let global = parsed.global
            || header_is(headers, "x-ratelimit-scope", "global")
            || header_is(headers, "x-ratelimit-global", "true");
        return Delivery::RateLimited {
            retry_after,
            global,
            error,
        };
    }
    if status.is_server_error() || status == StatusCode::UNAUTHORIZED {
        return Delivery::Transient { error };
    }
    if status.is_client_error() {
        return Delivery::Permanent { error };
    }
    // 1xx/3xx after redirects: not Discord's answer; most likely a proxy in the way.
    Delivery::Transient { error }
}

/// How long to wait before the next request to this channel when its bucket is exhausted
/// (`X-RateLimit-Remaining: 0` with `X-RateLimit-Reset-After`).
pub(super) fn bucket_exhausted_for(headers: &HeaderMap) -> Option<Duration> {
    if !header_is(headers, "x-ratelimit-remaining", "0") {
        return None;
    }
    header_seconds(headers, "x-ratelimit-reset-after")
}

/// `HTTP 404 Not Found: Unknown Channel (Discord code 10003)`.
fn describe(status: StatusCode, parsed: Option<&DiscordError>, body: &[u8]) -> String {
    let mut text = format!("HTTP {status}");
    match parsed {
        Some(err) => {
            if let Some(message) = &err.message {
                text.push_str(": ");
                text.push_str(message);
            }
            if let Some(code) = err.code {
                text.push_str(&format!(" (Discord code {code})"));
            }
            if let Some(errors) = &err.errors {
                text.push_str(&format!(
                    "; {}",
                    truncate(&errors.to_string(), ERROR_BODY_MAX)
                ));
            }
        }
        None if !body.is_empty() => {
            text.push_str(": ");
            text.push_str(&truncate(&String::from_utf8_lossy(body), ERROR_BODY_MAX));
        }
        None => {}
    }
    text
}

fn header_is(headers: &HeaderMap, name: &str, expected: &str) -> bool {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

fn header_seconds(headers: &HeaderMap, name: &str) -> Option<Duration> {
    let value = headers.get(name)?.to_str().ok()?;
    Duration::try_from_secs_f64(value.trim().parse().ok()?).ok()
}

/// `base * 2^failures`, capped at `max`, then jittered by ±20% so that messages which failed
/// together do not all come back at the same instant.
pub(super) fn backoff(base: Duration, max: Duration, failures: i32) -> Duration {
    let exponent = u32::try_from(failures.clamp(0, 30)).unwrap_or(30);
    let delay = base.saturating_mul(2u32.saturating_pow(exponent)).min(max);
    delay.mul_f64(rand::random_range(0.8..=1.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("valid header value"));
        }
        map
    }

    #[test]
    fn retry_after_falls_back_to_the_header() {
        let d = classify(
            StatusCode::TOO_MANY_REQUESTS,
            &headers(&[("retry-after", "2"), ("x-ratelimit-scope", "global")]),
            b"",
        );
        assert_eq!(
            d,
            Delivery::RateLimited {
                retry_after: Duration::from_secs(2),
                global: true,
                error: "HTTP 429 Too Many Requests".into()
            }
        );
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(300);
        for failures in [0, 3, 12, 40, i32::MAX] {
            let d = backoff(base, max, failures);
            assert!(d <= max.mul_f64(1.2), "{d:?}");
            assert!(d >= base.mul_f64(0.8), "{d:?}");
        }
    }
}
