//! A private PostgreSQL for a machine with no database configured: opsbot runs `initdb` once
//! into `.opsbot/pg` (`[database] embedded_dir`) and starts `postgres` there on a unix socket
//! only (no TCP port), and stops it on exit. A second opsbot process (say `opsbot audit tail`
//! beside `opsbot run`) finds the server already running and shares it.
//!
//! `initdb` refuses to run as root, so as root the server runs as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::process::{Child, Command};

/// The user the server runs as when opsbot runs as root.
const UNPRIVILEGED_USER: &str = "postgres";

/// How long a fresh server may take to accept connections (it takes ~0.1 s here).
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a fast shutdown may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Socket paths longer than this do not fit `sockaddr_un` (108 bytes with the file name).
const MAX_SOCKET_DIR_LEN: usize = 90;

/// A server opsbot started (and will stop), or found running and shares.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    socket_dir: PathBuf,
    child: Option<Child>,
}

impl EmbeddedPostgres {
    /// Starts the server in `data_dir` (initialising it on first use), or reuses a running one.
    pub async fn start(data_dir: &Path) -> anyhow::Result<EmbeddedPostgres> {
        let data_dir = std::path::absolute(data_dir)
            .with_context(|| format!("resolving {}", data_dir.display()))?;
        let socket_dir = socket_dir_for(&data_dir);
        let mut server = EmbeddedPostgres {
            socket_dir,
            child: None,
        };
        if server.answers().await {
            tracing::info!(data_dir = %data_dir.display(), "sharing the embedded PostgreSQL already running there");
            return Ok(server);
        }
        let bin = find_server_binaries()?;
        let owner = server_owner()?;
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        std::fs::create_dir_all(&server.socket_dir)
            .with_context(|| format!("creating {}", server.socket_dir.display()))?;
        if let Some((uid, gid)) = owner {
            for dir in [&data_dir, &server.socket_dir] {
                std::os::unix::fs::chown(dir, Some(uid.as_raw()), Some(gid.as_raw()))
                    .with_context(|| format!("handing {} to the postgres user", dir.display()))?;
            }
        }
        if !data_dir.join("PG_VERSION").exists() {
            tracing::info!(data_dir = %data_dir.display(), "initialising the embedded PostgreSQL (first start)");
            let output = as_owner(Command::new(bin.join("initdb")), owner)
                .args(["-D"])
                .arg(&data_dir)
                .args([
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-instructions",
                ])
                .output()
                .await
                .with_context(|| format!("running {}", bin.join("initdb").display()))?;
            if !output.status.success() {
                bail!(
                    "initdb failed for {}: {}",
                    data_dir.display(),
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
        }
        let log_path = data_dir.with_extension("log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let child = as_owner(Command::new(bin.join("postgres")), owner)
            .arg("-D")
            .arg(&data_dir)
            .arg("-k")
            .arg(&server.socket_dir)
            .args(["-c", "listen_addresses="])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(false)
            .spawn()
            .with_context(|| format!("starting {}", bin.join("postgres").display()))?;
        server.child = Some(child);
        let started = tokio::time::Instant::now();
        while !server.answers().await {
            if let Some(child) = server.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!(
                    "the embedded PostgreSQL exited at start ({status}); see {} for why",
                    log_path.display()
                );
            }
            if started.elapsed() > READY_TIMEOUT {
                server.stop().await;
                bail!(
                    "the embedded PostgreSQL did not accept connections within {}s; see {}",
                    READY_TIMEOUT.as_secs(),
                    log_path.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::info!(data_dir = %data_dir.display(), "embedded PostgreSQL started");
        Ok(server)
    }

    pub fn connect_options(&self) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.socket_dir)
            .username("postgres")
            .database("postgres")
    }

    async fn answers(&self) -> bool {
        PgConnection::connect_with(&self.connect_options())
            .await
            .is_ok()
    }

    /// Stops the server if this process started it (fast shutdown: clients are disconnected,
    /// committed data is safe), killing it if it does not stop in time.
    pub async fn stop(mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        }
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(_) => tracing::info!("embedded PostgreSQL stopped"),
            Err(_) => {
                tracing::warn!("embedded PostgreSQL did not stop in time; killing it");
                let _ = child.kill().await;
            }
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        // Reached only when `stop` was not awaited (an error path): do not leave a server behind.
        if let Some(pid) = self.child.as_ref().and_then(Child::id) {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        }
    }
}

/// The socket lives beside the data when the path is short enough, else under /tmp.
fn socket_dir_for(data_dir: &Path) -> PathBuf {
    if data_dir.as_os_str().len() <= MAX_SOCKET_DIR_LEN {
        data_dir.to_path_buf()
    } else {
        let digest = format!("{:x}", fnv1a(data_dir.as_os_str().as_encoded_bytes()));
        std::env::temp_dir().join(format!("opsbot-pg-{}", &digest[..12]))
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    // FNV-1a: a stable, short name for the socket directory; not security relevant.
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Finds `initdb` and `postgres`: `pg_config --bindir`, then Debian's and Homebrew's paths.
fn find_server_binaries() -> anyhow::Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(output) = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        && output.status.success()
    {
        candidates.push(PathBuf::from(
            String::from_utf8_lossy(&output.stdout).trim(),
        ));
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .collect();
        versions.sort_by_key(|p| {
            std::cmp::Reverse(
                p.parent()
                    .and_then(|v| v.file_name())
                    .and_then(|v| v.to_str())
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(0),
            )
        });
        candidates.extend(versions);
    }
    candidates.extend(["/usr/local/bin", "/opt/homebrew/bin", "/usr/bin"].map(PathBuf::from));
    candidates
        .into_iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no database is configured and no PostgreSQL server is installed to start one.\n\
                 Either set DATABASE_URL (or [database] url) to a running PostgreSQL, or install the server binaries:\n\
                 Debian/Ubuntu: apt install postgresql    Fedora: dnf install postgresql-server    macOS: brew install postgresql@15\n\
                 (looked for initdb and postgres via `pg_config --bindir`, in /usr/lib/postgresql/*/bin and on the usual paths)"
            )
        })
}

/// As root: the uid and gid of the unprivileged user the server must run as.
fn server_owner() -> anyhow::Result<Option<(nix::unistd::Uid, nix::unistd::Gid)>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    match nix::unistd::User::from_name(UNPRIVILEGED_USER) {
        Ok(Some(user)) => Ok(Some((user.uid, user.gid))),
        _ => bail!(
            "opsbot runs as root, and PostgreSQL refuses to: create a `{UNPRIVILEGED_USER}` user for it (installing the postgresql package does), run opsbot as another user, or set DATABASE_URL"
        ),
    }
}

fn as_owner(mut command: Command, owner: Option<(nix::unistd::Uid, nix::unistd::Gid)>) -> Command {
    if let Some((uid, gid)) = owner {
        // The server user may not be able to enter our working directory.
        command.uid(uid.as_raw()).gid(gid.as_raw()).current_dir("/");
    }
    command
}
