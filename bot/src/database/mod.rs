//! The connection to Postgres: a configured server (`DATABASE_URL` or `[database] url`), or
//! with neither, a private server opsbot starts itself ([`embedded`]). `opsbot migrate` and
//! `opsbot run` apply the migrations in `migrations/`.

pub mod embedded;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::DatabaseConfig;
use embedded::EmbeddedPostgres;

/// How long a command waits for a pooled connection before answering "database unavailable".
/// Discord drops an interaction not answered within 3 s ("The application did not
/// respond"), so a database that is down or restarting must turn into a "try again" reply
/// well before that: 2 s leaves a second for the audit attempt and the reply itself. (At
/// 5 s, commands typed while PostgreSQL restarted were answered after 4.5 s: too late.)
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long start-up keeps retrying a database that does not answer yet (a container
/// starting beside opsbot, a failover in progress) before giving up.
const STARTUP_PATIENCE: Duration = Duration::from_secs(30);

/// An open pool, and the private server behind it when opsbot started one.
#[derive(Debug)]
pub struct Database {
    pub pool: PgPool,
    embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// Connects to the configured server, or starts (or reuses) the embedded one.
    pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<Database> {
        let (options, embedded) = match &config.url {
            Some(url) => {
                let options = PgConnectOptions::from_str(url.expose()).map_err(|_| {
                    anyhow::anyhow!(
                        "the database URL is not a valid PostgreSQL URL (postgres://user:password@host:port/database); check DATABASE_URL or [database] url"
                    )
                })?;
                (options, None)
            }
            None => {
                let server = EmbeddedPostgres::start(&config.embedded_dir).await?;
                (server.connect_options(), Some(server))
            }
        };
        let options = options.application_name("opsbot");
        let where_ = describe(&options);
        let pool_options = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT);
        let started = tokio::time::Instant::now();
        let pool = loop {
            match pool_options.clone().connect_with(options.clone()).await {
                Ok(pool) => break pool,
                Err(e) if started.elapsed() < STARTUP_PATIENCE => {
                    tracing::warn!(database = %where_, error = %e, "database not answering yet; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("cannot connect to the database at {where_} (tried for {}s); check that it runs and that DATABASE_URL or [database] url is right", STARTUP_PATIENCE.as_secs())
                    });
                }
            }
        };
        tracing::info!(database = %where_, embedded = embedded.is_some(), "connected to the database");
        Ok(Database { pool, embedded })
    }

    /// Applies pending migrations (idempotent; safe to run from several replicas).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        opsbot_commands::MIGRATOR
            .run(&self.pool)
            .await
            .context("applying database migrations")?;
        Ok(())
    }

    /// Closes the pool, then stops the embedded server if opsbot started it.
    pub async fn close(self) {
        self.pool.close().await;
        if let Some(server) = self.embedded {
            server.stop().await;
        }
    }
}

/// Where a connection goes, without credentials: safe to log.
fn describe(options: &PgConnectOptions) -> String {
    let database = options.get_database().unwrap_or("postgres");
    let port = options.get_port();
    match options.get_socket() {
        Some(dir) => format!(
            "unix socket {}/.s.PGSQL.{port}, database {database}",
            dir.display()
        ),
        None if options.get_host().starts_with('/') => {
            format!(
                "unix socket {}/.s.PGSQL.{port}, database {database}",
                options.get_host()
            )
        }
        None => format!("{}:{port}, database {database}", options.get_host()),
    }
}
