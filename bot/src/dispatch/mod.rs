//! The outbox dispatcher: delivers the messages queued with `opsbot_commands::outbox::enqueue`
//! to Discord (`POST /api/v10/channels/{channel_id}/messages`).
//!
//! - **No duplicates.** Each row carries a nonce sent with `enforce_nonce: true`: if a request
//!   reached Discord but its answer was lost, the retry gets the message Discord already made.
//!   Rows are claimed with `FOR UPDATE SKIP LOCKED` and a lease, so two dispatchers (replicas)
//!   never hold the same row; a dispatcher stops working on its batch before the lease could
//!   run out under it ([`REQUEST_TIMEOUT`] + [`RECORD_MARGIN`] before the end).
//! - **Every replica drains.** Each `opsbot run` with a Discord token runs a dispatcher. A
//!   channel is drained by one of them at a time (`outbox::claim_due`), so its messages keep
//!   their order, and an edit waits for its post wherever that post is.
//! - **Rate limits.** Discord's global limit (50 requests per second per bot) is shared: each
//!   dispatcher keeps `min_request_spacing` (22 ms: 45/s) × the number of live replicas
//!   (their heartbeats) between its requests. A 429 is retried after exactly its
//!   `retry_after`; a global 429 pauses every delivery of this dispatcher; an exhausted bucket
//!   (`X-RateLimit-Remaining: 0`) holds that channel until `X-RateLimit-Reset-After`, while
//!   the other channels' messages go on: a held channel's rows are handed back
//!   (`outbox::defer`) until its bucket resets.
//! - **Failures.** 5xx, 401, timeouts and connection errors are retried with jittered exponential
//!   backoff; after `max_attempts` such failures, or at once for any other 4xx, the row is
//!   dead-lettered: `status = 'dead'`, an audit event (`outbox deliver`, outcome `error`) and an
//!   error log, so people see it.
//! - **429s do not count as failures.** They are recorded in the row's `rate_limited` count,
//!   not in `attempts`, so a message that Discord keeps rate limiting is never given up on:
//!   Discord says when to come back, and the dispatcher does.
//! - **Restarts.** All state that matters is in Postgres. A dispatcher that dies holding a
//!   lease delays its rows until the lease ends; then any dispatcher takes them over.

mod pacing;
mod response;

use std::time::Duration;

use anyhow::{Context, bail};
use opsbot_commands::Source;
use opsbot_commands::audit::{self, NewEvent, Outcome};
use opsbot_commands::outbox::{self, OutboxItem};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use crate::discord::render::attachment::attachment_edit_body;
pub use crate::discord::render::message::{create_message_body, edit_message_body, truncate};

use pacing::Pacing;
use response::{Delivery, backoff, bucket_exhausted_for, classify};

/// Timeout of one create-message request, connection included. Discord answers in well under
/// a second; ten seconds rides out a slow moment, yet leaves most of the lease (30 s by default)
/// for the rest of the batch. A timed-out request may still have posted: the retry's nonce
/// makes that harmless.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout for establishing a connection: a refused or black-holed Discord should become a
/// retry quickly, not use up the whole request timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time kept in hand, after a request's timeout, to record its result before the lease ends:
/// past the lease another dispatcher may claim the row.
pub const RECORD_MARGIN: Duration = Duration::from_secs(5);
/// Longest pause of [`Dispatcher::run`] after consecutive database errors: short enough that
/// delivery resumes within a few seconds of Postgres coming back (at 30 s, announcements
/// queued before a 4 s restart waited 26 s), long enough not to flood the log while it is
/// down (a failing pass itself takes the pool's 2 s acquire timeout: a line every ~4 s).
const DB_ERROR_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Discord asks bots to identify themselves as `DiscordBot ($url, $version)`.
const USER_AGENT: &str = concat!(
    "DiscordBot (https://github.com/opsbot/opsbot, ",
    env!("CARGO_PKG_VERSION"),
    ")"
);

