//! What the dashboard's audit log shows around a page of events: how many events match its
//! filters (exact up to a bound), the newer events that match (the live tail under filters,
//! and the "Newer" link back from an older page), the commands the pickers offer, and what
//! a correlation id refers to (a deploy, an incident). Same filters, same meaning as
//! [`super::query::query`]: the WHERE clause below is that query's, and a test runs all three
//! on one history so they cannot drift.

use std::collections::BTreeMap;

use sqlx::PgPool;
use uuid::Uuid;

use super::model::AuditEvent;
use super::query::{AuditQuery, QUERY_MAX_LIMIT, like_pattern};

/// Counting stops here: "10,000+" is as useful as the exact figure and stays fast.
pub const COUNT_BOUND: i64 = 10_000;
/// Commands the command picker lists at most.
const COMMANDS_MAX: i64 = 300;

/// [`super::query::query`]'s filters, `$1` to `$8`.
const FILTERS: &str = "
    ($1::bigint IS NULL OR e.actor_id = $1)
    AND ($2::text IS NULL OR lower(e.actor_name) = lower($2))
    AND ($3::text IS NULL OR (split_part(e.command, ' ', 1) = split_part($3, ' ', 1)
               AND (e.command = $3 OR starts_with(e.command, $3 || ' '))))
    AND ($4::text IS NULL OR e.outcome = $4)
    AND ($5::text IS NULL OR e.source = $5)
    AND ($6::timestamptz IS NULL OR e.at >= $6)
    AND ($7::timestamptz IS NULL OR (e.at < $7
               AND e.id <= (SELECT max(w.id + 0) FROM audit_events w
                            WHERE ($6::timestamptz IS NULL OR w.at >= $6) AND w.at < $7)))
    AND ($8::text IS NULL OR ((e.command || ' ' || e.detail || ' ' || e.args::text) ILIKE $8
               AND (e.args::text ILIKE $8 OR e.detail ILIKE $8 OR e.command ILIKE $8)))";

/// The bind values of [`FILTERS`], as [`super::query::query`] derives them.
struct Binds {
    actor_id: Option<i64>,
    actor_name: Option<String>,
    command: Option<String>,
    outcome: Option<String>,
    source: Option<String>,
    text: Option<String>,
}

fn binds(q: &AuditQuery) -> Binds {
    let (actor_id, actor_name) = match q.actor.as_deref().map(str::trim) {
        Some(a) if !a.is_empty() => match a.parse::<i64>() {
            Ok(id) => (Some(id), None),
            Err(_) => (None, Some(a.trim_start_matches('@').to_owned())),
        },
        _ => (None, None),
    };
    let given = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    Binds {
        actor_id,
        actor_name,
        command: given(&q.command),
        outcome: given(&q.outcome),
        source: given(&q.source),
        text: q
            .text
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(like_pattern),
    }
}

/// How many events match `q`'s filters (not its cursor), up to `bound + 1`.
pub async fn count_matching(pool: &PgPool, q: &AuditQuery, bound: i64) -> Result<i64, sqlx::Error> {
    let b = binds(q);
    let sql = format!(
        "SELECT count(*) FROM (SELECT 1 FROM audit_events e WHERE {FILTERS} LIMIT $9) AS matching"
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(b.actor_id)
        .bind(b.actor_name)
        .bind(b.command)
        .bind(b.outcome)
        .bind(b.source)
        .bind(q.since)
        .bind(q.until)
        .bind(b.text)
        .bind(bound + 1)
        .fetch_one(pool)
        .await
}

/// Events newer than `after_id` matching `q`'s filters, oldest first, at most `limit`.
pub async fn newer_matching(
    pool: &PgPool,
    q: &AuditQuery,
    after_id: i64,
    limit: i64,
) -> Result<Vec<AuditEvent>, sqlx::Error> {
    let b = binds(q);
    let sql = format!(
        "SELECT e.id, e.at, e.actor_id, e.actor_name, e.source, e.guild_id, e.channel_id,
                e.interaction_id, e.command, e.args, e.outcome, e.detail, e.correlation_id,
                c.position, encode(c.hash, 'hex') AS hash
         FROM audit_events e LEFT JOIN audit_chain c ON c.event_id = e.id
         WHERE {FILTERS} AND e.id > $9
         ORDER BY e.id LIMIT $10"
    );
    sqlx::query_as::<_, AuditEvent>(sqlx::AssertSqlSafe(sql))
        .bind(b.actor_id)
        .bind(b.actor_name)
        .bind(b.command)
        .bind(b.outcome)
        .bind(b.source)
        .bind(q.since)
        .bind(q.until)
        .bind(b.text)
        .bind(after_id)
        .bind(limit.clamp(1, QUERY_MAX_LIMIT + 1))
        .fetch_all(pool)
        .await
}

/// Every command in the log, sorted, at most [`COMMANDS_MAX`]: a skip scan of the
/// `(command, id)` index, one probe per distinct command, however many events there are.
pub async fn known_commands(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH RECURSIVE commands(command) AS (
             (SELECT command FROM audit_events ORDER BY command LIMIT 1)
             UNION ALL
             SELECT (SELECT e.command FROM audit_events e WHERE e.command > c.command
                     ORDER BY e.command LIMIT 1)
             FROM commands c WHERE c.command IS NOT NULL
         )
         SELECT command FROM commands WHERE command IS NOT NULL LIMIT $1",
    )
    .bind(COMMANDS_MAX)
    .fetch_all(pool)
    .await
}

