//! The Discord gateway connection and its supervisor. A Discord outage (unreachable, or
//! answering 500 on `/gateway/bot`, or a connection that ends) never stops opsbot: the
//! supervisor retries with exponential backoff and jitter until shutdown, while webhooks, the
//! dashboard and the sealer keep serving. [`GatewayStatus`] says where it stands, for
//! `/readyz` (a `gateway: …` line) and `/metrics` (`opsbot_gateway_connected`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opsbot_commands::{CommandError, Desk};
use poise::serenity_prelude as serenity;
use tokio_util::sync::CancellationToken;

use super::{Data, GatewaySettings, framework_options, http_client};

/// The first wait after a failed connection: long enough not to hammer a Discord that is down.
const BACKOFF_START: Duration = Duration::from_secs(1);
/// The longest wait between attempts: an outage is noticed within a minute of its end, and
/// one attempt a minute stays far below Discord's 10,000 invalid requests per 10 minutes.
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Error texts kept for `/readyz` are cut to this many characters.
const ERROR_TEXT_MAX: usize = 300;

/// Where the gateway connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayState {
    /// No token configured: opsbot runs without Discord.
    Disabled,
    Connecting,
    Connected,
    Disconnected,
    /// Another replica holds the gateway lease (or this one is `gateway = "off"`).
    Standby,
}

#[derive(Debug)]
struct Detail {
    state: GatewayState,
    /// Why the last attempt failed (secrets removed).
    last_error: Option<String>,
    /// When the supervisor tries again.
    retry_at: Option<Instant>,
}

/// The gateway's state, shared by the supervisor, the framework's event handler, `/readyz`
/// and the `opsbot_gateway_connected` gauge.
#[derive(Debug)]
pub struct GatewayStatus {
    connected: AtomicBool,
    /// Set when a connection was made during the current attempt (resets the backoff).
    reached: AtomicBool,
    detail: Mutex<Detail>,
}

impl GatewayStatus {
    fn with_state(state: GatewayState) -> Arc<GatewayStatus> {
        metrics::gauge!("opsbot_gateway_connected").set(0.0);
        Arc::new(GatewayStatus {
            connected: AtomicBool::new(false),
            reached: AtomicBool::new(false),
            detail: Mutex::new(Detail {
                state,
                last_error: None,
                retry_at: None,
            }),
        })
    }

    /// No token: the gateway does not run.
    pub fn disabled() -> Arc<GatewayStatus> {
        GatewayStatus::with_state(GatewayState::Disabled)
    }

    /// A gateway about to connect.
    pub fn connecting() -> Arc<GatewayStatus> {
        GatewayStatus::with_state(GatewayState::Connecting)
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub fn state(&self) -> GatewayState {
        self.detail().state
    }

    /// One line for `/readyz`: `connected`, `connecting`, `disabled (no token)` or
    /// `disconnected (retrying in 8s: …)`.
    pub fn summary(&self) -> String {
        let detail = self.detail();
        match detail.state {
            GatewayState::Disabled => "disabled (no token)".to_owned(),
            GatewayState::Connected => "connected".to_owned(),
            GatewayState::Standby => format!(
                "standby ({})",
                detail
                    .last_error
                    .as_deref()
                    .unwrap_or("another replica is the leader")
            ),
            GatewayState::Connecting => match &detail.last_error {
                Some(error) => format!("disconnected (reconnecting now; last error: {error})"),
                None => "connecting".to_owned(),
            },
            GatewayState::Disconnected => {
                let error = detail.last_error.as_deref().unwrap_or("no reason given");
                match detail.retry_at {
                    Some(at) => {
                        let wait = at.saturating_duration_since(Instant::now());
                        format!(
                            "disconnected (retrying in {}s: {error})",
                            wait.as_secs_f64().ceil() as u64
                        )
                    }
                    None => format!("disconnected ({error})"),
                }
            }
        }
    }

    fn detail(&self) -> std::sync::MutexGuard<'_, Detail> {
        // Every update writes whole fields: a panic elsewhere leaves consistent data.
        self.detail.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, state: GatewayState, error: Option<String>, retry_in: Option<Duration>) {
        let connected = state == GatewayState::Connected;
        {
            let mut detail = self.detail();
            detail.state = state;
            if error.is_some() || connected {
                detail.last_error = error;
            }
            detail.retry_at = retry_in.map(|d| Instant::now() + d);
        }
        if connected {
            self.reached.store(true, Ordering::Relaxed);
        }
        self.connected.store(connected, Ordering::Relaxed);
        metrics::gauge!("opsbot_gateway_connected").set(if connected { 1.0 } else { 0.0 });
    }

