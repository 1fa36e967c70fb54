//! The one error type of the domain, and how each kind reads to a user.
//!
//! Policy: `Denied`, `Invalid`, `NotFound`, `Conflict`, `Refused` and `Unavailable` carry text written
//! for the person who asked, and front doors show it as is. `Internal` never shows its cause:
//! users see a short reference, the log gets the whole chain under the same reference.

use crate::audit::Outcome;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The actor lacks a permission. Audited with outcome `denied`.
    #[error("you need the `{permission}` permission to {action}")]
    Denied { permission: String, action: String },
    /// Refused by a rule rather than a missing permission (e.g. approving your own deploy).
    /// Audited with outcome `denied`.
    #[error("{0}")]
    Forbidden(String),
    /// The request is malformed or names something that does not exist.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The request collides with the current state (a lock, a running deploy, a replay).
    #[error("{0}")]
    Conflict(String),
    /// A rule in force refuses it now: a freeze window, an incident's deploy freeze
    /// (`override:true` with `deploy:override` lifts it). Audited with outcome `refused`.
    #[error("{0}")]
    Refused(String),
    /// The caller did not prove who it is (a missing or bad signature or token). Never
    /// written to the audit trail row by row: counted and sampled (`crate::refusals`).
    #[error("{0}")]
    Unauthenticated(String),
    /// The same signed request (or interaction) arrived again; it changes nothing and is not
    /// recorded again.
    #[error("{0}")]
    Replayed(String),
    /// A dependency (the database, a backend) is not answering; trying again may work.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure. The message only shows the reference.
    #[error("internal error (reference {reference}); the operators can find it in the log")]
    Internal {
        reference: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl CommandError {
    /// Wraps an unexpected failure, logging its whole chain under a fresh reference id.
    pub fn internal(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> CommandError {
        let source = source.into();
        let reference = new_reference();
        tracing::error!(reference = %reference, error = %ErrorChain(&*source), "internal error");
        CommandError::Internal { reference, source }
    }

    /// The audit outcome that records this error.
    pub fn outcome(&self) -> Outcome {
        match self {
            CommandError::Denied { .. }
            | CommandError::Forbidden(_)
            | CommandError::Unauthenticated(_) => Outcome::Denied,
            CommandError::Invalid(_) | CommandError::NotFound(_) => Outcome::Invalid,
            CommandError::Conflict(_) | CommandError::Replayed(_) => Outcome::Conflict,
            CommandError::Refused(_) => Outcome::Refused,
            CommandError::Unavailable(_) | CommandError::Internal { .. } => Outcome::Error,
        }
    }
}

impl From<sqlx::Error> for CommandError {
    fn from(error: sqlx::Error) -> CommandError {
        if let Some(why) = unavailable_reason(&error) {
            tracing::warn!(error = %error, "database unavailable");
            return CommandError::Unavailable(why.to_owned());
        }
        CommandError::internal(error)
    }
}

/// What a user is told when the database cannot take a change now, or `None` when `error`
/// is not that (a bug, a constraint): a read-only database (a failover in progress, or
/// `default_transaction_read_only`) and a full disk each say so, since waiting a moment
/// will not help and the operators must act; anything else is "not answering".
pub fn unavailable_reason(error: &sqlx::Error) -> Option<&'static str> {
    if let sqlx::Error::Database(db) = error {
        match db.code().as_deref() {
            // read_only_sql_transaction
            Some("25006") => {
                return Some(
                    "the database is read-only right now (a failover or maintenance); nothing was changed, try again once it accepts writes",
                );
            }
            // disk_full
            Some("53100") => {
                return Some(
                    "the database is out of disk space; nothing was changed: the operators must free space, then try again",
                );
            }
            _ => {}
        }
    }
    is_unavailable(error)
        .then_some("the database is not answering; nothing was changed, try again in a moment")
}

/// Whether `error` means the database cannot serve us now (down, restarting, dropped,
/// read-only, out of space, not migrated to this binary's schema) rather than a bug:
/// callers answer 503, not 500.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::Io(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 3D000: the database does not exist; 42P01 / 42703:
            // a table or column is missing (an unmigrated or older schema); 53: the server
            // is out of resources (too many connections); 57P0x: shut down or starting up.
            // 25006: a read-only transaction (a standby, `default_transaction_read_only`).
            code.starts_with("08")
                || code == "25006"
                || code.starts_with("53")
                || code.starts_with("57P")
                || code == "3D000"
                || code == "42P01"
                || code == "42703"
        }),
        _ => false,
    }
}

/// A short random id that ties a user-visible error to its log line.
pub fn new_reference() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// Displays an error followed by each of its causes (`a: b: c`), skipping a cause whose text
/// is already shown (many errors repeat their source's message). The one error-chain walk.
#[derive(Debug)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        for cause in Causes(self.0.source()) {
            let text = cause.to_string();
            if !shown.contains(&text) {
                write!(f, ": {text}")?;
                shown.push_str(&text);
            }
        }
        Ok(())
    }
}

/// The causes of `error` without its own message, joined like [`ErrorChain`]; `None` when
/// it has none. For errors whose own text must not be shown (reqwest's repeats the URL,
/// whose path may carry a secret).
pub fn causes(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let first = error.source()?;
    Some(ErrorChain(first).to_string())
}

struct Causes<'a>(Option<&'a (dyn std::error::Error + 'static)>);

impl<'a> Iterator for Causes<'a> {
    type Item = &'a (dyn std::error::Error + 'static);

    fn next(&mut self) -> Option<Self::Item> {
        let current = self.0?;
        self.0 = current.source();
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn a_read_only_database_is_named_and_unavailable(pool: sqlx::PgPool) {
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query("SET TRANSACTION READ ONLY")
            .execute(&mut *tx)
            .await
            .expect("read only");
        let refused = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ('x', gen_random_uuid(), now())",
        )
        .execute(&mut *tx)
        .await
        .expect_err("a write in a read-only transaction");
        assert!(is_unavailable(&refused));
        let CommandError::Unavailable(text) = CommandError::from(refused) else {
            panic!("not Unavailable");
        };
        assert!(text.contains("read-only"), "{text}");
        assert!(text.contains("nothing was changed"), "{text}");
    }
}
