//! The test harness: the real poise bot connected to the emulator, driven by typed lines.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

pub mod alertmanager;
pub mod discord_spec;
pub mod prerequisites;
pub mod private_pg;

use std::collections::BTreeMap;
use std::time::Duration;

use opsbot::config::Config;
use opsbot::discord::{GatewaySettings, run_gateway};
use opsbot::emulator::{Emulator, EmulatorEvent, GuildSpec};
use opsbot::run::{HttpBind, Services};
use opsbot_commands::Desk;
use opsbot_commands::access::RoleMap;
use sqlx::PgPool;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// How long a test waits for the bot to answer before failing (it answers in milliseconds).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a test waits for background work (a deploy's thread, its outcome) to show in
/// the emulator's state: generous, because a busy 2-core machine runs many test binaries.
pub const STATE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct TestBot {
    pub emulator: Emulator,
    pub pool: PgPool,
    events: broadcast::Receiver<EmulatorEvent>,
    shutdown: CancellationToken,
    pub general: u64,
    /// With [`TestBot::with_config`]: everything `opsbot run` starts.
    pub services: Option<Services>,
}

impl TestBot {
    /// Starts the emulator and the bot with `[roles]` = `roles`, and waits until the bot
    /// has registered its commands.
    pub async fn start(pool: PgPool, roles: &[(&str, &[&str])]) -> TestBot {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let shutdown = CancellationToken::new();
        let role_map: BTreeMap<String, Vec<String>> = roles
            .iter()
            .map(|(name, grants)| {
                (
                    name.to_string(),
                    grants.iter().map(|g| g.to_string()).collect(),
                )
            })
            .collect();
        let spec = GuildSpec {
            roles: role_map.keys().cloned().collect(),
            ..GuildSpec::default()
        };
        let emulator = Emulator::start(spec, shutdown.clone())
            .await
            .expect("emulator");
        let events = emulator.subscribe();
        let desk = Desk::new(pool.clone(), RoleMap::new(role_map).expect("roles"));
        let settings = GatewaySettings {
            token: emulator.token().to_owned(),
            guild_ids: vec![emulator.guild_id()],
            api_base: emulator.base_url().to_owned(),
            source: opsbot_commands::Source::Discord,
        };
        tokio::spawn(run_gateway(settings, desk, shutdown.clone()));
        let started = tokio::time::Instant::now();
        while !emulator.commands_registered() {
            assert!(
                started.elapsed() < ANSWER_TIMEOUT,
                "the bot never registered its commands"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let general = emulator.find_channel("general").expect("general").0;
        TestBot {
            emulator,
            pool,
            events,
            shutdown,
            general,
            services: None,
        }
    }

    /// The whole bot as `opsbot shell` runs it (HTTP server, sealer, dispatcher, deploy
    /// tracker, gateway) on the config `toml`, against the test's database.
    pub async fn with_config(pool: PgPool, toml: &str) -> TestBot {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let file = tempfile::NamedTempFile::new().expect("config file");
        std::fs::write(file.path(), toml).expect("write config");
        let env = BTreeMap::from([("DATABASE_URL".to_owned(), database_url(&pool))]);
        let config = Config::load_with_env(Some(file.path()), &env)
            .unwrap_or_else(|e| panic!("config: {e}"));
        let shutdown = CancellationToken::new();
        let emulator = Emulator::start(opsbot::shell::guild_spec(&config), shutdown.clone())
            .await
            .expect("emulator");
        let events = emulator.subscribe();
        let settings = GatewaySettings {
            token: emulator.token().to_owned(),
            guild_ids: vec![emulator.guild_id()],
            api_base: emulator.base_url().to_owned(),
            source: opsbot_commands::Source::Discord,
        };
        let services = Services::start(
            &config,
            Some(settings),
            HttpBind::Optional,
            shutdown.clone(),
        )
        .await
        .expect("services");
        let started = tokio::time::Instant::now();
        while !emulator.commands_registered() {
            assert!(
                started.elapsed() < ANSWER_TIMEOUT,
                "the bot never registered its commands"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let general = emulator.find_channel("general").expect("general").0;
        TestBot {
            emulator,
            pool,
            events,
            shutdown,
            general,
            services: Some(services),
        }
    }

    /// The next event matching `matches`, waiting at most [`ANSWER_TIMEOUT`].
    pub async fn next_event(
        &mut self,
        what: &str,
        matches: impl Fn(&EmulatorEvent) -> bool,
    ) -> EmulatorEvent {
        let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("{what}: not seen within {}s", ANSWER_TIMEOUT.as_secs()))
                .expect("event stream");
            if matches(&event) {
                return event;
            }
        }
    }

    /// Polls the emulator's state until `found` returns something, for at most
    /// [`STATE_TIMEOUT`]: the real condition, not an event that may already have gone by.
    pub async fn wait_for<T>(&self, what: &str, found: impl Fn(&Emulator) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + STATE_TIMEOUT;
        loop {
            if let Some(value) = found(&self.emulator) {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not there after {}s",
                STATE_TIMEOUT.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types `line` as member `name` (created with `roles`) in #general and returns the
    /// bot's answer to it (its reply, or the edit that fills a deferred reply).
    pub async fn say(&mut self, name: &str, roles: &[&str], line: &str) -> EmulatorEvent {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        let member = self.emulator.member(name, Some(&roles));
        let interaction = self
            .emulator
            .type_line(member, self.general, line)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        self.answer_to(interaction).await
    }

    /// Presses the button labelled `label` as member `name`; returns the bot's answer.
    pub async fn click(&mut self, name: &str, label: &str) -> EmulatorEvent {
        let member = self.emulator.member(name, None);
        let interaction = self
            .emulator
            .click(member, label)
            .unwrap_or_else(|e| panic!(":click {label}: {e}"));
        self.answer_to(interaction).await
    }

    pub async fn answer_to(&mut self, interaction: u64) -> EmulatorEvent {
        let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .expect("the bot did not answer in time")
                .expect("event stream");
            if event.interaction_id == Some(interaction) && matches!(event.event, "reply" | "edit")
            {
                return event;
            }
        }
    }
}

impl Drop for TestBot {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The URL of the throwaway database `#[sqlx::test]` made for this test.
pub fn database_url(pool: &PgPool) -> String {
    let options = pool.connect_options();
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().expect("a database name")
    )
}
