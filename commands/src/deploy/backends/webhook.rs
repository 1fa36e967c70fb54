//! The `webhook` backend: opsbot POSTs the deploy, signed, to the deployer's URL; the
//! deployer reports progress and the outcome to `POST /webhooks/deploy/{id}`, signed the same
//! way. Signature: HMAC-SHA256 with the service's secret over `{timestamp}.{body}`, sent as
//! `X-Opsbot-Signature: sha256=<hex>` with `X-Opsbot-Timestamp: <unix seconds>`.

use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{BackendEvent, DeployJob, Finish};

pub const SIGNATURE_HEADER: &str = "X-Opsbot-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Opsbot-Timestamp";
/// Timestamps further than this from now are refused, so a captured request cannot be
/// replayed later.
pub const MAX_SKEW: Duration = Duration::from_secs(300);
/// How long the deployer may take to accept the deploy (not to carry it out).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Characters of the deployer's answer kept in a failure reason.
const BODY_EXCERPT: usize = 300;

#[derive(Debug, Clone)]
pub struct WebhookSpec {
    pub url: String,
    pub secret: secrecy::SecretString,
    /// How long to wait for the report of the outcome.
    pub timeout: Duration,
}

/// What a deployer POSTs to `/webhooks/deploy/{id}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressReport {
    pub status: ReportedStatus,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportedStatus {
    Running,
    Succeeded,
    Failed,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("the {0} header is malformed")]
    Malformed(&'static str),
    #[error(
        "the timestamp is {skew_seconds}s away from opsbot's clock (at most 300s allowed); check the sender's clock"
    )]
    Stale { skew_seconds: i64 },
    #[error("the signature does not match the body (wrong secret, or the body was changed)")]
    Mismatch,
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// `sha256=<hex>` of HMAC-SHA256(secret, "{timestamp}.{body}").
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Checks a signed request: both headers present, the timestamp within [`MAX_SKEW`] of
/// `now`, the signature over this exact body (compared in constant time).
pub fn verify(
    secret: &[u8],
    timestamp_header: Option<&str>,
    signature_header: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let timestamp: i64 = timestamp_header
        .ok_or(SignatureError::Missing(TIMESTAMP_HEADER))?
        .trim()
        .parse()
        .map_err(|_| SignatureError::Malformed(TIMESTAMP_HEADER))?;
    let signature = signature_header.ok_or(SignatureError::Missing(SIGNATURE_HEADER))?;
    let digest = signature
        .trim()
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(SignatureError::Malformed(SIGNATURE_HEADER))?;
    let skew = now - timestamp;
    if skew.unsigned_abs() > MAX_SKEW.as_secs() {
        return Err(SignatureError::Stale { skew_seconds: skew });
    }
    mac(secret, timestamp, body)
        .verify_slice(&digest)
        .map_err(|_| SignatureError::Mismatch)
}

pub async fn execute(
    spec: &WebhookSpec,
    job: &DeployJob,
    events: mpsc::UnboundedSender<BackendEvent>,
    cancel: CancellationToken,
) -> Finish {
    let body = serde_json::json!({
        "deploy_id": job.deploy_id,
        "correlation_id": job.correlation_id,
        "service": job.service,
        "version": job.version,
        "environment": job.environment,
        "requested_by": job.requested_by,
        "is_rollback": job.is_rollback,
        "callback_path": format!("/webhooks/deploy/{}", job.deploy_id),
    })
    .to_string();
    let now = chrono::Utc::now().timestamp();
    let signature = sign(spec.secret.expose_secret().as_bytes(), now, body.as_bytes());
    let client = match reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build() {
        Ok(client) => client,
        Err(e) => {
            return Finish::Failed {
                reason: format!("could not build an HTTP client: {e}"),
            };
        }
    };
    let request = client
        .post(&spec.url)
        .header("content-type", "application/json")
        .header(TIMESTAMP_HEADER, now.to_string())
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send();
    let response = tokio::select! {
        response = request => response,
        _ = cancel.cancelled() => return Finish::Interrupted,
    };
    match response {
        Ok(response) if response.status().is_success() => {
            let _ = events.send(BackendEvent::Progress(format!(
                "the deployer at {} accepted the deploy",
                host(&spec.url)
            )));
            Finish::AwaitCallback {
                timeout: spec.timeout,
            }
        }
        Ok(response) => {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            let excerpt: String = text.chars().take(BODY_EXCERPT).collect();
            Finish::Failed {
                reason: format!(
                    "the deployer at {} answered {status}: {excerpt}",
                    host(&spec.url)
                ),
            }
        }
        Err(e) => Finish::Failed {
            reason: format!(
                "could not reach the deployer at {}: {}",
                host(&spec.url),
                if e.is_timeout() {
                    "no answer in time".to_owned()
                } else {
                    e.to_string()
                }
            ),
        },
    }
}

/// The URL without its path and query, which may carry secrets of their own.
fn host(url: &str) -> String {
    reqwest::Url::parse(url)
        .map(|u| format!("{}://{}", u.scheme(), u.host_str().unwrap_or_default()))
        .unwrap_or_else(|_| "the configured url".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_signature_verifies_over_the_same_body_only() {
        let body = br#"{"status":"succeeded"}"#;
        let signature = sign(b"s3cret", NOW, body);
        assert!(signature.starts_with("sha256=") && signature.len() == 7 + 64);
        let ts = NOW.to_string();
        assert_eq!(
            verify(b"s3cret", Some(&ts), Some(&signature), body, NOW + 10),
            Ok(())
        );
        assert_eq!(
            verify(
                b"s3cret",
                Some(&ts),
                Some(&signature),
                br#"{"status":"failed"}"#,
                NOW
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", Some(&ts), Some(&signature), body, NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"s3cret", Some(&ts), Some(&signature), body, NOW + 301),
            Err(SignatureError::Stale { skew_seconds: 301 })
        );
        assert_eq!(
            verify(b"s3cret", None, Some(&signature), body, NOW),
            Err(SignatureError::Missing(TIMESTAMP_HEADER))
        );
        assert_eq!(
            verify(b"s3cret", Some(&ts), None, body, NOW),
            Err(SignatureError::Missing(SIGNATURE_HEADER))
        );
        assert_eq!(
            verify(b"s3cret", Some("soon"), Some(&signature), body, NOW),
            Err(SignatureError::Malformed(TIMESTAMP_HEADER))
        );
        assert_eq!(
            verify(b"s3cret", Some(&ts), Some("md5=00"), body, NOW),
            Err(SignatureError::Malformed(SIGNATURE_HEADER))
        );
    }

    #[test]
    fn reports_are_strict() {
        let ok: ProgressReport =
            serde_json::from_str(r#"{"status":"running","message":"50%"}"#).expect("parses");
        assert_eq!(ok.status, ReportedStatus::Running);
        assert!(serde_json::from_str::<ProgressReport>(r#"{"status":"done"}"#).is_err());
        assert!(
            serde_json::from_str::<ProgressReport>(r#"{"status":"running","extra":1}"#).is_err()
        );
    }

    #[test]
    fn failure_reasons_never_show_the_url_path() {
        assert_eq!(
            host("https://deployer.internal/hooks/opsbot?key=abc"),
            "https://deployer.internal"
        );
    }
}
