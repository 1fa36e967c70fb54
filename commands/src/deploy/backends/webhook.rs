//! The `webhook` backend: opsbot POSTs the deploy, signed, to the deployer's URL; the
//! deployer reports progress and the outcome to `POST /webhooks/deploy/{id}`, signed the same
//! way. Signature scheme v2: HMAC-SHA256 with the service's secret over
//! `{timestamp}.{METHOD} {path}.{body}` (e.g. `1800000000.POST /webhooks/deploy/42.{...}`),
//! sent as `X-Opsbot-Signature: v2=<hex>` with `X-Opsbot-Timestamp: <unix seconds>`. The
//! method and path bind a signature to the one deploy it reports on; a signature is accepted
//! once ([`crate::deploy::report`] remembers them for twice [`MAX_SKEW`]).
//!
//! Scheme v1 (`sha256=<hex>` over `{timestamp}.{body}`) signed no deploy, so a report for one
//! deploy could be replayed onto another; it is refused with a message that says how to sign.

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
/// How long the deployer may take to accept the deploy (not to carry it out: it reports the
/// outcome later): accepting should be quick, and the deploy thread waits on it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
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
        "the signature uses scheme v1 (`sha256=` over `{{timestamp}}.{{body}}`), which is no longer accepted because it does not name the deploy; sign `{{timestamp}}.POST {{path}}.{{body}}` and send `v2=<hex>`"
    )]
    OldScheme,
    #[error(
        "the timestamp is {skew_seconds}s away from opsbot's clock (at most {}s allowed): a replayed request, or the sender's clock is off",
        MAX_SKEW.as_secs()
    )]
    Stale { skew_seconds: i64 },
    #[error(
        "the signature does not match (wrong secret, another deploy's path, or the body was changed)"
    )]
    Mismatch,
}

/// The prefix of a scheme-v2 signature.
pub const SIGNATURE_PREFIX: &str = "v2=";

fn mac(secret: &[u8], timestamp: i64, target: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(target.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// What a signature binds besides the body: `POST /webhooks/deploy/42`.
pub fn target(method: &str, path: &str) -> String {
    format!("{} {path}", method.to_ascii_uppercase())
}

/// The path a deployer reports deploy `id` to, as it is signed (whatever proxy is in between).
pub fn report_path(id: i64) -> String {
    format!("/webhooks/deploy/{id}")
}

/// `v2=<hex>` of HMAC-SHA256(secret, "{timestamp}.{target}.{body}"), `target` from [`target`].
pub fn sign(secret: &[u8], timestamp: i64, target: &str, body: &[u8]) -> String {
    format!(
        "{SIGNATURE_PREFIX}{}",
        hex::encode(mac(secret, timestamp, target, body).finalize().into_bytes())
    )
}

/// The parsed headers of a signed request, checked for freshness but not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub timestamp: i64,
    pub digest: Vec<u8>,
}

/// Parses both headers and checks the timestamp is within [`MAX_SKEW`] of `now`; what can be
/// checked without knowing which secret applies.
pub fn parse_headers(
    timestamp_header: Option<&str>,
    signature_header: Option<&str>,
    now: i64,
) -> Result<SignedHeaders, SignatureError> {
    let timestamp: i64 = timestamp_header
        .ok_or(SignatureError::Missing(TIMESTAMP_HEADER))?
        .trim()
        .parse()
        .map_err(|_| SignatureError::Malformed(TIMESTAMP_HEADER))?;
    let signature = signature_header
        .ok_or(SignatureError::Missing(SIGNATURE_HEADER))?
        .trim();
    if signature.starts_with("sha256=") {
        return Err(SignatureError::OldScheme);
    }
    let digest = signature
        .strip_prefix(SIGNATURE_PREFIX)
        .and_then(|h| hex::decode(h).ok())
        .filter(|d| d.len() == 32)
        .ok_or(SignatureError::Malformed(SIGNATURE_HEADER))?;
    // Saturating: a timestamp header of `-9223372036854775808` must not overflow.
    let skew = now.saturating_sub(timestamp);
    if skew.unsigned_abs() > MAX_SKEW.as_secs() {
        return Err(SignatureError::Stale { skew_seconds: skew });
    }
    Ok(SignedHeaders { timestamp, digest })
}

impl SignedHeaders {
    /// Checks the signature over `target` and this exact body, in constant time.
    pub fn verify(&self, secret: &[u8], target: &str, body: &[u8]) -> Result<(), SignatureError> {
        mac(secret, self.timestamp, target, body)
            .verify_slice(&self.digest)
            .map_err(|_| SignatureError::Mismatch)
    }
}

/// Checks a signed request: both headers present, the timestamp within [`MAX_SKEW`] of
/// `now`, the signature over `target` and this exact body (compared in constant time).
pub fn verify(
    secret: &[u8],
    timestamp_header: Option<&str>,
    signature_header: Option<&str>,
    target: &str,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    parse_headers(timestamp_header, signature_header, now)?.verify(secret, target, body)
}

/// POSTs the deploy to the deployer, signed. The body is
/// `{deploy_id, correlation_id, service, version, environment, requested_by, is_rollback,
/// callback_path}`; `callback_path` is where the deployer reports (`/webhooks/deploy/{id}`).
/// A deployer should treat `deploy_id` as an idempotency key: after a shutdown in the middle
/// of this request, opsbot sends the same deploy again when it restarts.
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
        "callback_path": report_path(job.deploy_id),
    })
    .to_string();
    let now = chrono::Utc::now().timestamp();
    let path = reqwest::Url::parse(&spec.url)
        .map(|u| u.path().to_owned())
        .unwrap_or_else(|_| "/".to_owned());
    let signature = sign(
        spec.secret.expose_secret().as_bytes(),
        now,
        &target("POST", &path),
        body.as_bytes(),
    );
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
            let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let mut excerpt: String = flat.chars().take(BODY_EXCERPT).collect();
            if flat.chars().count() > BODY_EXCERPT {
                excerpt.push('…');
            }
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
                    format!(
                        "no answer within {}",
                        humantime::format_duration(REQUEST_TIMEOUT)
                    )
                } else {
                    // reqwest's message repeats the full URL, whose path may carry a secret.
                    error_sources(&e)
                }
            ),
        },
    }
}