/// What a correlation id belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    Deploy(i64),
    Incident(i64),
}

/// The deploys and incidents that `ids` are the correlation ids of.
pub async fn references(
    pool: &PgPool,
    ids: &[Uuid],
) -> Result<BTreeMap<Uuid, Reference>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let rows: Vec<(Uuid, String, i64)> = sqlx::query_as(
        "SELECT correlation_id, 'deploy', id FROM deploys WHERE correlation_id = ANY($1)
         UNION ALL
         SELECT correlation_id, 'incident', id FROM incidents WHERE correlation_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(correlation, kind, id)| {
            let reference = if kind == "deploy" {
                Reference::Deploy(id)
            } else {
                Reference::Incident(id)
            };
            (correlation, reference)
        })
        .collect())
}

/// The command picker's choices: each group (`deploy`, the first word of `deploy run`) once,
/// before its commands; a command that is its own group (`whoami`) once.
pub fn command_choices(commands: &[String]) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    for command in commands {
        if let Some((group, _)) = command.split_once(' ')
            && !out.iter().any(|(c, _)| c == group)
        {
            out.push((group.to_owned(), true));
        }
        if !out.iter().any(|(c, _)| c == command) {
            out.push((command.clone(), false));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_before_their_commands_once() {
        let commands: Vec<String> = [
            "audit api",
            "audit verify",
            "deploy",
            "deploy run",
            "whoami",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        let choices: Vec<String> = command_choices(&commands)
            .into_iter()
            .map(|(c, group)| if group { format!("{c} *") } else { c })
            .collect();
        assert_eq!(
            choices,
            [
                "audit *",
                "audit api",
                "audit verify",
                "deploy",
                "deploy run",
                "whoami"
            ]
        );
    }

    use crate::actor::Source;
    use crate::audit::{NewEvent, Outcome, append, query};

    async fn event(pool: &PgPool, actor: &str, command: &str, outcome: Outcome, detail: &str) {
        append(
            pool,
            &NewEvent {
                actor_id: actor.len() as i64,
                actor_name: actor.into(),
                source: if actor == "cron" {
                    Source::Scheduler
                } else {
                    Source::Discord
                },
                guild_id: None,
                channel_id: None,
                interaction_id: None,
                command: command.into(),
                args: serde_json::json!({ "service": "api" }),
                outcome,
                detail: detail.into(),
                correlation_id: None,
            },
        )
        .await
        .expect("append");
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn count_and_newer_match_exactly_what_the_page_matches(pool: PgPool) {
        for i in 0..30 {
            let (actor, command, outcome) = match i % 5 {
                0 => ("ana", "deploy run", Outcome::Ok),
                1 => ("bob", "deploy lock", Outcome::Denied),
                2 => ("cron", "digest post", Outcome::Ok),
                3 => ("ana", "whoami", Outcome::Ok),
                _ => ("bob", "deployer", Outcome::Invalid),
            };
            event(&pool, actor, command, outcome, &format!("detail {i}")).await;
        }
        let filters = [
            AuditQuery::default(),
            AuditQuery {
                command: Some("deploy".into()),
                ..AuditQuery::default()
            },
            AuditQuery {
                actor: Some("ANA".into()),
                outcome: Some("ok".into()),
                ..AuditQuery::default()
            },
            AuditQuery {
                actor: Some("3".into()),
                ..AuditQuery::default()
            },
            AuditQuery {
                source: Some("scheduler".into()),
                text: Some("detail 1".into()),
                ..AuditQuery::default()
            },
        ];
        for filter in filters {
            let page = query(
                &pool,
                &AuditQuery {
                    limit: QUERY_MAX_LIMIT,
                    ..filter.clone()
                },
            )
            .await
            .expect("page");
            let count = count_matching(&pool, &filter, COUNT_BOUND)
                .await
                .expect("count");
            assert_eq!(count as usize, page.events.len(), "{filter:?}");
            let mut newer: Vec<i64> = newer_matching(&pool, &filter, 0, 500)
                .await
                .expect("newer")
                .iter()
                .map(|e| e.id)
                .collect();
            newer.reverse();
            let shown: Vec<i64> = page.events.iter().map(|e| e.id).collect();
            assert_eq!(newer, shown, "{filter:?}");
        }
        // The bound: counting stops one past it.
        assert_eq!(
            count_matching(&pool, &AuditQuery::default(), 10)
                .await
                .expect("count"),
            11
        );
        let commands = known_commands(&pool).await.expect("commands");
        assert_eq!(
            commands,
            [
                "deploy lock",
                "deploy run",
                "deployer",
                "digest post",
                "whoami"
            ]
        );
    }
}
