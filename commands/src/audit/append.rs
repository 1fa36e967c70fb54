use sqlx::PgExecutor;

use super::model::NewEvent;
use crate::error::CommandError;

/// The unique constraint that makes a replayed Discord interaction fail instead of running twice.
const INTERACTION_UNIQUE: &str = "audit_events_interaction_id_key";

/// Appends one event, and queues it for sealing, in one statement: pass a transaction to
/// make the event commit (or roll back) together with the change it records.
///
/// Never takes a lock beyond the inserted rows, so concurrent appends group-commit.
pub async fn append(db: impl PgExecutor<'_>, event: &NewEvent) -> Result<i64, CommandError> {
    let inserted = sqlx::query_scalar!(
        r#"
        WITH inserted AS (
            INSERT INTO audit_events (actor_id, actor_name, source, guild_id, channel_id,
                                      interaction_id, command, args, outcome, detail, correlation_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            RETURNING id
        )
        INSERT INTO audit_unsealed (event_id) SELECT id FROM inserted RETURNING event_id
        "#,
        event.actor_id,
        event.actor_name,
        event.source.as_str(),
        event.guild_id,
        event.channel_id,
        event.interaction_id,
        event.command,
        event.args,
        event.outcome.as_str(),
        event.detail,
        event.correlation_id,
    )
    .fetch_one(db)
    .await;
    match inserted {
        Ok(id) => {
            metrics::counter!("opsbot_audit_appends_total", "outcome" => event.outcome.as_str())
                .increment(1);
            Ok(id)
        }
        Err(sqlx::Error::Database(db_error))
            if db_error.constraint() == Some(INTERACTION_UNIQUE) =>
        {
            Err(CommandError::Replayed(format!(
                "interaction {} was already handled; a replayed interaction never runs twice",
                event.interaction_id.unwrap_or_default()
            )))
        }
        Err(other) => Err(other.into()),
    }
}
