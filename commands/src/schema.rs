//! Whether the database's schema is the one this binary was built for: `/readyz` answers 503
//! until every migration this binary knows has been applied (`opsbot migrate`, or the
//! migration `opsbot run` does at start).

use sqlx::PgPool;

use crate::MIGRATOR;

/// How the database's schema compares with this binary's migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    /// Every migration of this binary is applied.
    Current,
    /// These migrations (versions) of this binary are not applied yet.
    Behind { missing: Vec<i64> },
}

/// Compares the applied migrations with this binary's. A database without the migrations
/// table at all is `Behind` by every migration.
pub async fn schema_state(pool: &PgPool) -> Result<SchemaState, sqlx::Error> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    let applied: Vec<i64> = if exists {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    let missing: Vec<i64> = MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect();
    Ok(if missing.is_empty() {
        SchemaState::Current
    } else {
        SchemaState::Behind { missing }
    })
}

impl crate::desk::Desk {
    /// Whether the database holds the schema this binary expects (`/readyz`).
    pub async fn schema_state(&self) -> Result<SchemaState, sqlx::Error> {
        schema_state(&self.pool).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn a_migrated_database_is_current(pool: PgPool) {
        assert_eq!(
            schema_state(&pool).await.expect("state"),
            SchemaState::Current
        );
    }

    #[sqlx::test(migrations = false)]
    async fn an_empty_database_is_behind_by_every_migration(pool: PgPool) {
        let Ok(SchemaState::Behind { missing }) = schema_state(&pool).await else {
            panic!("an empty database is not current");
        };
        assert_eq!(missing.len(), MIGRATOR.iter().count());
    }
}
