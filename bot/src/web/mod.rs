//! The HTTP server `opsbot run` serves on `[http] listen`: `/healthz` (the process is up),
//! `/readyz` (200 only when the database answers) and `/metrics` (Prometheus text format) —
//! these three need no authentication and expose nothing sensitive — and
//! `/webhooks/deploy/{id}` (signed reports of webhook-backend deployers).

pub mod api;
mod deploy_webhook;

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use opsbot_commands::Desk;
use sqlx::PgPool;

/// A readiness probe that hangs is worse than one that fails: answer within this.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct WebState {
    pub pool: PgPool,
    pub metrics: PrometheusHandle,
    pub desk: Desk,
}

pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/webhooks/deploy/{id}", post(deploy_webhook::report))
        .merge(api::routes())
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<WebState>) -> (StatusCode, &'static str) {
    let ping = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.pool);
    match tokio::time::timeout(READY_TIMEOUT, ping).await {
        Ok(Ok(_)) => (StatusCode::OK, "ready\n"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database not answering\n"),
    }
}

async fn metrics(State(state): State<WebState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
