//! The replicas of one deployment, as the database sees them: each `opsbot run` renews a
//! heartbeat row (`replicas`, keyed by its lease holder id), so `opsbot status` can say which
//! replicas are alive, which lease each holds and since when, and `/readyz` can say what this
//! replica holds.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::lease::Leases;

/// Rows not renewed for this long are forgotten.
const FORGET_AFTER_SECONDS: f64 = 24.0 * 3600.0;

/// What a replica says about itself in its heartbeat.
#[derive(Debug, Clone)]
pub struct ReplicaInfo {
    pub host: String,
    pub pid: u32,
    pub version: String,
}

/// A replica seen recently, with the unexpired leases it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Replica {
    pub id: Uuid,
    pub host: String,
    pub pid: i32,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
    /// `(lease, held since)`, by name.
    pub leases: Vec<(String, DateTime<Utc>)>,
}

impl Leases {
    /// Renews this replica's heartbeat row (and forgets replicas gone for a day).
    pub async fn heartbeat(&self, me: &ReplicaInfo) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO replicas (id, host, pid, version) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET seen_at = now()",
        )
        .bind(self.holder)
        .bind(&me.host)
        .bind(i32::try_from(me.pid).unwrap_or(i32::MAX))
        .bind(&me.version)
        .execute(&self.pool)
        .await?;
        sqlx::query("DELETE FROM replicas WHERE seen_at < now() - make_interval(secs => $1)")
            .bind(FORGET_AFTER_SECONDS)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The unexpired leases this replica holds, by name.
    pub async fn held_here(&self) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT name FROM leases WHERE holder = $1 AND expires_at > now() ORDER BY name",
        )
        .bind(self.holder)
        .fetch_all(&self.pool)
        .await
    }
}

/// The replicas that renewed their heartbeat within `within_seconds`, newest first, each with
/// its leases; leases held by a holder with no recent heartbeat are listed under a replica
/// with an empty host (a process that stopped its heartbeat but not yet its leases).
pub async fn recent(pool: &sqlx::PgPool, within_seconds: f64) -> Result<Vec<Replica>, sqlx::Error> {
    type Row = (Uuid, String, i32, String, DateTime<Utc>, DateTime<Utc>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, host, pid, version, started_at, seen_at FROM replicas
         WHERE seen_at > now() - make_interval(secs => $1) ORDER BY started_at DESC, id",
    )
    .bind(within_seconds)
    .fetch_all(pool)
    .await?;
    let leases: Vec<(Uuid, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT holder, name, acquired_at FROM leases WHERE expires_at > now() ORDER BY name",
    )
    .fetch_all(pool)
    .await?;
    let mut replicas: Vec<Replica> = rows
        .into_iter()
        .map(|(id, host, pid, version, started_at, seen_at)| Replica {
            id,
            host,
            pid,
            version,
            started_at,
            seen_at,
            leases: Vec::new(),
        })
        .collect();
    for (holder, name, since) in leases {
        match replicas.iter_mut().find(|r| r.id == holder) {
            Some(replica) => replica.leases.push((name, since)),
            None => replicas.push(Replica {
                id: holder,
                host: String::new(),
                pid: 0,
                version: String::new(),
                started_at: since,
                seen_at: since,
                leases: vec![(name, since)],
            }),
        }
    }
    Ok(replicas)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn info(host: &str) -> ReplicaInfo {
        ReplicaInfo {
            host: host.to_owned(),
            pid: 42,
            version: "0.1.0".to_owned(),
        }
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn replicas_list_what_they_hold(pool: sqlx::PgPool) {
        let a = Leases::new(pool.clone());
        let b = Leases::new(pool.clone());
        a.heartbeat(&info("a")).await.expect("a");
        b.heartbeat(&info("b")).await.expect("b");
        b.heartbeat(&info("b")).await.expect("b again");
        let _gateway = a
            .acquire("discord gateway", Duration::from_secs(30))
            .await
            .expect("acquire")
            .expect("free");
        let _sealer = b
            .acquire("audit sealer", Duration::from_secs(30))
            .await
            .expect("acquire")
            .expect("free");
        assert_eq!(a.held_here().await.expect("held"), ["discord gateway"]);
        let seen = recent(&pool, 60.0).await.expect("recent");
        let summary: Vec<(String, Vec<String>)> = seen
            .iter()
            .map(|r| {
                (
                    r.host.clone(),
                    r.leases.iter().map(|(n, _)| n.clone()).collect(),
                )
            })
            .collect();
        let mut summary = summary;
        summary.sort();
        assert_eq!(
            summary,
            [
                ("a".to_owned(), vec!["discord gateway".to_owned()]),
                ("b".to_owned(), vec!["audit sealer".to_owned()])
            ]
        );
    }
}
