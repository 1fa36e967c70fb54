//! The `command` backend: a local process with the deploy as arguments and environment
//! variables. Exit code 0 is success; the last lines of output are kept. If opsbot dies while
//! a command runs, the restarted opsbot fails the deploy as "outcome unknown" and stops what
//! the command left running ([`leftovers`]).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{BackendEvent, DeployJob, Finish};

mod leftovers;

/// Lines of output kept for the deploy's detail (success) or failure reason.
pub const OUTPUT_TAIL_LINES: usize = 20;

/// Output is posted as progress at most this often (lines in between are merged), so a
/// chatty script cannot flood Discord.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub program: String,
    /// May contain `{service}`, `{version}`, `{environment}`, `{deploy_id}`, `{requested_by}`.
    pub args: Vec<String>,
    pub timeout: Duration,
    pub workdir: Option<PathBuf>,
}

/// After the command exits, how long output is still read from processes it left behind
/// holding its stdout/stderr (e.g. `cmd &`), so the outcome is not held up by them.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// Forwards each line of `stream` (invalid UTF-8 replaced, so odd output never stops the
/// reading and blocks the command on a full pipe).
async fn forward_lines(
    stream: Box<dyn AsyncRead + Send + Unpin>,
    lines: mpsc::UnboundedSender<String>,
) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                if lines
                    .send(line.trim_end_matches(['\n', '\r']).to_owned())
                    .is_err()
                {
                    break;
                }
            }
        }
    }
}

fn substitute(arg: &str, job: &DeployJob) -> String {
    arg.replace("{service}", &job.service)
        .replace("{version}", &job.version)
        .replace("{environment}", &job.environment)
        .replace("{deploy_id}", &job.deploy_id.to_string())
        .replace("{requested_by}", &job.requested_by)
}

fn tail_text(tail: &VecDeque<String>) -> String {
    tail.iter().cloned().collect::<Vec<_>>().join("\n")
}

pub async fn execute(
    spec: &CommandSpec,
    job: &DeployJob,
    checkpoint: Option<serde_json::Value>,
    events: mpsc::UnboundedSender<BackendEvent>,
    cancel: CancellationToken,
) -> Finish {
    if checkpoint.is_some() {
        // The process was a child of an opsbot that is gone: nobody saw how it ended, and if
        // that opsbot was killed outright, it may still be running.
        let left = match leftovers::stop(job.correlation_id).await {
            0 => String::new(),
            n => format!(" ({n} of its processes were still running and have been stopped)"),
        };
        return Finish::Failed {
            reason: format!(
                "opsbot restarted while the command was running{left}; its outcome is unknown — check the target and re-run the deploy"
            ),
        };
    }
    let mut command = Command::new(&spec.program);
    command
        .args(spec.args.iter().map(|a| substitute(a, job)))
        .env("OPSBOT_DEPLOY_ID", job.deploy_id.to_string())
        .env("OPSBOT_SERVICE", &job.service)
        .env("OPSBOT_VERSION", &job.version)
        .env("OPSBOT_ENVIRONMENT", &job.environment)
        .env("OPSBOT_REQUESTED_BY", &job.requested_by)
        .env("OPSBOT_IS_ROLLBACK", job.is_rollback.to_string())
        .env("OPSBOT_CORRELATION_ID", job.correlation_id.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    if let Some(dir) = &spec.workdir {
        command.current_dir(dir);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Finish::Failed {
                reason: format!(
                    "could not start `{}`: {e} (check [[services]] backend program and that it is executable)",
                    spec.program
                ),
            };
        }
    };
    if let Some(pid) = child.id() {
        let _ = events.send(BackendEvent::Checkpoint(serde_json::json!({ "pid": pid })));
    }
    let (lines_tx, mut lines) = mpsc::unbounded_channel::<String>();
    let streams: [Option<Box<dyn AsyncRead + Send + Unpin>>; 2] = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>),
    ];
    for stream in streams.into_iter().flatten() {
        tokio::spawn(forward_lines(stream, lines_tx.clone()));
    }
    drop(lines_tx);

    let mut tail: VecDeque<String> = VecDeque::with_capacity(OUTPUT_TAIL_LINES);
    let mut pending: Vec<String> = Vec::new();
    let mut flush = tokio::time::interval(PROGRESS_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = tokio::time::sleep(spec.timeout);
    tokio::pin!(deadline);
    let mut output_open = true;
    let mut exited: Option<std::io::Result<std::process::ExitStatus>> = None;
    // Once the command has exited, output still held open by something it left running in
    // the background is read only this much longer.
    let drain = tokio::time::sleep(Duration::MAX);
    tokio::pin!(drain);
    let status = loop {
        if let Some(status) = exited.take_if(|_| !output_open) {
            break status;
        }
        tokio::select! {
            line = lines.recv(), if output_open => match line {
                Some(line) => {
                    if tail.len() == OUTPUT_TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line.clone());
                    pending.push(line);
                }
                None => output_open = false,
            },
            _ = flush.tick() => {
                if !pending.is_empty() {
                    let _ = events.send(BackendEvent::Progress(pending.join("\n")));
                    pending.clear();
                }
            }
            status = child.wait(), if exited.is_none() => {
                exited = Some(status);
                drain.as_mut().reset(tokio::time::Instant::now() + OUTPUT_DRAIN);
            }
            () = &mut drain, if exited.is_some() => output_open = false,
            () = &mut deadline, if exited.is_none() => {
                kill_group(&mut child).await;
                return Finish::Failed {
                    reason: format!("timed out after {}; the command was killed\n{}", humantime::format_duration(spec.timeout), tail_text(&tail)),
                };
            }
            () = cancel.cancelled(), if exited.is_none() => {
                kill_group(&mut child).await;
                // Unlike a GitHub run, the process cannot outlive opsbot (it is our child and
                // `kill_on_drop`), so nothing could resume it: report the deploy as failed.
                return Finish::Failed {
                    reason: format!("opsbot shut down while the command was running; it was stopped\n{}", tail_text(&tail)),
                };
            }
        }
    };
    if !pending.is_empty() {
        let _ = events.send(BackendEvent::Progress(pending.join("\n")));
    }
    match status {
        Ok(status) if status.success() => Finish::Succeeded {
            detail: tail_text(&tail),
        },
        Ok(status) => Finish::Failed {
            reason: format!(
                "`{}` {}\n{}",
                spec.program,
                match status.code() {
                    Some(code) => format!("exited with code {code}"),
                    None => "was killed by a signal".to_owned(),
                },
                tail_text(&tail)
            ),
        },
        Err(e) => Finish::Failed {
            reason: format!("waiting for `{}` failed: {e}", spec.program),
        },
    }
}