    /// The READY event (or a resumed session): the bot is online.
    pub fn set_connected(&self) {
        self.set(GatewayState::Connected, None, None);
    }

    /// The connection was lost; `why` has no secrets in it.
    pub fn set_disconnected(&self, why: &str, retry_in: Option<Duration>) {
        self.set(
            GatewayState::Disconnected,
            Some(crate::discord::render::message::truncate(
                why,
                ERROR_TEXT_MAX,
            )),
            retry_in,
        );
    }

    /// This replica does not run the gateway: `why` says who does, or that it never will.
    pub fn set_standby(&self, why: &str) {
        self.set(GatewayState::Standby, Some(why.to_owned()), None);
    }

    fn set_connecting(&self) {
        self.reached.store(false, Ordering::Relaxed);
        self.set(GatewayState::Connecting, None, None);
    }
}

/// Exponential backoff with jitter: waits of half to all of 1 s, 2 s, 4 s … capped at 60 s.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            next: BACKOFF_START,
        }
    }

    fn reset(&mut self) {
        self.next = BACKOFF_START;
    }

    /// The wait before the next attempt; replicas that lost Discord together do not retry in
    /// step.
    fn next_wait(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        base.mul_f64(rand::random_range(0.5..=1.0))
    }
}

/// Keeps the gateway connected until `shutdown`: each failed or ended connection is logged,
/// recorded in `status`, and retried after a backoff. Never returns an error.
pub async fn supervise_gateway(
    settings: GatewaySettings,
    desk: Desk,
    status: Arc<GatewayStatus>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new();
    loop {
        status.set_connecting();
        let result = connect(&settings, desk.clone(), status.clone(), shutdown.clone()).await;
        if shutdown.is_cancelled() {
            status.set_disconnected("opsbot is shutting down", None);
            return;
        }
        let why = match result {
            Ok(()) => "the gateway connection ended".to_owned(),
            Err(e) => format!("{e:#}"),
        };
        let why = redact(&why, &settings.token);
        if status.reached.load(Ordering::Relaxed) {
            backoff.reset();
        }
        let wait = backoff.next_wait();
        tracing::warn!(
            error = %why,
            retry_in_seconds = wait.as_secs_f64(),
            "Discord gateway not connected; retrying (everything else keeps running)"
        );
        status.set_disconnected(&why, Some(wait));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => {
                status.set_disconnected("opsbot is shutting down", None);
                return;
            }
        }
    }
}

/// Runs one gateway connection until `shutdown` is cancelled or it fails (no retry; see
/// [`supervise_gateway`] for the supervised loop `opsbot run` uses).
pub async fn run_gateway(
    settings: GatewaySettings,
    desk: Desk,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    connect(&settings, desk, GatewayStatus::connecting(), shutdown).await
}

