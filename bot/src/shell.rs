//! `opsbot shell [--user NAME] [--roles R1,R2] [--json] [--verbose]`: the whole bot (the same poise
//! commands, HTTP server, sealer and outbox dispatcher as `opsbot run`) wired to the built-in
//! Discord emulator. Type lines as in Discord's client:
//!
//! ```text
//! /audit recent count:5
//! :as bo dev          switch to member bo, with role dev
//! :in general         switch channel (a name, an id, or `new`)
//! :click Older        press a button on the newest message that has it
//! :select Silence 4h  pick an option in the menu (by its placeholder) of the newest message
//! :write checkout is down             write a plain message here (for :apps to act on)
//! :apps Declare incident              a message command (Apps menu) on the newest message here
//! :modal title="API down" severity=sev1   fill in and submit the form the bot opened
//! :complete /deploy run service:      the autocomplete choices for the last option
//! ```
//!
//! Replies, posts, edits, created channels and messages Discord would refuse (`refused`, with
//! the reason) print as text with Discord's markup rendered ([`markdown`]), or with `--json` as one JSON
//! object per line (`event`, `input`, `channel`, `content`, `embeds`, `components`,
//! `attachments`). At a terminal the prompt returns only after the answer ([`terminal`]) and
//! log lines go to [`LOG_FILE`] (`--verbose`: stderr). At end of input it waits for answers
//! still due, shuts down like `opsbot run` (the audit chain is sealed) and exits 0.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Secret};
use crate::discord::GatewaySettings;
use crate::emulator::{Emulator, GuildSpec};
use crate::run::{HttpBind, Services};

mod forms;
mod markdown;
mod output;
mod suggest;
mod terminal;

pub use markdown::{Style, Zone};
pub use output::{ATTACHMENTS_DIR, event_json, event_text, save_attachments};

use terminal::Screen;

/// Where an interactive shell writes its log lines (`--verbose`: stderr).
pub const LOG_FILE: &str = ".opsbot/shell.log";

/// How long the shell waits at end of input for answers still due.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// After the last answer, time for background work (outbox posts) to show before shutdown.
const BACKGROUND_GRACE: Duration = Duration::from_millis(300);
/// How long it waits for the bot to connect to the emulator at start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The emulated guild for `config`: its roles, and the channels it refers to, with their ids.
pub fn guild_spec(config: &Config) -> GuildSpec {
    let channels = &config.channels;
    GuildSpec {
        guild_id: config
            .discord
            .guild_ids
            .first()
            .copied()
            .unwrap_or(GuildSpec::default().guild_id),
        name: GuildSpec::default().name,
        roles: config.roles.keys().cloned().collect(),
        channels: [
            ("deploys", channels.deploys),
            ("incidents", channels.incidents),
            ("alerts", channels.alerts),
        ]
        .into_iter()
        .filter_map(|(name, id)| id.map(|id| (id, name.to_owned())))
        .collect(),
        category: channels
            .incident_category
            .map(|id| (id, "incidents".to_owned())),
    }
}

#[derive(Debug, Clone)]
pub struct ShellOptions {
    pub user: String,
    pub roles: Vec<String>,
    pub json: bool,
    /// Where the log lines go instead of stderr (interactive use without `--verbose`).
    pub log_file: Option<std::path::PathBuf>,
}

/// Lines typed so far whose interaction has not been answered, by interaction id.
type Pending = Arc<Mutex<BTreeMap<u64, String>>>;

