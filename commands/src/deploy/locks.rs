//! `/deploy lock service env reason [duration]` and `/deploy unlock service env`: a lock
//! holds deploys of a service in an environment until it is lifted or runs out. Both need
//! `deploy:lock:<env>`; each is audited and announced.

use chrono::Utc;
use serde::Serialize;

use super::commands::check_reason;
use super::model::Lock;
use super::store;
use crate::audit::Outcome;
use crate::chat::Message;
use crate::desk::{Desk, Invocation, record_in};
use crate::error::CommandError;
use crate::outbox;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LockOutcome {
    pub lock: Lock,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnlockOutcome {
    /// The lock that was lifted: whose it was and why.
    pub lock: Lock,
}

impl Desk {
    /// `/deploy lock`.
    pub async fn deploy_lock(
        &self,
        inv: &Invocation,
        service: &str,
        environment: &str,
        reason: &str,
        duration: Option<&str>,
    ) -> Result<LockOutcome, CommandError> {
        let checked = self
            .service_in(service, environment)
            .and_then(|_| {
                if reason.trim().is_empty() {
                    Err(CommandError::Invalid("a lock needs a reason".to_owned()))
                } else {
                    check_reason(reason)
                }
            })
            .and_then(|()| duration.map(parse_lock_duration).transpose());
        let duration = match checked {
            Ok(duration) => duration,
            Err(e) => return Err(self.refuse(inv, e).await),
        };
        self.authorize(
            inv,
            &format!("deploy:lock:{environment}"),
            &format!("lock deploys to {environment}"),
        )
        .await?;
        let until = duration
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map(|d| Utc::now() + d);
        let lock = Lock {
            service: service.to_owned(),
            environment: environment.to_owned(),
            locked_by_id: inv.actor.id,
            locked_by_name: inv.actor.name.clone(),
            reason: reason.trim().to_owned(),
            locked_at: Utc::now(),
            until,
        };
        let mut tx = self.pool.begin().await?;
        if !store::take_lock(&mut *tx, &lock).await? {
            drop(tx);
            let holder = store::active_lock(&self.pool, service, environment).await?;
            let e = CommandError::Conflict(match holder {
                Some(h) => format!(
                    "{service} is already locked in {environment} by {}: {}",
                    h.locked_by_name, h.reason
                ),
                None => format!("{service} is already locked in {environment}"),
            });
            return Err(self.refuse(inv, e).await);
        }
        let detail = format!(
            "locked {service} in {environment}{}: {}",
            until
                .map(|u| format!(" until {}", u.format("%Y-%m-%d %H:%M UTC")))
                .unwrap_or_default(),
            lock.reason
        );
        let event_id = record_in(&mut *tx, inv, Outcome::Ok, &detail).await?;
        if let Some(channel) = self.deploys().announce_channel {
            outbox::enqueue(
                &mut *tx,
                channel,
                &Message::text(format!("🔒 {} {detail}", inv.actor.name)),
                Some(event_id),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(LockOutcome { lock })
    }

    /// `/deploy unlock`: anyone with `deploy:lock:<env>` may lift a lock; the answer says
    /// whose it was.
    pub async fn deploy_unlock(
        &self,
        inv: &Invocation,
        service: &str,
        environment: &str,
    ) -> Result<UnlockOutcome, CommandError> {
        if let Err(e) = self.service_in(service, environment) {
            return Err(self.refuse(inv, e).await);
        }
        self.authorize(
            inv,
            &format!("deploy:lock:{environment}"),
            &format!("unlock deploys to {environment}"),
        )
        .await?;
        let mut tx = self.pool.begin().await?;
        let Some(lock) = store::release_lock(&mut *tx, service, environment).await? else {
            drop(tx);
            let e = CommandError::Invalid(format!("{service} is not locked in {environment}"));
            return Err(self.refuse(inv, e).await);
        };
        let detail = format!(
            "unlocked {service} in {environment} (locked by {} since {}: {})",
            lock.locked_by_name,
            lock.locked_at.format("%Y-%m-%d %H:%M UTC"),
            lock.reason
        );
        let event_id = record_in(&mut *tx, inv, Outcome::Ok, &detail).await?;
        if let Some(channel) = self.deploys().announce_channel {
            outbox::enqueue(
                &mut *tx,
                channel,
                &Message::text(format!("🔓 {} {detail}", inv.actor.name)),
                Some(event_id),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(UnlockOutcome { lock })
    }
}

/// `2h`, `30m`, `1d`: how long a lock holds.
fn parse_lock_duration(text: &str) -> Result<std::time::Duration, CommandError> {
    match humantime::parse_duration(text.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(CommandError::Invalid(format!(
            "duration \"{text}\" is not a duration; write e.g. 30m, 2h or 1d"
        ))),
    }
}