/// Tuning of the dispatcher; [`Default`] suits Discord.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// Failures (not counting 429s) after which a message is dead-lettered. Default 8: with a
    /// 1 s base that is about four minutes of retries, enough for a Discord hiccup.
    pub max_attempts: i32,
    /// Delay after the first failure; doubles with every further failure. Default 1 s.
    pub base_backoff: Duration,
    /// Longest delay between retries. Default 5 min, within Discord's nonce memory of "the
    /// past few minutes".
    pub max_backoff: Duration,
    /// How long claimed rows are reserved for this dispatcher. Default 30 s; must exceed
    /// [`REQUEST_TIMEOUT`] + [`RECORD_MARGIN`].
    pub lease: Duration,
    /// Pause between passes when the last one found less than a full batch. Default 250 ms:
    /// messages go out promptly at four cheap queries a second.
    pub poll_interval: Duration,
    /// Rows claimed per pass. Default 20: a pass at the global limit takes under half a second,
    /// well within the lease.
    pub batch: i64,
    /// Least time between two requests of one dispatcher. Default 22 ms (45 a second):
    /// Discord's global limit is 50 requests per second per bot, counted where they arrive;
    /// at exactly 20 ms a fake Discord counting requests saw 50 in one second, one jittered
    /// request from a 429, and serenity's own calls (threads, channels) share the limit.
    pub min_request_spacing: Duration,
}

impl Default for DispatchSettings {
    fn default() -> DispatchSettings {
        DispatchSettings {
            max_attempts: 8,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5 * 60),
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(250),
            batch: 20,
            min_request_spacing: Duration::from_millis(22),
        }
    }
}

/// Delivers the outbox to Discord. Cheap to clone; clones share their pacing (rate limits).
#[derive(Clone)]
pub struct Dispatcher {
    pool: PgPool,
    /// Carries the `Authorization` header (marked sensitive) as a default header, so the
    /// token is stored nowhere else and never printed.
    client: reqwest::Client,
    /// `{api_base}/api/v10/channels/`.
    channels_url: String,
    settings: DispatchSettings,
    pacing: Pacing,
    /// This dispatcher's id in `outbox.claimed_by` (the replica's lease holder id).
    claimer: uuid::Uuid,
    /// When the number of live replicas was last read (it sets the shared spacing).
    peers_read: std::sync::Arc<std::sync::Mutex<Option<Instant>>>,
}

/// How often the number of live replicas is read again.
const PEERS_REFRESH: Duration = Duration::from_secs(5);
/// A replica whose heartbeat (every 5 s) is older than this is not counted.
const PEER_FRESHNESS_SECONDS: f64 = 15.0;

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("channels_url", &self.channels_url)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default)]
struct Pass {
    claimed: usize,
    delivered: usize,
}

impl Dispatcher {
    /// A dispatcher posting to `api_base` (`https://discord.com`, or a fake's base URL) with
    /// the bot `token`.
    pub fn new(
        pool: PgPool,
        api_base: &str,
        token: SecretString,
        settings: DispatchSettings,
    ) -> anyhow::Result<Dispatcher> {
        let base = api_base.trim_end_matches('/');
        reqwest::Url::parse(base).with_context(|| {
            format!("Discord API base {api_base:?} is not a URL; expected e.g. https://discord.com")
        })?;
        if settings.lease < REQUEST_TIMEOUT + RECORD_MARGIN {
            bail!(
                "outbox lease {:?} is too short: it must exceed the request timeout {:?} plus {:?} to record the result",
                settings.lease,
                REQUEST_TIMEOUT,
                RECORD_MARGIN
            );
        }
        if settings.max_attempts < 1 || settings.batch < 1 {
            bail!(
                "outbox max_attempts ({}) and batch ({}) must be at least 1",
                settings.max_attempts,
                settings.batch
            );
        }
        let mut auth =
            HeaderValue::try_from(format!("Bot {}", token.expose_secret())).map_err(|_| {
                anyhow::anyhow!(
                    "the Discord token contains characters not allowed in an HTTP header"
                )
            })?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(USER_AGENT)
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .context("building the HTTP client for Discord")?;
        Ok(Dispatcher {
            pool,
            client,
            channels_url: format!("{base}/api/v10/channels/"),
            pacing: Pacing::new(settings.min_request_spacing),
            settings,
            claimer: uuid::Uuid::new_v4(),
            peers_read: std::sync::Arc::default(),
        })
    }

