//! `opsbot status`: the replicas of this deployment seen recently (each `opsbot run` renews a
//! heartbeat every 5 s), which leases each holds and since when: who runs the gateway, the
//! sealer, the dispatcher, the tracker, the reminders.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use opsbot_commands::replicas::{self, Replica};

use crate::database::Database;

/// Replicas whose heartbeat is older than this are not listed (they stopped or lost the
/// database; their leases, if any, expire on their own).
pub const SEEN_WITHIN_SECONDS: f64 = 30.0;

pub async fn status_command(db: &Database) -> anyhow::Result<String> {
    let seen = replicas::recent(&db.pool, SEEN_WITHIN_SECONDS).await?;
    Ok(render(&seen, Utc::now()))
}

fn ago(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - at).num_seconds().max(0);
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m {}s", seconds / 60, seconds % 60),
        _ => format!("{}h {}m", seconds / 3600, seconds % 3600 / 60),
    }
}

/// The report for people, one block per replica.
pub fn render(seen: &[Replica], now: DateTime<Utc>) -> String {
    let live = seen.iter().filter(|r| !r.host.is_empty()).count();
    let mut out = match live {
        0 => format!(
            "no replica renewed its heartbeat in the last {SEEN_WITHIN_SECONDS} s (is `opsbot run` running against this database?)\n"
        ),
        1 => format!("1 replica seen in the last {SEEN_WITHIN_SECONDS} s:\n"),
        n => format!("{n} replicas seen in the last {SEEN_WITHIN_SECONDS} s:\n"),
    };
    for replica in seen {
        let id = replica.id.simple().to_string();
        let short = &id[..8];
        if replica.host.is_empty() {
            let _ = writeln!(
                out,
                "- holder {short} (no recent heartbeat: stopped, or lost the database)"
            );
        } else {
            let _ = writeln!(
                out,
                "- {} pid {} (opsbot {}, {short}): up {}, seen {} ago",
                replica.host,
                replica.pid,
                replica.version,
                ago(replica.started_at, now),
                ago(replica.seen_at, now),
            );
        }
        if replica.leases.is_empty() {
            out.push_str("    holds no lease (standby)\n");
        }
        for (lease, since) in &replica.leases {
            let _ = writeln!(
                out,
                "    holds {lease} since {} ({} ago)",
                since.format("%Y-%m-%d %H:%M:%S UTC"),
                ago(*since, now)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use uuid::Uuid;

    #[test]
    fn a_leader_and_a_standby_read_plainly() {
        let now = Utc
            .with_ymd_and_hms(2026, 12, 1, 12, 0, 0)
            .single()
            .expect("time");
        let at = |s: i64| now - chrono::Duration::seconds(s);
        let seen = [
            Replica {
                id: Uuid::from_u128(0x1a2b3c4d_0000_0000_0000_000000000001),
                host: "opsbot-0".to_owned(),
                pid: 7,
                version: "0.1.0".to_owned(),
                started_at: at(7325),
                seen_at: at(2),
                leases: vec![
                    ("audit sealer".to_owned(), at(7300)),
                    ("discord gateway".to_owned(), at(600)),
                ],
            },
            Replica {
                id: Uuid::from_u128(0x5e6f7a8b_0000_0000_0000_000000000002),
                host: "opsbot-1".to_owned(),
                pid: 9,
                version: "0.1.0".to_owned(),
                started_at: at(90),
                seen_at: at(4),
                leases: Vec::new(),
            },
        ];
        insta::assert_snapshot!(render(&seen, now), @r"
        2 replicas seen in the last 30 s:
        - opsbot-0 pid 7 (opsbot 0.1.0, 1a2b3c4d): up 2h 2m, seen 2s ago
            holds audit sealer since 2026-12-01 09:58:20 UTC (2h 1m ago)
            holds discord gateway since 2026-12-01 11:50:00 UTC (10m 0s ago)
        - opsbot-1 pid 9 (opsbot 0.1.0, 5e6f7a8b): up 1m 30s, seen 4s ago
            holds no lease (standby)
        ");
    }
}
