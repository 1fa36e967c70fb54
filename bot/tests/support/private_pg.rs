//! A private PostgreSQL for fault tests: `initdb` into a temp dir and `postgres` on a free
//! loopback port, which the test may stop (fast or immediate, as a crash would), start
//! again on the same port, or make read-only. The machine's shared server is never touched.
//!
//! As root the server runs as the `postgres` user (PostgreSQL refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sqlx::Connection as _;
use tokio::process::{Child, Command};

/// How long a fresh or restarted server may take to accept connections (well under a
/// second here; crash recovery of a small cluster too).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How the server is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT: clients are disconnected, committed work is flushed (`pg_ctl -m fast`).
    Fast,
    /// SIGQUIT: every process exits at once; the next start runs crash recovery
    /// (`pg_ctl -m immediate`, what a power cut or an OOM kill looks like to clients).
    Immediate,
}

#[derive(Debug)]
pub struct PrivatePostgres {
    /// Holds the data directory (`data/`), the socket and the log; removed on drop.
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    owner: Option<(u32, u32)>,
    child: Option<Child>,
    /// A tmpfs mounted on `data/` (see [`PrivatePostgres::start_on_tmpfs`]).
    tmpfs: bool,
}

impl PrivatePostgres {
    /// Initialises a cluster and starts it.
    pub async fn start() -> PrivatePostgres {
        PrivatePostgres::init(None).await
    }

    /// The same on a tmpfs of `megabytes` mounted on the data directory, so that the test
    /// can fill the disk. `None` when this process may not mount (not root, or no tmpfs).
    pub async fn start_on_tmpfs(megabytes: u32) -> Option<PrivatePostgres> {
        if !nix::unistd::geteuid().is_root() {
            return None;
        }
        Some(PrivatePostgres::init(Some(megabytes)).await)
    }

    async fn init(tmpfs: Option<u32>) -> PrivatePostgres {
        let bin = server_binaries();
        let owner = if nix::unistd::geteuid().is_root() {
            let user = nix::unistd::User::from_name("postgres")
                .ok()
                .flatten()
                .expect("running as root needs a `postgres` user for the private server");
            Some((user.uid.as_raw(), user.gid.as_raw()))
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("opsbot-faults-pg")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        let mut mounted = false;
        if let Some(megabytes) = tmpfs {
            let (uid, gid) = owner.unwrap_or((0, 0));
            let status = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o"])
                .arg(format!("size={megabytes}m,mode=0700,uid={uid},gid={gid}"))
                .arg("tmpfs")
                .arg(&data)
                .status()
                .expect("run mount");
            assert!(status.success(), "mount -t tmpfs on {}", data.display());
            mounted = true;
        }
        if let Some((uid, gid)) = owner {
            for path in [dir.path(), data.as_path()] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown to postgres");
            }
        }
        let mut server = PrivatePostgres {
            dir,
            bin,
            port: free_port(),
            owner,
            child: None,
            tmpfs: mounted,
        };
        let output = server
            .command("initdb")
            .arg("-D")
            .arg(server.data_dir())
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
            .expect("run initdb");
        assert!(
            output.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        server.start_again().await;
        server
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid).current_dir("/");
        }
        command
    }

    /// Starts the server on its port (after [`PrivatePostgres::stop`]) and waits until it
    /// accepts connections; returns when it does.
    pub async fn start_again(&mut self) -> tokio::time::Instant {
        assert!(self.child.is_none(), "the private server already runs");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("server log");
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-p"])
            .arg(self.port.to_string())
            // Enough for a few opsbot processes (each pools 10 by default) and the test.
            .args(["-c", "max_connections=60"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(false)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        let started = tokio::time::Instant::now();
        loop {
            if sqlx::PgConnection::connect(&self.url()).await.is_ok() {
                return tokio::time::Instant::now();
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "the private postgres exited at start ({status}): {}",
                    self.log()
                );
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "the private postgres did not start: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the server and waits until it has exited.
    pub async fn stop(&mut self, how: Stop) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let signal = match how {
            Stop::Fast => nix::sys::signal::Signal::SIGINT,
            Stop::Immediate => nix::sys::signal::Signal::SIGQUIT,
        };
        if let Some(pid) = child.id() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
        }
        if tokio::time::timeout(READY_TIMEOUT, child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }

    /// Runs `sql` as the superuser on a connection of its own.
    pub async fn execute(&self, sql: &str) {
        let mut connection = sqlx::PgConnection::connect(&self.url())
            .await
            .expect("connect to the private postgres");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut connection)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Fills the data directory's file system (writes until it is full), then frees
    /// `leave_kib` KiB of it again; returns the filler file, which the test removes to
    /// clear the fault.
    pub fn fill_disk(&self, leave_kib: u64) -> PathBuf {
        use std::io::Write as _;
        let filler = self.data_dir().join("filler");
        let mut file = std::fs::File::create(&filler).expect("filler");
        // tmpfs allocates on write: write the bytes rather than set_len (a sparse file).
        let chunk = vec![0u8; 64 * 1024];
        let mut written: u64 = 0;
        while let Ok(n) = file.write(&chunk) {
            if n == 0 {
                break;
            }
            written += n as u64;
        }
        file.set_len(written.saturating_sub(leave_kib * 1024))
            .expect("shrink the filler");
        filler
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if let Some(pid) = self.child.as_ref().and_then(Child::id) {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT);
            // Wait (briefly) so that the data directory is not removed under it.
            for _ in 0..200 {
                if nix::sys::signal::kill(pid, None).is_err() {
                    break;
                }
                if let Ok(
                    nix::sys::wait::WaitStatus::Exited(..)
                    | nix::sys::wait::WaitStatus::Signaled(..),
                ) = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG))
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if self.tmpfs {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.data_dir())
                .status();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// `initdb` and `postgres`: `pg_config --bindir`, else Debian's newest.
fn server_binaries() -> PathBuf {
    if let Ok(output) = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if has_server(&dir) {
            return dir;
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .find(|dir| has_server(dir))
        .expect("fault tests need the PostgreSQL server binaries (apt install postgresql)")
}

fn has_server(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}
