//! `POST /webhooks/alertmanager`: a delivery from Alertmanager, authenticated by the bearer
//! token of `[alerts] webhook_token`. The web door hands over the raw request
//! ([`Delivery`]); everything else happens here:
//! - Missing or wrong token: [`Refusal::Unauthorized`], counted and sampled
//!   ([`crate::refusals`]), never one audit row each.
//! - Authenticated but not JSON, over the size limit, malformed or of another payload
//!   version: refused ([`Refusal::UnsupportedMediaType`], [`Refusal::TooLarge`],
//!   [`Refusal::BadRequest`]) with one audit event saying why; nothing is stored.
//! - Otherwise the delivery is stored in one transaction with its audit event and the outbox
//!   rows of what it makes opsbot post; a redelivery changes nothing and posts nothing.
//!   A database that cannot take it gives [`Refusal::Unavailable`] (503: Alertmanager retries).
//!
//! Every refusal is counted in `opsbot_alert_webhook_refusals_total{reason}`.

use std::net::IpAddr;

use secrecy::ExposeSecret as _;
use sha2::{Digest as _, Sha256};

use super::payload::{self, Payload, Status};
use super::routing::{self, Mode};
use super::store::{self, Change};
use super::view;
use crate::actor::{Actor, Source};
use crate::audit::Outcome;
use crate::desk::{Desk, Invocation, record_in};
use crate::error::CommandError;
use crate::metrics::alert_chart::{AlertChart, expression_of};
use crate::outbox;

/// The door name of webhook refusals in metrics and sampled audit events.
pub const WEBHOOK_DOOR: &str = "alertmanager webhook";
/// The audit command of deliveries.
pub const WEBHOOK_COMMAND: &str = "alerts webhook";
/// Largest body taken: 1 MiB.
pub const MAX_BODY: usize = 1024 * 1024;
/// Characters of a refused body kept in its audit event.
const BODY_EXCERPT: usize = 300;

/// The body as the door read it.
#[derive(Debug, Clone, Copy)]
pub enum DeliveryBody<'a> {
    Complete(&'a [u8]),
    /// Longer than [`MAX_BODY`]; the door stopped reading.
    TooLarge,
}

/// A delivery as it arrived, before anything is trusted.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The `Content-Type` header.
    pub content_type: Option<&'a str>,
    pub body: DeliveryBody<'a>,
    pub address: IpAddr,
}

/// How a refused delivery is answered (the web door maps each to its status code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 401
    Unauthorized,
    /// 400
    BadRequest,
    /// 413
    TooLarge,
    /// 415
    UnsupportedMediaType,
    /// 503: try again
    Unavailable,
    /// 500
    Internal,
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Refusal::Unauthorized => "unauthorized",
            Refusal::BadRequest => "bad_request",
            Refusal::TooLarge => "too_large",
            Refusal::UnsupportedMediaType => "unsupported_media_type",
            Refusal::Unavailable => "unavailable",
            Refusal::Internal => "internal",
        }
    }
}

/// A refused delivery: how to answer, and why in words.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct IngestError {
    pub refusal: Refusal,
    pub error: CommandError,
}

/// What an accepted delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOutcome {
    /// The stored group, unless the route drops it (or no route matches).
    pub group_id: Option<i64>,
    /// Alerts that changed (0 for a redelivery).
    pub changed: usize,
    /// Outbox rows queued.
    pub queued: usize,
}

fn refused(refusal: Refusal, error: CommandError) -> IngestError {
    metrics::counter!("opsbot_alert_webhook_refusals_total", "reason" => refusal.reason())
        .increment(1);
    IngestError { refusal, error }
}

fn from_command(error: CommandError) -> IngestError {
    let refusal = match &error {
        CommandError::Unavailable(_) => Refusal::Unavailable,
        CommandError::Invalid(_) => Refusal::BadRequest,
        _ => Refusal::Internal,
    };
    refused(refusal, error)
}