/// The causes of a request error, without reqwest's own message (it contains the URL).
fn error_sources(e: &reqwest::Error) -> String {
    crate::error::causes(e).unwrap_or_else(|| {
        if e.is_connect() {
            "connection failed".to_owned()
        } else {
            "request failed".to_owned()
        }
    })
}

/// The URL's scheme, host and port: its path and query may carry secrets of their own.
fn host(url: &str) -> String {
    reqwest::Url::parse(url)
        .map(|u| match u.port() {
            Some(port) => format!(
                "{}://{}:{port}",
                u.scheme(),
                u.host_str().unwrap_or_default()
            ),
            None => format!("{}://{}", u.scheme(), u.host_str().unwrap_or_default()),
        })
        .unwrap_or_else(|_| "the configured url".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    const TARGET: &str = "POST /webhooks/deploy/9";

    #[test]
    fn a_signature_verifies_over_the_same_deploy_and_body_only() {
        let body = br#"{"status":"succeeded"}"#;
        let signature = sign(b"s3cret", NOW, TARGET, body);
        assert!(signature.starts_with("v2=") && signature.len() == 3 + 64);
        let ts = NOW.to_string();
        let check =
            |secret: &[u8], ts: Option<&str>, sig: Option<&str>, target: &str, body: &[u8], now| {
                verify(secret, ts, sig, target, body, now)
            };
        assert_eq!(
            check(
                b"s3cret",
                Some(&ts),
                Some(&signature),
                TARGET,
                body,
                NOW + 10
            ),
            Ok(())
        );
        assert_eq!(
            check(
                b"s3cret",
                Some(&ts),
                Some(&signature),
                TARGET,
                br#"{"status":"failed"}"#,
                NOW
            ),
            Err(SignatureError::Mismatch)
        );
        // The same report, posted for another deploy.
        assert_eq!(
            check(
                b"s3cret",
                Some(&ts),
                Some(&signature),
                "POST /webhooks/deploy/10",
                body,
                NOW
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(b"other", Some(&ts), Some(&signature), TARGET, body, NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(
                b"s3cret",
                Some(&ts),
                Some(&signature),
                TARGET,
                body,
                NOW + 301
            ),
            Err(SignatureError::Stale { skew_seconds: 301 })
        );
        assert_eq!(
            check(b"s3cret", None, Some(&signature), TARGET, body, NOW),
            Err(SignatureError::Missing(TIMESTAMP_HEADER))
        );
        assert_eq!(
            check(b"s3cret", Some(&ts), None, TARGET, body, NOW),
            Err(SignatureError::Missing(SIGNATURE_HEADER))
        );
        assert_eq!(
            check(b"s3cret", Some("soon"), Some(&signature), TARGET, body, NOW),
            Err(SignatureError::Malformed(TIMESTAMP_HEADER))
        );
        assert_eq!(
            check(b"s3cret", Some(&ts), Some("md5=00"), TARGET, body, NOW),
            Err(SignatureError::Malformed(SIGNATURE_HEADER))
        );
        assert_eq!(
            check(b"s3cret", Some(&ts), Some("v2=00"), TARGET, body, NOW),
            Err(SignatureError::Malformed(SIGNATURE_HEADER))
        );
    }

    #[test]
    fn the_timestamp_window_is_five_minutes_either_side() {
        let body = b"{}";
        let at = |timestamp: i64, now: i64| {
            let signature = sign(b"s3cret", timestamp, TARGET, body);
            verify(
                b"s3cret",
                Some(&timestamp.to_string()),
                Some(&signature),
                TARGET,
                body,
                now,
            )
        };
        assert_eq!(at(NOW, NOW), Ok(()));
        assert_eq!(at(NOW - 300, NOW), Ok(()), "five minutes old");
        assert_eq!(at(NOW + 300, NOW), Ok(()), "five minutes ahead");
        assert_eq!(
            at(NOW - 301, NOW),
            Err(SignatureError::Stale { skew_seconds: 301 })
        );
        // A timestamp from the future would let a captured request be replayed later.
        assert_eq!(
            at(NOW + 301, NOW),
            Err(SignatureError::Stale { skew_seconds: -301 })
        );
        assert_eq!(
            at(NOW + 86_400 * 365, NOW),
            Err(SignatureError::Stale {
                skew_seconds: -86_400 * 365
            })
        );
        // Extremes do not overflow.
        for timestamp in [i64::MAX, i64::MIN, i64::MIN + 1] {
            assert!(
                matches!(
                    parse_headers(
                        Some(&timestamp.to_string()),
                        Some(&sign(b"s3cret", NOW, TARGET, body)),
                        NOW
                    ),
                    Err(SignatureError::Stale { .. })
                ),
                "{timestamp}"
            );
        }
    }

    #[test]
    fn the_old_scheme_is_refused_with_directions() {
        let ts = NOW.to_string();
        let old = format!("sha256={}", "ab".repeat(32));
        let refused = verify(b"s3cret", Some(&ts), Some(&old), TARGET, b"{}", NOW);
        assert_eq!(refused, Err(SignatureError::OldScheme));
        assert!(SignatureError::OldScheme.to_string().contains("v2="));
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

    fn job() -> DeployJob {
        DeployJob {
            deploy_id: 42,
            correlation_id: uuid::Uuid::nil(),
            service: "api".into(),
            version: "v1.2.3".into(),
            environment: "production".into(),
            requested_by: "ana".into(),
            is_rollback: true,
        }
    }

    fn spec(url: String) -> WebhookSpec {
        WebhookSpec {
            url,
            secret: secrecy::SecretString::from("s3cret"),
            timeout: Duration::from_secs(1800),
        }
    }

    async fn send(spec: &WebhookSpec) -> Finish {
        let (tx, _rx) = mpsc::unbounded_channel();
        execute(spec, &job(), tx, CancellationToken::new()).await
    }

    #[tokio::test]
    async fn the_deployer_receives_a_signed_deploy_and_opsbot_awaits_its_report() {
        use wiremock::matchers::{method, path};
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(method("POST"))
            .and(path("/hooks/deploy"))
            .respond_with(wiremock::ResponseTemplate::new(202))
            .expect(1)
            .mount(&server)
            .await;

        let finish = send(&spec(format!("{}/hooks/deploy", server.uri()))).await;

        assert_eq!(
            finish,
            Finish::AwaitCallback {
                timeout: Duration::from_secs(1800)
            }
        );
        let requests = server.received_requests().await.expect("recorded");
        let request = &requests[0];
        let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
        let now = chrono::Utc::now().timestamp();
        assert_eq!(
            verify(
                b"s3cret",
                header(TIMESTAMP_HEADER),
                header(SIGNATURE_HEADER),
                &target("POST", "/hooks/deploy"),
                &request.body,
                now
            ),
            Ok(()),
            "signed over the deployer's own method and path"
        );
        assert_eq!(header("content-type"), Some("application/json"));
        let body: serde_json::Value = serde_json::from_slice(&request.body).expect("json");
        assert_eq!(
            body,
            serde_json::json!({
                "deploy_id": 42,
                "correlation_id": "00000000-0000-0000-0000-000000000000",
                "service": "api",
                "version": "v1.2.3",
                "environment": "production",
                "requested_by": "ana",
                "is_rollback": true,
                "callback_path": "/webhooks/deploy/42",
            })
        );
    }

    #[tokio::test]
    async fn a_refusing_deployer_fails_the_deploy_with_its_answer() {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(
                wiremock::ResponseTemplate::new(500).set_body_string("database\n  is down"),
            )
            .mount(&server)
            .await;

        let finish = send(&spec(format!("{}/hooks/deploy?key=abc", server.uri()))).await;

        let Finish::Failed { reason } = finish else {
            panic!("should fail: {finish:?}")
        };
        assert_eq!(
            reason,
            format!(
                "the deployer at {} answered 500 Internal Server Error: database is down",
                server.uri()
            )
        );
        assert!(!reason.contains("s3cret") && !reason.contains("key=abc"));
    }

    #[tokio::test]
    async fn an_unreachable_deployer_fails_without_showing_the_url_path() {
        let finish = send(&spec("http://127.0.0.1:9/hooks/deploy?key=abc".into())).await;
        let Finish::Failed { reason } = finish else {
            panic!("should fail: {finish:?}")
        };
        assert!(
            reason.starts_with("could not reach the deployer at http://127.0.0.1:9: "),
            "{reason}"
        );
        assert!(!reason.contains("key=abc"), "{reason}");
    }

    #[test]
    fn signature_errors_read_well() {
        assert_eq!(
            SignatureError::Stale { skew_seconds: -400 }.to_string(),
            "the timestamp is -400s away from opsbot's clock (at most 300s allowed): a replayed request, or the sender's clock is off"
        );
    }
}
