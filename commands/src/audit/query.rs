use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::model::AuditEvent;

/// The most events one page may hold, whatever the caller asks for.
pub const QUERY_MAX_LIMIT: i64 = 500;

/// Filters over the audit log; every field narrows, `None` means "any". Each is served by an
/// index at 10 M events (`migrations/20261201001200_audit_search_indexes.sql` says how).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// A Discord user id, or a name (case-insensitive, exact).
    pub actor: Option<String>,
    /// A command (`deploy run`) or a command group (`deploy`).
    pub command: Option<String>,
    pub outcome: Option<String>,
    pub source: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Text searched (case-insensitively) in the arguments, the detail and the command.
    pub text: Option<String>,
    /// Keyset cursor: only events older than this id.
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// One page, newest first; `next_cursor` is the `before_id` of the next page, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub events: Vec<AuditEvent>,
    pub next_cursor: Option<i64>,
}

/// Letters or digits in a row that a text search needs: the trigram index behind it
/// (`audit_events_text_trgm_idx`) looks up runs of three, and a search with none would read
/// every event.
pub const SEARCH_MIN_RUN: usize = 3;

/// Why `text` cannot be searched for, when it cannot: it has no run of
/// [`SEARCH_MIN_RUN`] letters or digits (`db`, `0%`, `--`).
pub fn search_problem(text: &str) -> Option<String> {
    let mut run = 0;
    for c in text.chars() {
        run = if c.is_alphanumeric() { run + 1 } else { 0 };
        if run >= SEARCH_MIN_RUN {
            return None;
        }
    }
    Some(format!(
        "q: \"{}\" is too short to search for; give at least {SEARCH_MIN_RUN} letters or digits in a row (a word or part of one), or narrow by actor, command, outcome, source or time instead",
        crate::desk::clean(text)
    ))
}

/// `text` with LIKE's wildcards (`%`, `_`) and escape character taken literally.
pub(crate) fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

#[cfg(test)]
mod search_tests {
    use super::search_problem;

    #[test]
    fn a_search_needs_three_letters_or_digits_in_a_row() {
        for ok in ["api", "ployme", "and done", "100%_", "née", "a-b-run"] {
            assert_eq!(search_problem(ok), None, "{ok}");
        }
        for short in ["db", "0%", "--", "a b c", "ab-cd", " x "] {
            let why = search_problem(short).expect(short);
            assert!(why.contains("at least 3 letters or digits"), "{why}");
        }
    }
}

pub(super) fn like_pattern(text: &str) -> String {
    format!("%{}%", escape_like(text))
}

/// Events matching `q`, newest first, by keyset pagination on the id. A time window's first
/// page starts the id walk at the window's newest event; a later page at its cursor.
pub async fn query(pool: &PgPool, q: &AuditQuery) -> Result<Page, sqlx::Error> {
    let limit = q.limit.clamp(1, QUERY_MAX_LIMIT);
    let (actor_id, actor_name) = match q.actor.as_deref().map(str::trim) {
        Some(a) if !a.is_empty() => match a.parse::<i64>() {
            Ok(id) => (Some(id), None),
            Err(_) => (None, Some(a.trim_start_matches('@').to_owned())),
        },
        _ => (None, None),
    };
    let text = q
        .text
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(like_pattern);
    let mut events = sqlx::query_as!(
        AuditEvent,
        r#"
        SELECT e.id, e.at, e.actor_id, e.actor_name, e.source, e.guild_id, e.channel_id,
               e.interaction_id, e.command, e.args, e.outcome, e.detail, e.correlation_id,
               c.position AS "position?", encode(c.hash, 'hex') AS "hash?"
        FROM audit_events e LEFT JOIN audit_chain c ON c.event_id = e.id
        WHERE ($1::bigint IS NULL OR e.actor_id = $1)
          AND ($2::text IS NULL OR lower(e.actor_name) = lower($2))
          AND ($3::text IS NULL OR (split_part(e.command, ' ', 1) = split_part($3, ' ', 1)
               AND (e.command = $3 OR starts_with(e.command, $3 || ' '))))
          AND ($4::text IS NULL OR e.outcome = $4)
          AND ($5::text IS NULL OR e.source = $5)
          AND ($6::timestamptz IS NULL OR e.at >= $6)
          AND ($7::timestamptz IS NULL OR (e.at < $7
               AND ($9::bigint IS NOT NULL OR e.id <= (SELECT max(w.id + 0) FROM audit_events w
                            WHERE ($6::timestamptz IS NULL OR w.at >= $6) AND w.at < $7))))
          AND ($8::text IS NULL OR ((e.command || ' ' || e.detail || ' ' || e.args::text) ILIKE $8
               AND (e.args::text ILIKE $8 OR e.detail ILIKE $8 OR e.command ILIKE $8)))
          AND ($9::bigint IS NULL OR e.id < $9)
        ORDER BY e.id DESC
        LIMIT $10
        "#,
        actor_id,
        actor_name,
        q.command.as_deref().filter(|c| !c.is_empty()),
        q.outcome.as_deref().filter(|o| !o.is_empty()),
        q.source.as_deref().filter(|s| !s.is_empty()),
        q.since,
        q.until,
        text,
        q.before_id,
        limit + 1,
    )
    .fetch_all(pool)
    .await?;
    let next_cursor = if events.len() as i64 > limit {
        events.truncate(limit as usize);
        events.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Page {
        events,
        next_cursor,
    })
}