/// Compares without an early exit (digests first, so lengths do not show either).
fn same_token(given: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn system_invocation(args: serde_json::Value) -> Invocation {
    Invocation::new(Actor::system(Source::Webhook), WEBHOOK_COMMAND, args)
}

impl Desk {
    /// Authenticates, checks and stores one Alertmanager delivery.
    pub async fn alertmanager_delivery(
        &self,
        delivery: Delivery<'_>,
    ) -> Result<IngestOutcome, IngestError> {
        let catalog = self.alerts();
        let unauthenticated = |reason: &str| {
            self.refuse_unauthenticated(WEBHOOK_DOOR, Source::Webhook, delivery.address, reason);
            refused(
                Refusal::Unauthorized,
                CommandError::Unauthenticated(reason.to_owned()),
            )
        };
        let Some(expected) = &catalog.webhook_token else {
            return Err(unauthenticated(
                "the Alertmanager webhook is closed: opsbot has no [alerts] webhook_token",
            ));
        };
        let given = delivery.authorization.and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        });
        match given {
            None => {
                return Err(unauthenticated(
                    "missing bearer token (Authorization: Bearer ...)",
                ));
            }
            Some(token) if !same_token(token.trim(), expected.expose_secret()) => {
                return Err(unauthenticated("wrong bearer token"));
            }
            Some(_) => {}
        }

        // Authenticated from here: every refusal gets one audit event saying why.
        let json = delivery.content_type.is_some_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
        if !json {
            let text = format!(
                "the body must be JSON (Content-Type: application/json), not {}",
                delivery.content_type.unwrap_or("(none)")
            );
            let inv =
                system_invocation(serde_json::json!({ "content_type": delivery.content_type }));
            return Err(self
                .refuse_delivery(&inv, Refusal::UnsupportedMediaType, text)
                .await);
        }
        let body = match delivery.body {
            DeliveryBody::Complete(body) => body,
            DeliveryBody::TooLarge => {
                let inv = system_invocation(serde_json::json!({ "limit_bytes": MAX_BODY }));
                let text = format!(
                    "the body is larger than {MAX_BODY} bytes (1 MiB); lower max_alerts in the webhook config"
                );
                return Err(self.refuse_delivery(&inv, Refusal::TooLarge, text).await);
            }
        };
        let payload = match payload::parse(body) {
            Ok(payload) => payload,
            Err(e) => {
                let excerpt: String = String::from_utf8_lossy(body)
                    .chars()
                    .take(BODY_EXCERPT)
                    .collect();
                let inv = system_invocation(serde_json::json!({ "body": excerpt }));
                return Err(self
                    .refuse_delivery(&inv, Refusal::BadRequest, e.to_string())
                    .await);
            }
        };
        let outcome = self.store_delivery(&payload).await.map_err(from_command)?;
        metrics::counter!("opsbot_alert_deliveries_total").increment(1);
        Ok(outcome)
    }

    async fn refuse_delivery(
        &self,
        inv: &Invocation,
        refusal: Refusal,
        text: String,
    ) -> IngestError {
        match self.record(inv, Outcome::Invalid, &text).await {
            Ok(_) => refused(refusal, CommandError::Invalid(text)),
            Err(recording) => from_command(recording),
        }
    }

    /// Stores a parsed delivery with its audit event and outbox rows, in one transaction:
    /// the transaction of whatever deliveries arrive at the same time ([`super::batch`]).
    pub async fn store_delivery(&self, payload: &Payload) -> Result<IngestOutcome, CommandError> {
        let Some(prepared) = self.prepare(payload).await else {
            return Ok(IngestOutcome::NOTHING);
        };
        super::batch::store_batched(self, payload.clone(), prepared).await
    }

    /// As [`Desk::store_delivery`], alone in its own transaction, audited as `command` from
    /// `source` (the alert loop stores a resolve Alertmanager muted).
    pub(crate) async fn store_group_state(
        &self,
        payload: &Payload,
        command: &str,
        source: Source,
    ) -> Result<IngestOutcome, CommandError> {
        let Some(prepared) = self.prepare(payload).await else {
            return Ok(IngestOutcome::NOTHING);
        };
        self.store_alone(payload, &prepared, command, source).await
    }

    /// One delivery in its own transaction.
    pub(crate) async fn store_alone(
        &self,
        payload: &Payload,
        prepared: &Prepared,
        command: &str,
        source: Source,
    ) -> Result<IngestOutcome, CommandError> {
        let mut tx = self.pool.begin().await?;
        let (outcome, after) = self
            .store_in(&mut tx, payload, prepared, command, source)
            .await?;
        tx.commit().await?;
        self.after_commit(after);
        Ok(outcome)
    }

    /// The route of `payload` and who its message mentions (looked up before any
    /// transaction starts); `None` when nothing is to be stored (no route, or `drop`).
    pub(crate) async fn prepare(&self, payload: &Payload) -> Option<Prepared> {
        let catalog = self.alerts();
        let (index, route) = routing::route(&catalog.routes, &payload.common_labels)?;
        if route.mode == Mode::Drop {
            return None;
        }
        let mention = if route.mode == Mode::Immediate {
            self.route_mentions(index).await
        } else {
            Vec::new()
        };
        Some(Prepared { index, mention })
    }

    /// Stores one delivery in `tx` (which the caller commits): the outcome, and whether the
    /// alert loop must be woken once committed.
    pub(crate) async fn store_in(
        &self,
        tx: &mut sqlx::PgConnection,
        payload: &Payload,
        prepared: &Prepared,
        command: &str,
        source: Source,
    ) -> Result<(IngestOutcome, After), CommandError> {
        let catalog = self.alerts();
        let Some(route) = catalog.routes.get(prepared.index) else {
            return Ok((IngestOutcome::NOTHING, After::default()));
        };
        let mention = &prepared.mention;
        let any_firing = payload.alerts.iter().any(|a| a.status == Status::Firing);
        let index = i32::try_from(prepared.index).unwrap_or(i32::MAX);
        // A group nobody has seen firing: only a firing delivery opens it.
        let (group, created) = if any_firing {
            store::lock_or_create_firing(&mut *tx, payload, route.channel, index).await?
        } else {
            match existing_firing(&mut *tx, payload, route.channel).await? {
                Some(group) => (group, false),
                None => return Ok((IngestOutcome::NOTHING, After::default())),
            }
        };
        let mut changes = Vec::new();
        let stored = store::upsert_alerts(&mut *tx, group.id, &payload.alerts).await?;
        for (alert, change) in payload.alerts.iter().zip(stored) {
            if let Some(change) = change {
                changes.push((change, alert.fingerprint.clone()));
            }
        }
        if changes.is_empty() && !created {
            // A redelivery: nothing changed (the upserts wrote nothing), nothing to post.
            return Ok((
                IngestOutcome {
                    group_id: Some(group.id),
                    changed: 0,
                    queued: 0,
                },
                After::default(),
            ));
        }
        let correlated = if created {
            super::correlation::correlate(&mut *tx, self, group.id, payload).await?
        } else {
            None
        };
        // A group this delivery created holds exactly the delivery's alerts, as firing as
        // it was inserted: what a refresh and a read-back would return is known already.
        let fresh = created
            && correlated.is_none()
            && changes.len() == payload.alerts.len()
            && changes.iter().all(|(c, _)| matches!(c, Change::New(_)));
        let (group, alerts) = if fresh {
            (group, store::instances_as_stored(&payload.alerts))
        } else {
            let group = store::refresh_group(&mut *tx, group.id, payload).await?;
            let alerts = store::instances(&mut *tx, group.id).await?;
            (group, alerts)
        };
        let joined = changes
            .iter()
            .filter(|(c, _)| matches!(c, Change::New(_)))
            .count();
        let resolved = changes
            .iter()
            .filter(|(c, _)| matches!(c, Change::Resolved))
            .count();
        let mut inv = Invocation::new(
            Actor::system(source),
            command,
            serde_json::json!({
            "group_key": payload.group_key,
            "group_id": group.id,
            "status": payload.status.as_str(),
            "alerts": payload.alerts.len(),
            }),
        );
        inv.channel_id = Some(group.channel_id);
        let detail = format!(
            "alert group {} {}: {joined} new, {resolved} resolved, {} firing",
            group.id,
            group.status,
            alerts.iter().filter(|a| a.is_firing()).count()
        );
        let event = record_in(&mut *tx, &inv, Outcome::Ok, &detail).await?;
        if let Some(deploy) = &correlated
            && let Some(thread) = deploy.thread_id
        {
            let name = group
                .common_labels
                .0
                .get("alertname")
                .map_or("alert", String::as_str);
            let line = super::correlation::thread_line(deploy, name, group.id);
            outbox::enqueue(&mut *tx, thread, &line, Some(event)).await?;
        }
        // Silences "until resolved" are due now; queued with the resolve, so never lost.
        let expire_silences =
            !group.is_firing() && store::due_on_resolve(&mut *tx, group.id).await? > 0;
        let mut queued = 0;
        let mut chart = None;
        if route.mode == Mode::Immediate {
            let message = view::group_message(&group, &alerts, mention);
            match group.post_outbox_id {
                None => {
                    let post =
                        outbox::enqueue(&mut *tx, group.channel_id, &message, Some(event)).await?;
                    store::set_post(&mut *tx, group.id, post).await?;
                    queued += 1;
                    chart = alert_chart(payload, &group, post);
                }
                Some(post) if group.is_firing() || route.send_resolved => {
                    outbox::enqueue_edit_of(
                        &mut *tx,
                        group.channel_id,
                        post,
                        &message,
                        Some(event),
                    )
                    .await?;
                    queued += 1;
                }
                Some(_) => {}
            }
        }
        let mut wake = expire_silences;
        if route.mode == Mode::Immediate {
            if group.thread_id.is_none() && view::overflows(&group, &alerts) {
                store::want_thread(&mut *tx, group.id).await?;
                wake = true;
            }
            if let Some(thread) = group.thread_id
                && joined + resolved > 0
            {
                let firing = alerts.iter().filter(|a| a.is_firing()).count();
                let line = super::threads::change_line(joined, resolved, firing);
                outbox::enqueue(&mut *tx, thread, &line, Some(event)).await?;
            }
        }
        Ok((
            IngestOutcome {
                group_id: Some(group.id),
                changed: changes.len(),
                queued,
            },
            After { wake, chart },
        ))
    }

    /// What a stored delivery asks for once its transaction committed: wake the alert loop,
    /// draw its chart in the background.
    pub(crate) fn after_commit(&self, after: After) {
        if after.wake {
            self.alerts().upkeep_wake.notify_one();
        }
        if let Some(chart) = after.chart {
            self.chart_alert_later(chart);
        }
    }
}

