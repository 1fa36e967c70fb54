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

/// [`append`] for many events in one statement (one round trip): their ids, in the order
/// given. For events without an interaction id (webhooks, the system): a replay cannot be
/// told apart in a batch, so events with one are refused here as an invariant error.
pub async fn append_many(
    db: impl PgExecutor<'_>,
    events: &[NewEvent],
) -> Result<Vec<i64>, CommandError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    if events.iter().any(|e| e.interaction_id.is_some()) {
        return Err(CommandError::internal(
            "an interaction's event is appended alone, never in a batch",
        ));
    }
    // Identity values are drawn in the order the rows are produced (by ordinality), so the
    // ids sorted ascending are the events' ids in the order given.
    let mut ids: Vec<i64> = sqlx::query_scalar(
        r#"
        WITH inserted AS (
            INSERT INTO audit_events (actor_id, actor_name, source, guild_id, channel_id,
                                      command, args, outcome, detail, correlation_id)
            SELECT a, an, s, g, c, cmd, ar, o, d, corr
            FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[],
                        $6::text[], $7::jsonb[], $8::text[], $9::text[], $10::uuid[])
                 WITH ORDINALITY AS t(a, an, s, g, c, cmd, ar, o, d, corr, n)
            ORDER BY n
            RETURNING id
        )
        INSERT INTO audit_unsealed (event_id) SELECT id FROM inserted RETURNING event_id
        "#,
    )
    .bind(events.iter().map(|e| e.actor_id).collect::<Vec<_>>())
    .bind(
        events
            .iter()
            .map(|e| e.actor_name.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(events.iter().map(|e| e.source.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.guild_id).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.channel_id).collect::<Vec<_>>())
    .bind(
        events
            .iter()
            .map(|e| e.command.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(events.iter().map(|e| &e.args).collect::<Vec<_>>())
    .bind(
        events
            .iter()
            .map(|e| e.outcome.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(events.iter().map(|e| e.detail.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.correlation_id).collect::<Vec<_>>())
    .fetch_all(db)
    .await?;
    if ids.len() != events.len() {
        return Err(CommandError::internal(format!(
            "appended {} audit events of {}",
            ids.len(),
            events.len()
        )));
    }
    ids.sort_unstable();
    for event in events {
        metrics::counter!("opsbot_audit_appends_total", "outcome" => event.outcome.as_str())
            .increment(1);
    }
    Ok(ids)
}