    /// Claims rows as `claimer` (the replica's id in `replicas` and `leases`).
    pub fn with_claimer(mut self, claimer: uuid::Uuid) -> Dispatcher {
        self.claimer = claimer;
        self
    }

    /// Shares Discord's global limit with the other live replicas: re-reads their number
    /// every [`PEERS_REFRESH`] (a failed read keeps the last share).
    async fn share_global_limit(&self) {
        {
            let mut read = self
                .peers_read
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if read.is_some_and(|at| at.elapsed() < PEERS_REFRESH) {
                return;
            }
            *read = Some(Instant::now());
        }
        let live: Result<i64, sqlx::Error> = sqlx::query_scalar(
            "SELECT count(*) FROM replicas WHERE seen_at > now() - make_interval(secs => $1)",
        )
        .bind(PEER_FRESHNESS_SECONDS)
        .fetch_one(&self.pool)
        .await;
        match live {
            Ok(live) => self
                .pacing
                .share(u32::try_from(live.max(1)).unwrap_or(u32::MAX)),
            Err(e) => tracing::debug!(error = %e, "could not count the live replicas"),
        }
    }

    /// One pass: claims due rows, delivers them in id order and records each result. Returns
    /// how many were delivered. Waits out a global rate limit first, if one is in force.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        let pass = self.pass(&CancellationToken::new()).await?;
        Ok(pass.delivered)
    }

    /// Delivers until `shutdown` is cancelled: a pass every `poll_interval`, or straight away
    /// after a full batch. Database errors are logged and retried. On shutdown the message in
    /// flight is finished and recorded; the rest of its batch waits for its lease to end. Its
    /// last successful pass is `opsbot_background_last_success_timestamp_seconds{loop="outbox
    /// dispatcher"}`.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(url = %self.channels_url, claimer = %self.claimer, "outbox dispatcher started");
        let mut db_errors: u32 = 0;
        while !shutdown.is_cancelled() {
            let wait = match self.pass(&shutdown).await {
                Ok(pass) => {
                    crate::background::succeeded("outbox dispatcher");
                    db_errors = 0;
                    let full =
                        i64::try_from(pass.claimed).unwrap_or(i64::MAX) >= self.settings.batch;
                    if full {
                        Duration::ZERO
                    } else {
                        self.settings.poll_interval
                    }
                }
                Err(e) => {
                    db_errors = db_errors.saturating_add(1);
                    let wait = self
                        .settings
                        .poll_interval
                        .saturating_mul(2u32.saturating_pow(db_errors.min(16)))
                        .min(DB_ERROR_BACKOFF_MAX);
                    tracing::error!(error = format!("{e:#}"), retry_in = ?wait, "outbox delivery pass failed; will retry");
                    // The rest of the failed pass's rows need not sit out their lease (30 s
                    // by default) once the database answers again; best effort while it is
                    // down. A row delivered but not recorded is sent again with its nonce,
                    // which Discord deduplicates, as after a lease that ended.
                    if let Err(e) = outbox::release_claims(&self.pool, self.claimer).await {
                        tracing::debug!(error = %e, "could not release the failed pass's outbox rows yet");
                    }
                    wait
                }
            };
            if !sleep_until(Instant::now() + wait, &shutdown).await {
                break;
            }
        }
        match outbox::release_claims(&self.pool, self.claimer).await {
            Ok(0) => {}
            Ok(released) => {
                tracing::info!(
                    released,
                    "outbox rows not delivered before stopping are free for other replicas"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not release this dispatcher's outbox rows; they wait for their lease to end");
            }
        }
        tracing::info!("outbox dispatcher stopped");
    }

    async fn pass(&self, stop: &CancellationToken) -> anyhow::Result<Pass> {
        // Rows claimed during a global pause would only sit out their lease.
        if let Some(until) = self.pacing.paused_until()
            && !sleep_until(until, stop).await
        {
            return Ok(Pass::default());
        }
        self.share_global_limit().await;
        // Taken before the claim, so this deadline falls no later than the lease in Postgres.
        let lease_end = Instant::now() + self.settings.lease;
        let items = outbox::claim_due(
            &self.pool,
            self.settings.batch,
            self.settings.lease,
            self.claimer,
        )
        .await
        .context("claiming due outbox rows")?;
        let mut pass = Pass {
            claimed: items.len(),
            delivered: 0,
        };
        for item in &items {
            if stop.is_cancelled() {
                break;
            }
            // A channel whose bucket is empty waits on its own; the rest of the batch goes
            // on (waiting here held every channel behind one busy one: 15 requests/s of 50).
            if let Some(wait) = self.pacing.channel_blocked_for(item.channel_id) {
                outbox::defer(&self.pool, item.id, wait)
                    .await
                    .with_context(|| format!("deferring outbox row {}", item.id))?;
                continue;
            }
            let slot = self.pacing.reserve(item.channel_id);
            if slot + REQUEST_TIMEOUT + RECORD_MARGIN > lease_end {
                tracing::debug!(
                    outbox_id = item.id,
                    "rate limits leave too little of the lease; the rest of the batch waits for it to end"
                );
                break;
            }
            if !sleep_until(slot, stop).await {
                break;
            }
            if self.deliver(item).await? {
                pass.delivered += 1;
            }
        }
        Ok(pass)
    }

    /// Sends one message and records the result. `Ok(true)` when it was delivered.
    async fn deliver(&self, item: &OutboxItem) -> anyhow::Result<bool> {
        if item.attachment.is_some()
            && item.edit_message_id.is_none()
            && item.edit_of_post.is_none()
        {
            self.dead_letter(item, "an attachment is only sent with an edit of a message")
                .await?;
            return Ok(false);
        }
        if item.superseded {
            // A newer edit of the same message is queued; sending this one could only
            // overwrite newer text if the two were reordered by retries.
            outbox::mark_sent(&self.pool, item.id, item.edit_message_id)
                .await
                .with_context(|| format!("recording outbox row {} as superseded", item.id))?;
            return Ok(true);
        }
        if item.edit_of_post.is_some() && item.edit_message_id.is_none() {
            // The post it edits was dead-lettered, or Discord's answer with its id was lost.
            let post = item.edit_of_post.unwrap_or_default();
            self.dead_letter(
                item,
                &format!("outbox row {post}, the message this edit changes, was never delivered with an id"),
            )
            .await?;
            return Ok(false);
        }
        let request = match item.edit_message_id {
            Some(message_id) if item.attachment.is_some() => {
                let (content_type, body) = attachment_edit_body(item.attachment.as_ref());
                self.client
                    .patch(format!(
                        "{}{}/messages/{message_id}",
                        self.channels_url, item.channel_id
                    ))
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(body)
            }
            Some(message_id) => self
                .client
                .patch(format!(
                    "{}{}/messages/{message_id}",
                    self.channels_url, item.channel_id
                ))
                .json(&edit_message_body(&item.message)),
            None => self
                .client
                .post(format!("{}{}/messages", self.channels_url, item.channel_id))
                .json(&create_message_body(&item.message, &item.nonce)),
        };
        let delivery = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let headers = response.headers().clone();
                if let Some(reset) = bucket_exhausted_for(&headers) {
                    self.pacing.block_channel(item.channel_id, reset);
                }
                // A 2xx whose body is lost still means the message exists: it is marked sent
                // without an id rather than retried.
                let bytes = response.bytes().await.unwrap_or_default();
                classify(status, &headers, &bytes)
            }
            Err(e) => Delivery::Transient {
                error: format!(
                    "request to Discord failed: {}",
                    opsbot_commands::error::ErrorChain(&e)
                ),
            },
        };
        match delivery {
            Delivery::Sent { message_id } => {
                outbox::mark_sent(&self.pool, item.id, message_id)
                    .await
                    .with_context(|| format!("recording outbox row {} as sent", item.id))?;
                metrics::counter!("opsbot_outbox_delivered_total").increment(1);
                tracing::debug!(
                    outbox_id = item.id,
                    channel_id = item.channel_id,
                    ?message_id,
                    "outbox message delivered"
                );
                Ok(true)
            }
            Delivery::RateLimited {
                retry_after,
                global,
                error,
            } => {
                if global {
                    self.pacing.pause_all(retry_after);
                } else {
                    self.pacing.block_channel(item.channel_id, retry_after);
                }
                outbox::mark_retry(
                    &self.pool,
                    item.id,
                    outbox::Retry::RateLimited,
                    &error,
                    retry_after,
                )
                .await
                .with_context(|| format!("recording a retry of outbox row {}", item.id))?;
                metrics::counter!("opsbot_outbox_retries_total").increment(1);
                tracing::warn!(
                    outbox_id = item.id,
                    channel_id = item.channel_id,
                    global,
                    ?retry_after,
                    "Discord rate limited an outbox message; retrying after retry_after"
                );
                Ok(false)
            }
            Delivery::Transient { error } => {
                let failures_before = item.attempts;
                if failures_before.saturating_add(1) >= self.settings.max_attempts {
                    let error = format!(
                        "gave up after {} failed attempts; last: {error}",
                        failures_before + 1
                    );
                    self.dead_letter(item, &error).await?;
                    return Ok(false);
                }
                let retry_in = backoff(
                    self.settings.base_backoff,
                    self.settings.max_backoff,
                    failures_before,
                );
                outbox::mark_retry(&self.pool, item.id, outbox::Retry::Failed, &error, retry_in)
                    .await
                    .with_context(|| format!("recording a retry of outbox row {}", item.id))?;
                metrics::counter!("opsbot_outbox_retries_total").increment(1);
                tracing::warn!(
                    outbox_id = item.id,
                    channel_id = item.channel_id,
                    error,
                    ?retry_in,
                    "outbox delivery failed; will retry"
                );
                Ok(false)
            }
            Delivery::Permanent { error } => {
                let error = format!("Discord refused the message: {error}");
                self.dead_letter(item, &error).await?;
                Ok(false)
            }
        }
    }

    /// Gives up on a message where people will see it: the audit trail first (so that a dead
    /// row always has its event), then the row, then the log.
    async fn dead_letter(&self, item: &OutboxItem, error: &str) -> anyhow::Result<()> {
        let event = NewEvent {
            actor_id: 0,
            actor_name: "opsbot".into(),
            source: Source::Scheduler,
            guild_id: None,
            channel_id: Some(item.channel_id),
            interaction_id: None,
            command: "outbox deliver".into(),
            args: serde_json::json!({ "outbox_id": item.id, "channel_id": item.channel_id }),
            outcome: Outcome::Error,
            detail: error.to_owned(),
            correlation_id: None,
        };
        audit::append(&self.pool, &event)
            .await
            .with_context(|| format!("auditing the dead-lettering of outbox row {}", item.id))?;
        outbox::mark_dead(&self.pool, item.id, error)
            .await
            .with_context(|| format!("dead-lettering outbox row {}", item.id))?;
        metrics::counter!("opsbot_outbox_dead_total").increment(1);
        tracing::error!(
            outbox_id = item.id,
            channel_id = item.channel_id,
            error,
            "outbox message dead-lettered; it will not be posted"
        );
        Ok(())
    }
}

/// Sleeps until `at`; `false` if `stop` was cancelled first.
async fn sleep_until(at: Instant, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = stop.cancelled() => false,
        () = tokio::time::sleep_until(at) => true,
    }
}