/// One connection: builds the framework and client, registers the commands on READY and
/// runs until shutdown, a fatal gateway error, or a failed registration (which ends this
/// connection so that the supervisor tries again).
async fn connect(
    settings: &GatewaySettings,
    desk: Desk,
    status: Arc<GatewayStatus>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let attempt = shutdown.child_token();
    let setup_failure: Arc<Mutex<Option<String>>> = Arc::default();
    let guild_ids = settings.guild_ids.clone();
    let (end_attempt, failure) = (attempt.clone(), setup_failure.clone());
    let framework = poise::Framework::builder()
        .options(framework_options())
        .setup(move |ctx, ready, framework| {
            Box::pin(async move {
                tracing::info!(user = %ready.user.name, guilds = ready.guilds.len(), "connected to Discord");
                let commands = &framework.options().commands;
                let registered = register(ctx, commands, &guild_ids).await;
                if let Err(e) = &registered {
                    // Without registered commands (and without Data) the bot cannot answer:
                    // end this connection and let the supervisor try again.
                    if let Ok(mut failure) = failure.lock() {
                        *failure = Some(format!("registering commands failed: {e}"));
                    }
                    end_attempt.cancel();
                }
                registered?;
                status.set_connected();
                Ok(Data {
                    desk,
                    gateway: status,
                })
            })
        })
        .build();
    let intents = serenity::GatewayIntents::GUILDS;
    let mut client = serenity::ClientBuilder::new_with_http(http_client(settings), intents)
        .type_map_insert::<super::invocation::Door>(settings.source)
        .framework(framework)
        .await?;
    let shard_manager = client.shard_manager.clone();
    let stopper = attempt.clone();
    let watcher = tokio::spawn(async move {
        stopper.cancelled().await;
        shard_manager.shutdown_all().await;
    });
    let result = client.start_autosharded().await;
    watcher.abort();
    let failure = setup_failure.lock().ok().and_then(|mut f| f.take());
    match (result, failure) {
        (_, Some(failure)) => Err(anyhow::anyhow!(failure)),
        (result, None) => Ok(result?),
    }
}

async fn register(
    ctx: &serenity::Context,
    commands: &[super::Command],
    guild_ids: &[u64],
) -> Result<(), CommandError> {
    if guild_ids.is_empty() {
        tracing::warn!(
            "no [discord] guild_ids configured: registering commands globally (Discord may take up to an hour to show them)"
        );
        poise::builtins::register_globally(ctx, commands)
            .await
            .map_err(CommandError::internal)?;
    }
    for guild in guild_ids {
        poise::builtins::register_in_guild(ctx, commands, serenity::GuildId::new(*guild))
            .await
            .map_err(CommandError::internal)?;
        tracing::info!(guild, commands = commands.len(), "registered commands");
    }
    Ok(())
}

/// Gateway events that change the connection's state (the first READY runs the setup).
pub(super) fn observe(status: &GatewayStatus, event: &serenity::FullEvent) {
    use serenity::ConnectionStage;
    match event {
        serenity::FullEvent::Ready { .. } | serenity::FullEvent::Resume { .. } => {
            status.set_connected();
        }
        serenity::FullEvent::ShardStageUpdate { event } => {
            if event.new == ConnectionStage::Connected {
                status.set_connected();
            } else if event.old == ConnectionStage::Connected {
                status.set_disconnected(
                    &format!("connection lost ({:?}); reconnecting", event.new),
                    None,
                );
            }
        }
        _ => {}
    }
}

/// `text` without the bot token (error chains may quote requests).
fn redact(text: &str, token: &str) -> String {
    if token.is_empty() {
        return text.to_owned();
    }
    text.replace(token, "[token]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute_with_jitter_and_resets() {
        let mut backoff = Backoff::new();
        let waits: Vec<Duration> = (0..10).map(|_| backoff.next_wait()).collect();
        assert!(waits[0] >= Duration::from_millis(500) && waits[0] <= BACKOFF_START);
        assert!(waits[3] >= Duration::from_secs(4) && waits[3] <= Duration::from_secs(8));
        assert!(waits.iter().all(|w| *w <= BACKOFF_MAX));
        assert!(waits[9] >= BACKOFF_MAX / 2);
        backoff.reset();
        assert!(backoff.next_wait() <= BACKOFF_START);
    }

    #[test]
    fn the_summary_says_what_readyz_shows() {
        let status = GatewayStatus::connecting();
        assert_eq!(status.summary(), "connecting");
        status.set_disconnected("HTTP 500 on /gateway/bot", Some(Duration::from_secs(8)));
        assert_eq!(
            status.summary(),
            "disconnected (retrying in 8s: HTTP 500 on /gateway/bot)"
        );
        assert!(!status.is_connected());
        status.set_connected();
        assert_eq!(status.summary(), "connected");
        assert!(status.is_connected());
        assert_eq!(GatewayStatus::disabled().summary(), "disabled (no token)");
    }

    #[test]
    fn errors_lose_the_token() {
        assert_eq!(
            redact("GET https://x/?t=sekrit failed: sekrit", "sekrit"),
            "GET https://x/?t=[token] failed: [token]"
        );
    }
}
