//! The last chain position each sink's broker acknowledged (`events_cursor`).

use sqlx::PgPool;

/// The last position published to `sink`; 0 before the first.
pub async fn load(pool: &PgPool, sink: &str) -> Result<i64, sqlx::Error> {
    let position: Option<i64> =
        sqlx::query_scalar("SELECT position FROM events_cursor WHERE sink = $1")
            .bind(sink)
            .fetch_optional(pool)
            .await?;
    Ok(position.unwrap_or(0))
}

/// Records that `sink` acknowledged everything up to `position`. The cursor never moves
/// back, even if a stalled replica stores an older position late.
pub async fn store(pool: &PgPool, sink: &str, position: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        r#"
        INSERT INTO events_cursor (sink, position) VALUES ($1, $2)
        ON CONFLICT (sink) DO UPDATE
            SET position = GREATEST(events_cursor.position, EXCLUDED.position),
                published_at = clock_timestamp()
        "#,
    )
    .bind(sink)
    .bind(position)
    .execute(pool)
    .await?;
    Ok(())
}