/// Stops the command and everything it started (it leads its own process group).
async fn kill_group(child: &mut tokio::process::Child) {
    // The child leads its own group (`process_group(0)`), so its pid is the group id; never
    // signal a group that could be ours.
    if let Some(pid) = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .filter(|p| *p > 1)
        && nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid))).ok()
            == Some(nix::unistd::Pid::from_raw(pid))
        && nix::unistd::getpgrp() != nix::unistd::Pid::from_raw(pid)
    {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.kill().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(version: &str) -> DeployJob {
        DeployJob {
            deploy_id: 7,
            correlation_id: uuid::Uuid::nil(),
            service: "api".into(),
            version: version.into(),
            environment: "staging".into(),
            requested_by: "ana".into(),
            is_rollback: false,
        }
    }

    fn spec(script: &str, timeout: Duration) -> (tempfile::TempDir, CommandSpec) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("deploy.sh");
        std::fs::write(&path, format!("#!/usr/bin/env bash\n{script}\n")).expect("write");
        let mut perms = std::fs::metadata(&path).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&path, perms).expect("chmod");
        let spec = CommandSpec {
            program: path.display().to_string(),
            args: vec![
                "{service}".into(),
                "{version}".into(),
                "{environment}".into(),
                "{deploy_id}".into(),
            ],
            timeout,
            workdir: None,
        };
        (dir, spec)
    }

    async fn run(
        spec: &CommandSpec,
        job: &DeployJob,
        checkpoint: Option<serde_json::Value>,
    ) -> (Finish, Vec<BackendEvent>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let finish = execute(spec, job, checkpoint, tx, CancellationToken::new()).await;
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        (finish, events)
    }

    #[tokio::test]
    async fn arguments_and_environment_are_the_deploys() {
        let (_dir, spec) = spec(
            "echo \"args: $*\"; echo \"env: $OPSBOT_SERVICE $OPSBOT_VERSION $OPSBOT_ENVIRONMENT $OPSBOT_REQUESTED_BY\"",
            Duration::from_secs(10),
        );
        let (finish, events) = run(&spec, &job("v1.2.3"), None).await;
        assert_eq!(
            finish,
            Finish::Succeeded {
                detail: "args: api v1.2.3 staging 7\nenv: api v1.2.3 staging ana".into()
            }
        );
        assert!(matches!(events.first(), Some(BackendEvent::Checkpoint(_))));
        assert!(
            events
                .iter()
                .any(|e| matches!(e, BackendEvent::Progress(p) if p.contains("args: api")))
        );
    }

    #[tokio::test]
    async fn a_failure_keeps_the_exit_code_and_the_last_lines() {
        let (_dir, spec) = spec(
            "for i in $(seq 1 30); do echo line $i; done; echo 'broken' >&2; exit 3",
            Duration::from_secs(10),
        );
        let Finish::Failed { reason } = run(&spec, &job("v1"), None).await.0 else {
            panic!("should fail")
        };
        assert!(reason.contains("exited with code 3"), "{reason}");
        assert!(reason.contains("broken"));
        assert!(
            !reason.contains("line 5\n"),
            "only the last {OUTPUT_TAIL_LINES} lines are kept: {reason}"
        );
    }

    #[tokio::test]
    async fn a_timeout_kills_the_command_and_what_it_started() {
        let (_dir, spec) = spec(
            "echo starting; sleep 30 & sleep 30",
            Duration::from_millis(300),
        );
        let Finish::Failed { reason } = run(&spec, &job("v1"), None).await.0 else {
            panic!("should time out")
        };
        assert!(reason.starts_with("timed out after 300ms"), "{reason}");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_clear_failure() {
        let spec = CommandSpec {
            program: "/nonexistent/deploy.sh".into(),
            args: vec![],
            timeout: Duration::from_secs(1),
            workdir: None,
        };
        let Finish::Failed { reason } = run(&spec, &job("v1"), None).await.0 else {
            panic!("should fail")
        };
        assert!(
            reason.starts_with("could not start `/nonexistent/deploy.sh`"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn after_a_restart_it_does_not_run_again() {
        let (_dir, spec) = spec("touch ran", Duration::from_secs(5));
        let Finish::Failed { reason } = run(&spec, &job("v1"), Some(serde_json::json!({"pid": 1})))
            .await
            .0
        else {
            panic!()
        };
        assert!(reason.contains("outcome is unknown"));
    }

    #[tokio::test]
    async fn chatty_output_is_merged_into_few_progress_posts() {
        let (_dir, spec) = spec("seq 1 1000", Duration::from_secs(10));
        let (finish, events) = run(&spec, &job("v1"), None).await;
        assert!(matches!(finish, Finish::Succeeded { .. }));
        let posts: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                BackendEvent::Progress(p) => Some(p.as_str()),
                _ => None,
            })
            .collect();
        assert!(
            posts.len() < 1000,
            "lines are merged, not posted one by one"
        );
        let all: Vec<String> = (1..=1000).map(|n| n.to_string()).collect();
        assert_eq!(posts.join("\n"), all.join("\n"), "no line is lost");
    }

    #[tokio::test]
    async fn odd_bytes_in_the_output_do_not_stop_the_reading() {
        let (_dir, spec) = spec(
            r"printf 'bad \xff byte\n'; seq 1 3",
            Duration::from_secs(10),
        );
        let Finish::Succeeded { detail } = run(&spec, &job("v1"), None).await.0 else {
            panic!("should succeed")
        };
        assert_eq!(detail, "bad \u{fffd} byte\n1\n2\n3");
    }

    #[tokio::test]
    async fn a_background_process_holding_the_output_does_not_hold_up_the_outcome() {
        let (_dir, spec) = spec("sleep 30 & echo done", Duration::from_secs(20));
        let (finish, _) = run(&spec, &job("v1"), None).await;
        assert_eq!(
            finish,
            Finish::Succeeded {
                detail: "done".into()
            }
        );
    }

    #[tokio::test]
    async fn a_program_that_is_not_executable_is_named() {
        let (dir, _) = spec("true", Duration::from_secs(1));
        let path = dir.path().join("plain.txt");
        std::fs::write(&path, "not a program").expect("write");
        let spec = CommandSpec {
            program: path.display().to_string(),
            args: vec![],
            timeout: Duration::from_secs(1),
            workdir: None,
        };
        let Finish::Failed { reason } = run(&spec, &job("v1"), None).await.0 else {
            panic!("should fail")
        };
        assert!(
            reason.starts_with(&format!("could not start `{}`", path.display())),
            "{reason}"
        );
        assert!(reason.contains("ermission denied"), "{reason}");
    }

    #[tokio::test]
    async fn the_command_runs_in_its_workdir_with_the_rest_of_the_environment() {
        let (dir, mut spec) = spec(
            "pwd; echo \"$OPSBOT_DEPLOY_ID $OPSBOT_IS_ROLLBACK $OPSBOT_CORRELATION_ID\"; read -r x || echo no-stdin",
            Duration::from_secs(10),
        );
        spec.workdir = Some(dir.path().to_path_buf());
        let mut job = job("v1");
        job.is_rollback = true;
        let Finish::Succeeded { detail } = run(&spec, &job, None).await.0 else {
            panic!("should succeed")
        };
        let workdir = dir.path().canonicalize().expect("canonical");
        assert_eq!(
            detail,
            format!(
                "{}\n7 true 00000000-0000-0000-0000-000000000000\nno-stdin",
                workdir.display()
            )
        );
    }

    #[tokio::test]
    async fn a_shutdown_stops_the_command_and_fails_the_deploy() {
        let (_dir, spec) = spec("echo started; sleep 30", Duration::from_secs(60));
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            trigger.cancel();
        });
        let (tx, _rx) = mpsc::unbounded_channel();
        let Finish::Failed { reason } = execute(&spec, &job("v1"), None, tx, cancel).await else {
            panic!("should fail")
        };
        assert!(
            reason.starts_with("opsbot shut down while the command was running"),
            "{reason}"
        );
    }
}
