//! After a restart: the processes a `command` deploy left running when opsbot died without
//! stopping them (SIGKILL, the OOM killer, a crash). They are found by the deploy's
//! correlation id in their environment (`OPSBOT_CORRELATION_ID`, which the command and
//! everything it starts inherit), so a reused pid is never taken for one of them, and
//! killed. Only this machine's processes can be found: a deploy taken over by a replica on
//! another machine leaves the first machine's processes alone.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use uuid::Uuid;

/// Kills every process whose environment carries `OPSBOT_CORRELATION_ID=<correlation_id>`;
/// returns how many it killed.
pub(super) async fn stop(correlation_id: Uuid) -> usize {
    tokio::task::spawn_blocking(move || stop_now(correlation_id))
        .await
        .unwrap_or(0)
}

fn stop_now(correlation_id: Uuid) -> usize {
    let needle = format!("OPSBOT_CORRELATION_ID={correlation_id}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let me = std::process::id();
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
            .filter(|pid| *pid > 1 && u32::try_from(*pid).ok() != Some(me))
        else {
            continue;
        };
        // Unreadable (another user's, or gone already): not ours to stop.
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|byte| *byte == 0)
            .any(|variable| variable == needle.as_bytes())
            && kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok()
        {
            killed += 1;
        }
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn processes_of_the_deploy_are_killed_and_no_others() {
        let ours = Uuid::new_v4();
        let spawn = |id: Uuid| {
            std::process::Command::new("sleep")
                .arg("30")
                .env("OPSBOT_CORRELATION_ID", id.to_string())
                .spawn()
                .expect("sleep")
        };
        let mut left_running = spawn(ours);
        let mut other_deploy = spawn(Uuid::new_v4());
        assert_eq!(stop(ours).await, 1);
        let status = left_running.wait().expect("wait");
        assert!(!status.success(), "killed: {status}");
        assert_eq!(
            other_deploy.try_wait().expect("try_wait"),
            None,
            "left alone"
        );
        let _ = other_deploy.kill();
        let _ = other_deploy.wait();
        assert_eq!(stop(ours).await, 0, "nothing left");
    }
}
