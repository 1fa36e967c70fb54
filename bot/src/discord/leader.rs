//! Several replicas, one gateway: with `[discord] gateway = "leader"` (the default) a replica
//! connects to Discord only while it holds the `discord gateway` lease
//! (`opsbot_commands::lease`). The others stand by and try every [`POLL`]; when the leader
//! dies, its lease expires after [`TTL`] and a standby connects — within 15 seconds.
//!
//! A leader that cannot renew its lease (it lost the database, or another replica took the
//! lease over) stops its gateway *before* the lease can expire: it counts the lease's life
//! from the moment it asked for the last renewal, so the database's own expiry is always
//! later, and no standby can connect while the old leader still listens. An overlap is
//! harmless anyway: interaction ids are unique in the audit trail, so a command runs once, and
//! the replica that loses the race does not answer (`CommandError::Replayed`).
//!
//! A database that is up but refuses writes (read-only, or its disk full) refuses the renewal
//! too; then no replica can take the lease either, so the leader keeps its gateway and
//! commands are answered with why they cannot run.

use std::sync::Arc;
use std::time::Duration;

use opsbot_commands::Desk;
use opsbot_commands::lease::{LeaseError, Leases};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{GatewaySettings, GatewayStatus, supervise_gateway};

/// The lease the gateway's leader holds (for Discord itself; see [`lease_name`]).
pub const GATEWAY_LEASE: &str = "discord gateway";

/// The gateway lease for `settings`: [`GATEWAY_LEASE`] for Discord, and one of its own for a
/// stand-in (`opsbot shell`'s private emulator must not wait for the real bot's leader).
pub fn lease_name(settings: &GatewaySettings) -> String {
    let base = settings.api_base.trim_end_matches('/');
    if base == super::DISCORD_API_BASE {
        GATEWAY_LEASE.to_owned()
    } else {
        format!("{GATEWAY_LEASE} {base}")
    }
}
/// How long the lease lives without a renewal: a dead leader is replaced after this.
pub const TTL: Duration = Duration::from_secs(10);
/// How often the leader renews.
const RENEW: Duration = Duration::from_secs(2);
/// How often a standby tries to take the lease.
pub const POLL: Duration = Duration::from_secs(2);
/// A renewal that has not answered by then counts as failed.
const RENEW_TIMEOUT: Duration = Duration::from_secs(2);
/// The leader stops its gateway this long before its lease could expire.
const MARGIN: Duration = Duration::from_secs(3);

/// Runs the gateway on this replica whenever it holds the lease `lease`, until `shutdown`.
pub async fn lead_gateway(
    leases: Leases,
    lease: String,
    settings: GatewaySettings,
    desk: Desk,
    status: Arc<GatewayStatus>,
    shutdown: CancellationToken,
) {
    status.set_standby("waiting for the gateway lease");
    while !shutdown.is_cancelled() {
        let asked = Instant::now();
        let held = match leases.acquire(&lease, TTL).await {
            Ok(Some(held)) => held,
            Ok(None) => {
                status.set_standby("another replica is the gateway leader");
                pause(POLL, &shutdown).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach the database to take the gateway lease; standing by");
                status.set_standby("the database is not answering; cannot take the gateway lease");
                pause(POLL, &shutdown).await;
                continue;
            }
        };
        tracing::info!(holder = %leases.holder(), "this replica is the gateway leader");
        let mut valid_until = asked + TTL;
        let connection = shutdown.child_token();
        let gateway = tokio::spawn(supervise_gateway(
            settings.clone(),
            desk.clone(),
            status.clone(),
            connection.clone(),
        ));
        let why = loop {
            tokio::select! {
                () = tokio::time::sleep(RENEW) => {}
                () = shutdown.cancelled() => break None,
            }
            let asked = Instant::now();
            match tokio::time::timeout(RENEW_TIMEOUT, held.renew()).await {
                Ok(Ok(())) => valid_until = asked + TTL,
                Ok(Err(LeaseError::Lost(_))) => {
                    break Some("another replica took the gateway lease over");
                }
                Ok(Err(LeaseError::Database(e))) if refuses_writes(&e) => {
                    // No replica can take the lease while the database accepts no writes, so
                    // keeping the gateway cannot make two leaders (and should one manage to,
                    // the next renewal says the lease is lost); dropping it would leave every
                    // command unanswered instead of told why it cannot run.
                    tracing::warn!(error = %e, "the database refuses writes; keeping the gateway (no replica can take its lease meanwhile)");
                    valid_until = asked + TTL;
                }
                Ok(Err(LeaseError::Database(e))) => {
                    tracing::warn!(error = %e, "could not renew the gateway lease");
                }
                Err(_) => tracing::warn!("renewing the gateway lease timed out"),
            }
            if Instant::now() + RENEW + MARGIN >= valid_until {
                break Some(
                    "the gateway lease could not be renewed (the database is not answering)",
                );
            }
        };
        // Stop listening before anyone else may start.
        connection.cancel();
        if let Err(e) = gateway.await {
            tracing::error!(error = %e, "the gateway task failed");
        }
        match why {
            None => {
                if let Err(e) = held.release().await {
                    tracing::debug!(error = %e, "the gateway lease was not released; it expires on its own");
                }
                return;
            }
            Some(why) => {
                tracing::warn!(
                    reason = why,
                    "gateway stopped: this replica is no longer the leader"
                );
                status.set_standby(why);
                pause(POLL, &shutdown).await;
            }
        }
    }
}

/// A write refused by a database that is up: read-only (`default_transaction_read_only`, a
/// standby; SQLSTATE 25006) or out of disk space (53100).
fn refuses_writes(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("25006" | "53100")))
}

async fn pause(wait: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        () = tokio::time::sleep(wait) => {}
        () = shutdown.cancelled() => {}
    }
}
