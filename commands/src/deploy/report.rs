//! Reports of webhook deployers: `POST /webhooks/deploy/{id}`, signed with scheme v2 (see
//! [`super::backends::webhook`]). The web door hands the raw request to
//! [`Desk::deploy_report`]; everything else happens here:
//! - An unauthenticated report (headers missing or malformed, a stale timestamp, a deploy
//!   that does not exist or does not use the webhook backend, a wrong signature) is refused
//!   with one and the same answer whether or not the deploy exists, and counted and sampled
//!   ([`crate::refusals`]) rather than written to the trail row by row.
//! - A signature is accepted once: the same signed report again is refused as a replay and
//!   changes nothing (no post, no audit event).
//! - An authenticated report is audited, malformed bodies included, and moves the deploy.

use std::net::IpAddr;

use secrecy::ExposeSecret as _;

use super::backends::BackendSpec;
use super::backends::webhook::{self, MAX_SKEW, ProgressReport, ReportedStatus, SignatureError};
use super::model::DeployState;
use super::tracker::{finish, post_progress, system};
use super::{store, view};
use crate::Source;
use crate::audit::Outcome;
use crate::desk::Desk;
use crate::error::CommandError;

/// The door name of report refusals in metrics and sampled audit events.
pub const REPORT_DOOR: &str = "deploy report";
/// Characters of a malformed body kept in its audit event.
const BODY_EXCERPT: usize = 500;

/// A report as it arrived, before anything is trusted.
#[derive(Debug, Clone, Copy)]
pub struct SignedReport<'a> {
    pub deploy_id: i64,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
    /// Where it came from (for sampling refusals).
    pub address: IpAddr,
}

impl Desk {
    /// Authenticates and applies a webhook deployer's report on a deploy: progress, or the
    /// outcome. Returns the deploy's state afterwards.
    pub async fn deploy_report(
        &self,
        report: SignedReport<'_>,
    ) -> Result<DeployState, CommandError> {
        let id = report.deploy_id;
        let refuse = |reason: SignatureError| {
            let text = format!("signature refused: {reason}");
            self.refuse_unauthenticated(REPORT_DOOR, Source::Webhook, report.address, &text);
            CommandError::Unauthenticated(text)
        };
        let now = chrono::Utc::now().timestamp();
        let headers =
            webhook::parse_headers(report.timestamp, report.signature, now).map_err(refuse)?;
        let deploy = store::deploy_by_id(&self.pool, id).await?;
        let secret = deploy.as_ref().and_then(|d| {
            match self.deploys().services.get(&d.service).map(|s| &s.backend) {
                Some(BackendSpec::Webhook(spec)) => Some(spec.secret.clone()),
                _ => None,
            }
        });
        // No deploy, or one that takes no reports, reads exactly like a wrong signature: an
        // unauthenticated caller learns nothing about which deploys exist.
        let (Some(deploy), Some(secret)) = (deploy, secret) else {
            return Err(refuse(SignatureError::Mismatch));
        };
        let target = webhook::target("POST", &webhook::report_path(id));
        headers
            .verify(secret.expose_secret().as_bytes(), &target, report.body)
            .map_err(refuse)?;

        // Authenticated from here. A replay changes nothing and is not recorded again.
        if !claim_signature(&self.pool, &headers.digest, id).await? {
            metrics::counter!("opsbot_webhook_replays_total", "door" => REPORT_DOOR).increment(1);
            return Err(CommandError::Replayed("this signed report was already received; each signature is accepted once, so nothing changed (sign a new report with the current time to send it again)"
                    .to_owned(),
            ));
        }
        // Every other refusal is audited.
        let mut inv = system(&deploy, Source::Webhook);
        inv.command = REPORT_DOOR.to_owned();
        let parsed: ProgressReport = match serde_json::from_slice(report.body) {
            Ok(parsed) => parsed,
            Err(e) => {
                let excerpt: String = String::from_utf8_lossy(report.body)
                    .chars()
                    .take(BODY_EXCERPT)
                    .collect();
                inv.args = serde_json::json!({ "deploy_id": id, "body": excerpt });
                let error = CommandError::Invalid(format!(
                    "the body is not a progress report ({e}); send {{\"status\": \"running\"|\"succeeded\"|\"failed\", \"message\": \"...\"}}"
                ));
                return Err(self.refuse(&inv, error).await);
            }
        };
        let applied = self.apply_report(&deploy, &mut inv, &parsed).await;
        if let Err(CommandError::Unavailable(_) | CommandError::Internal { .. }) = &applied {
            // Nothing was applied: let the deployer's retry of the same request through.
            if let Err(e) = release_signature(&self.pool, &headers.digest).await {
                tracing::warn!(error = %e, deploy = id, "could not release a report's signature");
            }
        }
        applied
    }

    async fn apply_report(
        &self,
        deploy: &super::Deploy,
        inv: &mut crate::Invocation,
        report: &ProgressReport,
    ) -> Result<DeployState, CommandError> {
        let id = deploy.id;
        let mut deploy = deploy.clone();
        inv.args = serde_json::to_value(report).unwrap_or_default();
        if deploy.state != DeployState::Running || deploy.backend != "webhook" {
            let e = CommandError::Conflict(format!(
                "{} is {} on the {} backend; it takes no webhook reports now",
                view::headline(&deploy),
                deploy.state,
                deploy.backend
            ));
            return Err(self.refuse(inv, e).await);
        }
        if let Some(url) = &report.url {
            store::set_link(&self.pool, id, &format!("[deployer]({url})")).await?;
            deploy.link = Some(format!("[deployer]({url})"));
        }
        match report.status {
            ReportedStatus::Running => {
                self.record(inv, Outcome::Ok, &report.message).await?;
                post_progress(self, &deploy, &report.message).await?;
                Ok(DeployState::Running)
            }
            ReportedStatus::Succeeded | ReportedStatus::Failed => {
                let state = if report.status == ReportedStatus::Succeeded {
                    DeployState::Succeeded
                } else {
                    DeployState::Failed
                };
                let detail = if report.message.is_empty() {
                    format!("the deployer reported {state}")
                } else {
                    report.message.clone()
                };
                finish(self, id, state, &detail, Source::Webhook).await?;
                Ok(state)
            }
        }
    }
}

/// Remembers an accepted signature; false when it was seen before.
async fn claim_signature(
    pool: &sqlx::PgPool,
    digest: &[u8],
    deploy_id: i64,
) -> Result<bool, CommandError> {
    let claimed = sqlx::query(
        "INSERT INTO webhook_signatures (digest, deploy_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(digest)
    .bind(deploy_id)
    .execute(pool)
    .await?;
    Ok(claimed.rows_affected() == 1)
}

impl Desk {
    /// Forgets accepted report signatures older than twice [`MAX_SKEW`]: their timestamps are
    /// refused as stale anyway. Run by the `webhook signatures` background loop, not on the
    /// request path. Returns how many were forgotten.
    pub async fn forget_old_report_signatures(&self) -> Result<u64, CommandError> {
        let forget_after = (2 * MAX_SKEW).as_secs_f64();
        let forgotten = sqlx::query(
            "DELETE FROM webhook_signatures WHERE received_at < now() - make_interval(secs => $1)",
        )
        .bind(forget_after)
        .execute(&self.pool)
        .await?;
        Ok(forgotten.rows_affected())
    }
}

async fn release_signature(pool: &sqlx::PgPool, digest: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM webhook_signatures WHERE digest = $1")
        .bind(digest)
        .execute(pool)
        .await
        .map(|_| ())
}
