//! What the fault scenarios share: the real `opsbot run` binary against the emulator and a
//! private PostgreSQL, and a way to type a command and wait for its answer.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use opsbot::emulator::{EMULATOR_TOKEN, Emulator, EmulatorEvent, GuildSpec};
use tokio::process::Child;
use tokio::sync::broadcast;
use tokio::time::Instant;

/// The announcements channel (`[channels] deploys`) of every fault config.
pub const DEPLOYS: u64 = 111_000_000_000_000_111;
/// `[channels] alerts` of every fault config.
pub const ALERTS: u64 = 333_000_000_000_000_333;
/// How long the harness waits for the bot to start or come back before failing the test.
pub const PATIENCE: Duration = Duration::from_secs(60);
/// How long a typed command may go unanswered before it counts as lost. Discord gives the
/// bot 3 s for the first answer; more than this is not a slow answer but none.
pub const ANSWER_WAIT: Duration = Duration::from_secs(10);

pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
}

/// A config with `[roles] ops`, `[channels] deploys` and `alerts`, and `rest` (TOML
/// `[[services]]` tables and other sections), written to a temp dir that lives as long as
/// the returned handle.
pub fn config_file(rest: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("config dir");
    let path = dir.path().join("opsbot.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[roles]
ops = ["deploy:*", "audit:*"]
[channels]
deploys = {DEPLOYS}
alerts = {ALERTS}
{rest}
"#
        ),
    )
    .expect("write config");
    (dir, path)
}

/// The emulated guild for [`config_file`]: role `ops`, channels `#deploys` and `#alerts`.
pub fn guild() -> GuildSpec {
    GuildSpec {
        roles: vec!["ops".to_owned()],
        channels: vec![
            (DEPLOYS, "deploys".to_owned()),
            (ALERTS, "alerts".to_owned()),
        ],
        ..GuildSpec::default()
    }
}

/// One `opsbot run` process; its log (JSON lines) goes to a file read by [`Opsbot::log`].
pub struct Opsbot {
    pub http: SocketAddr,
    pub child: Child,
    log: PathBuf,
}

impl Opsbot {
    /// Starts `opsbot run --config config` on `database_url`, connected to `emulator`.
    pub fn start(config: &Path, database_url: &str, emulator: &Emulator, log: &Path) -> Opsbot {
        let http = free_addr();
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_opsbot"))
            .args(["run", "--log-format", "json", "--config"])
            .arg(config)
            .env("DATABASE_URL", database_url)
            .env("OPSBOT_HTTP_LISTEN", http.to_string())
            .env("OPSBOT_DISCORD_TOKEN", EMULATOR_TOKEN)
            .env("OPSBOT_DISCORD_API_BASE", emulator.base_url())
            .env(
                "OPSBOT_DISCORD_GUILD_IDS",
                format!("[{}]", emulator.guild_id()),
            )
            .env_remove("OPSBOT_CONFIG")
            .env("RUST_LOG", "info")
            .current_dir(env!("CARGO_TARGET_TMPDIR"))
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .expect("start opsbot run");
        Opsbot {
            http,
            child,
            log: log.to_owned(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `(status, body)` of `GET path`, if the server answers.
    pub async fn get(&self, client: &reqwest::Client, path: &str) -> Option<(u16, String)> {
        let response = client
            .get(format!("http://{}{path}", self.http))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    /// Waits until `/readyz` answers 200 with the gateway connected.
    pub async fn wait_ready(&self, client: &reqwest::Client) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some((200, body)) = self.get(client, "/readyz").await
                && body.contains("gateway: connected")
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "opsbot never became ready; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits for the exit; returns the exit code.
    pub async fn terminate(mut self) -> Option<i32> {
        if let Some(pid) = self.child.id() {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        tokio::time::timeout(Duration::from_secs(40), self.child.wait())
            .await
            .expect("opsbot exits after SIGTERM")
            .expect("exit status")
            .code()
    }
}

/// What the bot answered to one typed line.
#[derive(Debug, Clone)]
pub struct Answer {
    pub interaction: u64,
    pub line: String,
    pub content: String,
    /// From typing the line to the answer.
    pub took: Duration,
    pub at: Instant,
}

impl Answer {
    /// The answer says the database is unavailable and to try again.
    pub fn is_try_again(&self) -> bool {
        self.content.starts_with('❌') && self.content.contains("try again")
    }
}

/// Types `line` as `member` in `channel` and waits (at most [`ANSWER_WAIT`]) for the reply;
/// `None` when the bot never answered. `events` must be subscribed before the call.
pub async fn ask(
    emulator: &Emulator,
    events: &mut broadcast::Receiver<EmulatorEvent>,
    member: u64,
    channel: u64,
    line: &str,
) -> Result<Option<Answer>, String> {
    let typed = Instant::now();
    let interaction = emulator
        .type_line(member, channel, line)
        .map_err(|e| e.to_string())?;
    let deadline = typed + ANSWER_WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => return Ok(None),
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(broadcast::error::RecvError::Closed)) => return Ok(None),
            Ok(Ok(event)) => {
                if event.interaction_id == Some(interaction)
                    && matches!(event.event, "reply" | "edit")
                {
                    return Ok(Some(Answer {
                        interaction,
                        line: line.to_owned(),
                        content: event.content,
                        took: typed.elapsed(),
                        at: Instant::now(),
                    }));
                }
            }
        }
    }
}

/// Polls `probe` until it returns `Some`, at most `within`; panics naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `opsbot audit verify` against `database_url`: (exit code, stdout + stderr).
pub async fn audit_verify(database_url: &str) -> (Option<i32>, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_opsbot"))
        .args(["audit", "verify"])
        .env("DATABASE_URL", database_url)
        .env_remove("OPSBOT_CONFIG")
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .await
        .expect("opsbot audit verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}
