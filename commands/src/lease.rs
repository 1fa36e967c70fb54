//! The one way a replica-exclusive job (the audit sealer, the deploy tracker, the gateway
//! leader, digest schedules, ...) makes sure only one replica runs it at a time: a named lease
//! row in Postgres with a holder and an expiry. (The outbox is not such a job: every replica
//! drains it, a channel at a time; see `crate::outbox::claim_due`.)
//!
//! - [`Leases::acquire`] takes a free or expired lease (or renews our own) and returns a
//!   [`LeaseHeld`]: the proof the job's functions require.
//! - The holder renews it well before it expires ([`LeaseHeld::renew`]); a replica that dies
//!   loses it after its `ttl`, and another takes over.
//! - A proof can be stale (a stalled process whose lease expired and was taken over): work
//!   whose correctness depends on exclusivity calls [`LeaseHeld::fence`] inside its own
//!   transaction. The fence locks the lease row for the transaction, so a takeover waits for
//!   the work to commit, and a stale holder's transaction fails with [`LeaseLost`] instead of
//!   committing beside the new holder's.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The lease is held by someone else, or ours expired and was taken over.
#[derive(Debug, thiserror::Error)]
#[error("the `{name}` lease is no longer held by this replica")]
pub struct LeaseLost {
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(transparent)]
    Lost(#[from] LeaseLost),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// This replica's identity as a lease holder; one per process.
#[derive(Debug, Clone)]
pub struct Leases {
    pub(crate) pool: PgPool,
    pub(crate) holder: Uuid,
}

/// Proof that this replica held lease `name` until `expires_at` when it was last acquired or
/// renewed. Functions that must run on one replica at a time take a `&LeaseHeld`.
#[derive(Debug)]
pub struct LeaseHeld {
    name: String,
    holder: Uuid,
    ttl: Duration,
    pool: PgPool,
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Leases {
    pub fn new(pool: PgPool) -> Leases {
        Leases {
            pool,
            holder: Uuid::new_v4(),
        }
    }

    /// This replica's holder id (shown in logs and `leases.holder`).
    pub fn holder(&self) -> Uuid {
        self.holder
    }

    /// Takes lease `name` for `ttl` if it is free, expired or already ours; `None` while
    /// another replica holds it.
    pub async fn acquire(
        &self,
        name: &str,
        ttl: Duration,
    ) -> Result<Option<LeaseHeld>, sqlx::Error> {
        let taken = sqlx::query(
            r#"
            INSERT INTO leases (name, holder, expires_at, acquired_at)
            VALUES ($1, $2, now() + make_interval(secs => $3), now())
            ON CONFLICT (name) DO UPDATE
               SET holder = EXCLUDED.holder,
                   expires_at = EXCLUDED.expires_at,
                   acquired_at = CASE WHEN leases.holder = EXCLUDED.holder
                                      THEN leases.acquired_at ELSE now() END
             WHERE leases.holder = EXCLUDED.holder OR leases.expires_at < now()
            "#,
        )
        .bind(name)
        .bind(self.holder)
        .bind(seconds(ttl))
        .execute(&self.pool)
        .await?;
        Ok((taken.rows_affected() == 1).then(|| LeaseHeld {
            name: name.to_owned(),
            holder: self.holder,
            ttl,
            pool: self.pool.clone(),
        }))
    }
}

impl LeaseHeld {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Extends the lease by its ttl from now; [`LeaseLost`] if another replica has it.
    pub async fn renew(&self) -> Result<(), LeaseError> {
        let renewed = sqlx::query(
            "UPDATE leases SET expires_at = now() + make_interval(secs => $3)
             WHERE name = $1 AND holder = $2",
        )
        .bind(&self.name)
        .bind(self.holder)
        .bind(seconds(self.ttl))
        .execute(&self.pool)
        .await?;
        if renewed.rows_affected() == 1 {
            Ok(())
        } else {
            Err(self.lost())
        }
    }

    /// Inside the transaction `tx` of exclusive work: locks the lease row until `tx` ends and
    /// checks that it is still ours and unexpired. A takeover waits for `tx`; a stale holder
    /// gets [`LeaseLost`] and must roll back.
    pub async fn fence(&self, tx: &mut PgConnection) -> Result<(), LeaseError> {
        let ours: Option<bool> = sqlx::query_scalar(
            "SELECT holder = $2 AND expires_at > now() FROM leases WHERE name = $1 FOR SHARE",
        )
        .bind(&self.name)
        .bind(self.holder)
        .fetch_optional(&mut *tx)
        .await?;
        match ours {
            Some(true) => Ok(()),
            _ => Err(self.lost()),
        }
    }

    /// Gives the lease up at once (a graceful shutdown), so another replica need not wait for
    /// it to expire.
    pub async fn release(self) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(&self.name)
            .bind(self.holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn lost(&self) -> LeaseError {
        LeaseError::Lost(LeaseLost {
            name: self.name.clone(),
        })
    }
}

/// Keeps one named lease for a loop: each round, [`LeaseKeeper::hold`] renews the lease it
/// holds or tries to take it; `None` means another replica has it and this one stands by.
#[derive(Debug)]
pub struct LeaseKeeper {
    leases: Leases,
    name: &'static str,
    ttl: Duration,
    held: Option<LeaseHeld>,
}

impl LeaseKeeper {
    pub fn new(leases: Leases, name: &'static str, ttl: Duration) -> LeaseKeeper {
        LeaseKeeper {
            leases,
            name,
            ttl,
            held: None,
        }
    }

    /// The proof for this round, renewed or newly taken; `None` while another replica holds
    /// the lease.
    pub async fn hold(&mut self) -> Result<Option<&LeaseHeld>, sqlx::Error> {
        if let Some(held) = &self.held {
            match held.renew().await {
                Ok(()) => return Ok(self.held.as_ref()),
                Err(LeaseError::Lost(_)) => {
                    tracing::warn!(
                        lease = self.name,
                        "lease lost to another replica; standing by"
                    );
                    self.held = None;
                }
                Err(LeaseError::Database(e)) => return Err(e),
            }
        }
        self.held = self.leases.acquire(self.name, self.ttl).await?;
        if self.held.is_some() {
            tracing::info!(lease = self.name, holder = %self.leases.holder(), "lease taken: this replica runs it");
        }
        Ok(self.held.as_ref())
    }

    /// Gives the lease up (graceful shutdown), so another replica takes over at once.
    pub async fn release(&mut self) {
        if let Some(held) = self.held.take()
            && let Err(e) = held.release().await
        {
            tracing::warn!(lease = self.name, error = %e, "could not release a lease; it expires on its own");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(30);

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn one_holder_at_a_time_and_takeover_after_expiry(pool: PgPool) {
        let a = Leases::new(pool.clone());
        let b = Leases::new(pool.clone());
        let held = a
            .acquire("sealer", TTL)
            .await
            .expect("acquire")
            .expect("free");
        assert!(
            b.acquire("sealer", TTL).await.expect("acquire").is_none(),
            "held by a"
        );
        assert!(
            a.acquire("sealer", TTL).await.expect("acquire").is_some(),
            "ours again"
        );
        held.renew().await.expect("renew");
        // Expire a's lease; b takes over; a's proof is now stale everywhere.
        sqlx::query("UPDATE leases SET expires_at = now() - interval '1 second'")
            .execute(&pool)
            .await
            .expect("expire");
        let taken = b
            .acquire("sealer", TTL)
            .await
            .expect("acquire")
            .expect("expired");
        assert!(matches!(held.renew().await, Err(LeaseError::Lost(_))));
        let mut tx = pool.begin().await.expect("tx");
        assert!(matches!(
            held.fence(&mut tx).await,
            Err(LeaseError::Lost(_))
        ));
        drop(tx);
        let mut tx = pool.begin().await.expect("tx");
        taken.fence(&mut tx).await.expect("b holds it");
        tx.commit().await.expect("commit");
        taken.release().await.expect("release");
        assert!(
            a.acquire("sealer", TTL).await.expect("acquire").is_some(),
            "released"
        );
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn a_takeover_waits_for_the_fenced_work_to_commit(pool: PgPool) {
        let a = Leases::new(pool.clone());
        let b = Leases::new(pool.clone());
        let held = a
            .acquire("dispatcher", TTL)
            .await
            .expect("acquire")
            .expect("free");
        let mut tx = pool.begin().await.expect("tx");
        held.fence(&mut tx).await.expect("fenced");
        // A takeover (here: its UPDATE, bounded by a lock timeout) waits for the work.
        let mut other = pool.acquire().await.expect("connection");
        sqlx::query("SET lock_timeout = '200ms'")
            .execute(&mut *other)
            .await
            .expect("set");
        sqlx::query("UPDATE leases SET expires_at = now() - interval '1 second'")
            .execute(&mut *other)
            .await
            .expect_err("the fenced row cannot change under the work");
        tx.commit().await.expect("commit");
        sqlx::query("UPDATE leases SET expires_at = now() - interval '1 second'")
            .execute(&mut *other)
            .await
            .expect("after the commit it can");
        assert!(
            b.acquire("dispatcher", TTL)
                .await
                .expect("acquire")
                .is_some()
        );
    }
}