/// What a delivery's transaction leaves to do after it commits.
#[derive(Debug, Default)]
pub(crate) struct After {
    /// The alert loop has work (a silence to expire, a thread to start).
    pub wake: bool,
    /// The chart the new message gets.
    pub chart: Option<AlertChart>,
}

/// The chart a new group's message gets: its first firing alert whose rule's expression is
/// in its `generatorURL` (see [`crate::metrics::alert_chart`]).
pub(super) fn alert_chart(
    payload: &Payload,
    group: &store::AlertGroup,
    post: i64,
) -> Option<AlertChart> {
    payload
        .alerts
        .iter()
        .filter(|a| a.status == Status::Firing)
        .find_map(|a| {
            expression_of(&a.generator_url).map(|expr| AlertChart {
                group_id: group.id,
                channel_id: group.channel_id,
                post,
                expr,
                starts_at: a.starts_at,
            })
        })
}

/// What a delivery needs decided before its transaction: its route and the roles its
/// message mentions.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub index: usize,
    pub mention: Vec<i64>,
}

impl IngestOutcome {
    /// Nothing stored (no route, `drop`, or a resolve of a group never seen firing).
    pub const NOTHING: IngestOutcome = IngestOutcome {
        group_id: None,
        changed: 0,
        queued: 0,
    };
}

async fn existing_firing(
    tx: &mut sqlx::PgConnection,
    payload: &Payload,
    channel_id: i64,
) -> Result<Option<store::AlertGroup>, sqlx::Error> {
    let id: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM alert_groups WHERE group_key = $1 AND channel_id = $2 AND status = 'firing'",
    )
    .bind(&payload.group_key)
    .bind(channel_id)
    .fetch_optional(&mut *tx)
    .await?;
    match id {
        Some(id) => store::lock_group(tx, id).await,
        None => Ok(None),
    }
}