/// The newest `n` events, oldest first (what `opsbot audit tail` prints).
pub async fn tail(pool: &PgPool, n: i64) -> Result<Vec<AuditEvent>, sqlx::Error> {
    let wanted = n.max(0) as usize;
    let mut events = Vec::with_capacity(wanted.min(QUERY_MAX_LIMIT as usize));
    let mut q = AuditQuery {
        limit: n.min(QUERY_MAX_LIMIT),
        ..AuditQuery::default()
    };
    while events.len() < wanted {
        let page = query(pool, &q).await?;
        events.extend(page.events);
        match page.next_cursor {
            Some(cursor) => q.before_id = Some(cursor),
            None => break,
        }
    }
    events.truncate(wanted);
    events.reverse();
    Ok(events)
}

/// One event by id, with its chain position and hash once sealed.
pub async fn event(pool: &PgPool, id: i64) -> Result<Option<AuditEvent>, sqlx::Error> {
    sqlx::query_as!(
        AuditEvent,
        r#"
        SELECT e.id, e.at, e.actor_id, e.actor_name, e.source, e.guild_id, e.channel_id,
               e.interaction_id, e.command, e.args, e.outcome, e.detail, e.correlation_id,
               c.position AS "position?", encode(c.hash, 'hex') AS "hash?"
        FROM audit_events e LEFT JOIN audit_chain c ON c.event_id = e.id
        WHERE e.id = $1
        "#,
        id
    )
    .fetch_optional(pool)
    .await
}

/// One page of a story (a deploy, an incident): its events after `after_id` (0: from the
/// start), oldest first, at most `limit`; page on with the last id shown.
pub async fn by_correlation(
    pool: &PgPool,
    correlation_id: uuid::Uuid,
    after_id: i64,
    limit: i64,
) -> Result<Vec<AuditEvent>, sqlx::Error> {
    sqlx::query_as::<_, AuditEvent>(
        r#"
        SELECT e.id, e.at, e.actor_id, e.actor_name, e.source, e.guild_id, e.channel_id,
               e.interaction_id, e.command, e.args, e.outcome, e.detail, e.correlation_id,
               c.position, encode(c.hash, 'hex') AS hash
        FROM audit_events e LEFT JOIN audit_chain c ON c.event_id = e.id
        WHERE e.correlation_id = $1 AND e.id > $2
        ORDER BY e.id
        LIMIT $3
        "#,
    )
    .bind(correlation_id)
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Events newer than `after_id`, oldest first (the dashboard's live tail).
pub async fn newer_than(
    pool: &PgPool,
    after_id: i64,
    limit: i64,
) -> Result<Vec<AuditEvent>, sqlx::Error> {
    sqlx::query_as!(
        AuditEvent,
        r#"
        SELECT e.id, e.at, e.actor_id, e.actor_name, e.source, e.guild_id, e.channel_id,
               e.interaction_id, e.command, e.args, e.outcome, e.detail, e.correlation_id,
               c.position AS "position?", encode(c.hash, 'hex') AS "hash?"
        FROM audit_events e LEFT JOIN audit_chain c ON c.event_id = e.id
        WHERE e.id > $1
        ORDER BY e.id
        LIMIT $2
        "#,
        after_id,
        limit
    )
    .fetch_all(pool)
    .await
}

/// Denied events of one actor, command and reason, as the digest's audit section reads them.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Denials {
    pub actor_name: String,
    pub command: String,
    pub detail: String,
    pub count: i64,
    pub last_at: DateTime<Utc>,
}

/// The denied events with `start < at <= end`, counted by actor, command and reason, most
/// frequent first, at most `limit` groups.
pub async fn denials_between(
    db: impl sqlx::PgExecutor<'_>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Denials>, sqlx::Error> {
    sqlx::query_as(
        "SELECT actor_name, command, detail, count(*) AS count, max(at) AS last_at
         FROM audit_events
         WHERE outcome = 'denied' AND at > $1 AND at <= $2
         GROUP BY actor_name, command, detail
         ORDER BY count(*) DESC, max(at) DESC LIMIT $3",
    )
    .bind(start)
    .bind(end)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Sealed events after chain position `after`, in chain order, at most `limit`: what
/// events out publishes (see [`crate::events`]).
pub async fn sealed_after(
    pool: &PgPool,
    after: i64,
    limit: i64,
) -> Result<Vec<AuditEvent>, sqlx::Error> {
    sqlx::query_as::<_, AuditEvent>(
        r#"
        SELECT e.id, e.at, e.actor_id, e.actor_name, e.source, e.guild_id, e.channel_id,
               e.interaction_id, e.command, e.args, e.outcome, e.detail, e.correlation_id,
               c.position, encode(c.hash, 'hex') AS hash
        FROM audit_chain c JOIN audit_events e ON e.id = c.event_id
        WHERE c.position > $1
        ORDER BY c.position
        LIMIT $2
        "#,
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The chain's last position (0 when empty) and when the event at `after + 1` was sealed
/// (`None` when nothing is after `after`): how far a reader at `after` is behind.
pub async fn chain_backlog(
    pool: &PgPool,
    after: i64,
) -> Result<(i64, Option<DateTime<Utc>>), sqlx::Error> {
    sqlx::query_as::<_, (i64, Option<DateTime<Utc>>)>(
        r#"
        SELECT COALESCE((SELECT max(position) FROM audit_chain), 0),
               (SELECT sealed_at FROM audit_chain WHERE position = $1 + 1)
        "#,
    )
    .bind(after)
    .fetch_one(pool)
    .await
}