pub async fn shell(config: Config, options: ShellOptions) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let emulator = Emulator::start(guild_spec(&config), shutdown.clone()).await?;
    let gateway = GatewaySettings {
        token: emulator.token().to_owned(),
        guild_ids: vec![emulator.guild_id()],
        api_base: emulator.base_url().to_owned(),
        source: opsbot_commands::Source::Shell,
    };
    // The dashboard's "Log in with Discord" goes to the emulator too: its consent page lets
    // you pick the member to log in as.
    let mut config = config;
    let (client_id, client_secret) = emulator.oauth_client();
    config.discord.api_base = emulator.base_url().to_owned();
    config.discord.token = Some(Secret::new(emulator.token()));
    config.discord.guild_ids = vec![emulator.guild_id()];
    config.discord.client_id = client_id.parse().ok();
    config.discord.client_secret = Some(Secret::new(client_secret));
    let services =
        Services::start(&config, Some(gateway), HttpBind::Optional, shutdown.clone()).await?;
    if let Some(addr) = services.http_addr {
        tracing::info!(
            "dashboard: http://{addr}/ (log in with Discord: the emulator lets you pick a member)"
        );
    }
    let started = tokio::time::Instant::now();
    while !emulator.commands_registered() {
        if started.elapsed() > CONNECT_TIMEOUT || shutdown.is_cancelled() {
            let gateway = services.gateway.summary();
            services.stop().await?;
            anyhow::bail!(
                "the bot did not connect to the emulator within {}s (gateway: {gateway})",
                CONNECT_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let pending: Pending = Arc::default();
    let interactive = std::io::stdin().is_terminal();
    let (mut lines, screen) = terminal::open(interactive).await;
    let printer = tokio::spawn(print_events(
        emulator.clone(),
        pending.clone(),
        options.json,
        screen.clone(),
    ));
    let mut session = Session {
        emulator: emulator.clone(),
        member: emulator.member(&options.user, Some(&options.roles)),
        member_name: options.user.clone(),
        channel: emulator
            .find_channel("general")
            .map(|c| c.0)
            .unwrap_or_default(),
        pending: pending.clone(),
        json: options.json,
        screen,
    };
    if interactive {
        let logs = match &options.log_file {
            Some(path) => format!(" Logs go to {}.", path.display()),
            None => String::new(),
        };
        eprintln!(
            "opsbot shell: you are {} in #general. Type /commands as in Discord, :help for more, Ctrl-D to quit.{logs}",
            options.user
        );
    }
    loop {
        let line = tokio::select! {
            line = lines.next() => line,
            _ = shutdown.cancelled() => None,
        };
        let Some(line) = line else { break };
        if session.handle(line.trim()).await == Flow::Quit {
            break;
        }
    }
    // Bounded wait for answers still due, then a short grace for background posts.
    wait_until_answered(&pending, None).await;
    tokio::time::sleep(BACKGROUND_GRACE).await;
    let result = services.stop().await;
    printer.abort();
    result
}

/// Waits (at most [`SETTLE_TIMEOUT`]) until `interaction` (or, with `None`, every typed line)
/// has been answered. Returns whether it was.
async fn wait_until_answered(pending: &Pending, interaction: Option<u64>) -> bool {
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    loop {
        let waiting = pending
            .lock()
            .map(|p| match interaction {
                Some(id) => p.contains_key(&id),
                None => !p.is_empty(),
            })
            .unwrap_or(false);
        if !waiting {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

struct Session {
    emulator: Emulator,
    member: u64,
    member_name: String,
    channel: u64,
    pending: Pending,
    json: bool,
    screen: Screen,
}

const HELP: &str = "\
/command sub option:value ...   run a slash command (quote values with spaces: reason:\"a b\")
:as NAME [ROLE,ROLE]            act as another member (created on first use; roles replace theirs)
:in CHANNEL                     switch channel: a name, an id, or `new` (the newest channel)
:click LABEL                    press the button with that label on the newest message that has one
:select MENU OPTION             pick OPTION in the menu whose placeholder starts with MENU (e.g. :select Silence 4h)
:write TEXT                     write a plain message in this channel (for :apps to act on)
:apps COMMAND [MESSAGE_ID]      run a message command (Apps menu), on the newest message here by default
:modal FIELD=VALUE ...          fill in and submit the open form (quote values with spaces: title=\"API down\")
:complete /command ... option:  the autocomplete choices for the last option of the line
:channels                       list channels
:sleep SECONDS                  wait (for background work)
:help                           this text
:quit                           leave (so does end of input)";

impl Session {
    async fn handle(&mut self, line: &str) -> Flow {
        if line.is_empty() || line.starts_with('#') {
            return Flow::Continue;
        }
        if line.starts_with('/') {
            match self.emulator.type_line(self.member, self.channel, line) {
                Ok(interaction) => self.await_answer(line, interaction).await,
                Err(e) => self.error(line, &e.to_string()),
            }
            return Flow::Continue;
        }
        let mut words = line.split_whitespace();
        match words.next().unwrap_or_default() {
            ":help" => self.info(HELP),
            ":quit" | ":exit" => return Flow::Quit,
            ":click" => {
                let label = line[":click".len()..].trim();
                if label.is_empty() {
                    self.error(line, ":click needs a button label, e.g. `:click Approve`");
                } else {
                    match self.emulator.click(self.member, label) {
                        Ok(interaction) => self.await_answer(line, interaction).await,
                        Err(e) => self.error(line, &e.to_string()),
                    }
                }
            }
            ":select" => match (words.next(), words.collect::<Vec<_>>().join(" ")) {
                (Some(menu), option) if !option.is_empty() => {
                    match self.emulator.select(self.member, menu, &option) {
                        Ok(interaction) => self.await_answer(line, interaction).await,
                        Err(e) => self.error(line, &e.to_string()),
                    }
                }
                _ => self.error(
                    line,
                    ":select needs a menu and an option, e.g. `:select Silence 4h`",
                ),
            },
            ":as" => match words.next() {
                Some(name) => {
                    let roles: Option<Vec<String>> = words.next().map(|r| {
                        r.split(',')
                            .filter(|r| !r.is_empty())
                            .map(str::to_owned)
                            .collect()
                    });
                    self.member = self.emulator.member(name, roles.as_deref());
                    self.member_name = name.to_owned();
                    self.info(&format!("you are now {name}"));
                }
                None => self.error(line, ":as needs a member name, e.g. `:as ana ops`"),
            },
            ":in" => match words.next().and_then(|c| self.emulator.find_channel(c)) {
                Some((id, name)) => {
                    self.channel = id;
                    self.info(&format!("now in #{name}"));
                }
                None => {
                    let names: Vec<String> =
                        self.emulator.channels().into_iter().map(|c| c.1).collect();
                    self.error(
                        line,
                        &format!("no such channel; channels: {}", names.join(", ")),
                    );
                }
            },
            ":channels" => {
                let list: Vec<String> = self
                    .emulator
                    .channels()
                    .into_iter()
                    .map(|(id, name, _)| format!("#{name} ({id})"))
                    .collect();
                self.info(&list.join("\n"));
            }
            ":write" | ":apps" | ":modal" | ":complete" => self.forms_line(line).await,
            ":sleep" => match words
                .next()
                .and_then(|s| s.parse::<f64>().ok())
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
            {
                Some(d) => tokio::time::sleep(d).await,
                None => self.error(line, ":sleep needs a number of seconds, e.g. `:sleep 2`"),
            },
            other => self.error(line, &suggest::unknown_shell_command(other)),
        }
        Flow::Continue
    }

    /// One line at a time, as a person types: waits for the answer before the next line.
    async fn await_answer(&self, line: &str, interaction: u64) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(interaction, line.to_owned());
        }
        if !wait_until_answered(&self.pending, Some(interaction)).await {
            self.error(
                line,
                &format!(
                    "the bot did not answer within {}s",
                    SETTLE_TIMEOUT.as_secs()
                ),
            );
        }
    }

    fn info(&self, text: &str) {
        if !self.json {
            self.screen.line(text);
        }
    }

    fn error(&self, input: &str, message: &str) {
        if self.json {
            self.screen
                .line(&json!({ "event": "error", "input": input, "content": message }).to_string());
        } else {
            let style = Style::for_stdout();
            self.screen
                .line(&format!("{} {message}", style.paint("31", "error:", "39")));
        }
    }
}

/// Prints everything the emulator reports, pairing answers with the lines they answer. A line
/// counts as answered once its answer is printed, so the prompt never comes before it.
async fn print_events(emulator: Emulator, pending: Pending, json: bool, screen: Screen) {
    let mut events = emulator.subscribe();
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "shell output fell behind");
                continue;
            }
            Err(_) => return,
        };
        // A form popping up or autocomplete choices answer the line too; a form's submit is
        // answered on the line that opened it (see `:modal`).
        let answers = matches!(event.event, "reply" | "edit" | "modal" | "choices");
        let input = event.interaction_id.and_then(|id| {
            pending
                .lock()
                .ok()
                .and_then(|p| p.get(&id).cloned())
                .map(|line| (id, line))
        });
        let saved = save_attachments(&event, std::path::Path::new(ATTACHMENTS_DIR));
        let text = if json {
            event_json(&event, input.as_ref().map(|(_, l)| l.as_str()), &saved).to_string()
        } else {
            event_text(&event, &saved, &emulator.names(), &Style::for_stdout())
        };
        screen.line(&text);
        if answers
            && let Some((id, _)) = input
            && let Ok(mut pending) = pending.lock()
        {
            pending.remove(&id);
        }
    }
}
