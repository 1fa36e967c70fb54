//! `opsbot run`: the main job. HTTP server, audit sealer, outbox dispatcher and, when a token
//! is configured, the Discord gateway; graceful shutdown on SIGTERM or SIGINT.

use std::time::Duration;

use anyhow::Context as _;
use opsbot_commands::Desk;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::database::Database;
use crate::dispatch::{DispatchSettings, Dispatcher};
use crate::discord::{GatewaySettings, run_gateway};
use crate::web::{WebState, router};
use crate::{sealer, telemetry};

/// How long in-flight work may take to finish after a shutdown signal before opsbot exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

pub async fn run(config: Config) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));

    let db = Database::connect(&config.database).await?;
    db.migrate().await?;
    let metrics = telemetry::metrics();
    let desk = Desk::new(db.pool.clone(), config.role_map());
    let tasks = TaskTracker::new();

    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {} ([http] listen / OPSBOT_HTTP_LISTEN)", config.http.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "HTTP server listening");
    let app = router(WebState {
        pool: db.pool.clone(),
        metrics,
    });
    let http_shutdown = shutdown.clone();
    tasks.spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(http_shutdown.clone().cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server failed");
            http_shutdown.cancel();
        }
    });
    tasks.spawn(sealer::run(db.pool.clone(), shutdown.clone()));

    let mut failure = None;
    match &config.discord.token {
        None => tracing::warn!(
            "no Discord token configured ([discord] token or OPSBOT_DISCORD_TOKEN): running without the Discord gateway; outbox messages wait until a token is configured"
        ),
        Some(token) => {
            let dispatcher = Dispatcher::new(
                db.pool.clone(),
                &config.discord.api_base,
                secrecy::SecretString::from(token.expose().to_owned()),
                DispatchSettings::default(),
            )?;
            tasks.spawn(dispatcher.run(shutdown.clone()));
            let settings = GatewaySettings {
                token: token.expose().to_owned(),
                guild_ids: config.discord.guild_ids.clone(),
                api_base: config.discord.api_base.clone(),
            };
            let gateway = tokio::spawn(run_gateway(settings, desk.clone(), shutdown.clone()));
            let gateway_shutdown = shutdown.clone();
            failure = Some(tokio::spawn(async move {
                let result = match gateway.await {
                    Ok(result) => result,
                    Err(e) => Err(anyhow::anyhow!("the Discord gateway task panicked: {e}")),
                };
                if let Err(e) = &result {
                    tracing::error!(error = format!("{e:#}"), "Discord gateway stopped");
                }
                gateway_shutdown.cancel();
                result
            }));
        }
    }

    shutdown.cancelled().await;
    tracing::info!("shutting down: finishing in-flight work");
    tasks.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait()).await.is_err() {
        tracing::warn!(grace_seconds = SHUTDOWN_GRACE.as_secs(), "some work did not finish in time");
    }
    let gateway_result = match failure {
        Some(handle) => handle.await.unwrap_or(Ok(())),
        None => Ok(()),
    };
    sealer::seal_before_exit(&db.pool).await;
    db.close().await;
    tracing::info!("stopped");
    gateway_result
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = terminate => tracing::info!("SIGTERM received"),
    }
    shutdown.cancel();
}
