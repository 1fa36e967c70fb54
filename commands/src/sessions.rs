//! Dashboard sessions on the server side (the web door's login, `/logout`): one `dashboard_sessions` row per login, named by
//! the signed cookie. A session works while its row is neither expired nor revoked (logout
//! revokes it) and, for a token login, while the token it was made with is still configured
//! (the row keeps the token's SHA-256, never the token). Every replica sees the same rows, so
//! a logout or a removed token ends the session everywhere.
//!
//! The row is checked on every request that carries a session cookie; when the database
//! cannot answer, the request fails (503) instead of passing unchecked.

use std::time::Duration;

use crate::audit::Outcome;
use crate::desk::{Desk, Invocation, record_in};
use crate::error::CommandError;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

/// A session check waits this long for the database before the request gets a 503: a page
/// that hangs is worse than one that says why it failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The SHA-256 of a dashboard token: what a session remembers of it.
pub fn fingerprint(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// How a session was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Token,
    Discord,
}

impl How {
    fn as_str(self) -> &'static str {
        match self {
            How::Token => "token",
            How::Discord => "discord",
        }
    }
}

/// A session about to be opened.
#[derive(Debug)]
pub struct NewSession<'a> {
    pub id: Uuid,
    pub how: How,
    pub actor_id: i64,
    pub actor_name: &'a str,
    /// With [`How::Token`]: the [`fingerprint`] of the token used.
    pub token_fingerprint: Option<Vec<u8>>,
    pub expires_at: DateTime<Utc>,
}

impl Desk {
    /// Stores `session` and the audit event of the login (`login`, outcome `ok`) in one
    /// transaction: a login nobody can see in the trail does not happen. Also forgets sessions
    /// that expired long ago.
    pub async fn session_open(
        &self,
        session: &NewSession<'_>,
        login: &Invocation,
        detail: &str,
    ) -> Result<(), CommandError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
        "INSERT INTO dashboard_sessions (id, expires_at, how, actor_id, actor_name, token_fingerprint) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(session.id)
    .bind(session.expires_at)
    .bind(session.how.as_str())
    .bind(session.actor_id)
    .bind(session.actor_name)
    .bind(session.token_fingerprint.as_deref())
    .execute(&mut *tx)
    .await?;
        // Expired rows are kept a day, to tell a refused cookie's story, then forgotten.
        sqlx::query("DELETE FROM dashboard_sessions WHERE expires_at < now() - interval '1 day'")
            .execute(&mut *tx)
            .await?;
        record_in(&mut *tx, login, Outcome::Ok, detail).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether session `id` still works with the dashboard tokens configured now.
    pub async fn session_check(
        &self,
        id: Uuid,
        tokens: &[SecretString],
    ) -> Result<Result<(), Ended>, CommandError> {
        check(&self.pool, id, tokens).await
    }

    /// Ends session `id` for good (logout).
    pub async fn session_revoke(&self, id: Uuid) -> Result<(), CommandError> {
        sqlx::query(
            "UPDATE dashboard_sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Why a session cookie does not open the dashboard (any more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Unknown,
    Expired,
    LoggedOut,
    TokenRemoved,
}

impl Ended {
    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Unknown => "unknown session",
            Ended::Expired => "session expired",
            Ended::LoggedOut => "session ended by logout",
            Ended::TokenRemoved => "the session's dashboard token is no longer configured",
        }
    }
}

async fn check(
    pool: &sqlx::PgPool,
    id: Uuid,
    tokens: &[SecretString],
) -> Result<Result<(), Ended>, CommandError> {
    let query = sqlx::query_as::<_, (bool, bool, Option<Vec<u8>>)>(
        "SELECT expires_at <= now(), revoked_at IS NOT NULL, token_fingerprint \
         FROM dashboard_sessions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool);
    let row = match tokio::time::timeout(CHECK_TIMEOUT, query).await {
        Ok(row) => row?,
        Err(_) => {
            return Err(CommandError::Unavailable(
                "the database is not answering".to_owned(),
            ));
        }
    };
    Ok(match row {
        None => Err(Ended::Unknown),
        Some((true, _, _)) => Err(Ended::Expired),
        Some((_, true, _)) => Err(Ended::LoggedOut),
        Some((_, _, Some(used)))
            if !tokens
                .iter()
                .any(|token| fingerprint(token.expose_secret()) == used) =>
        {
            Err(Ended::TokenRemoved)
        }
        Some(_) => Ok(()),
    })
}
