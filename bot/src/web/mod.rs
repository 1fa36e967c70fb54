//! The HTTP server `opsbot run` serves on `[http] listen`: `/healthz` (the process is up),
//! `/readyz` (200 only when the database answers) and `/metrics` (Prometheus text format) —
//! these three need no authentication and expose nothing sensitive — and
//! `/webhooks/deploy/{id}` (signed reports of webhook-backend deployers).

pub mod api;
pub mod auth;
mod deploy_webhook;
pub mod pages;

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
    pub dashboard: std::sync::Arc<auth::Dashboard>,
}

pub fn router(state: WebState) -> Router {
    // Everything a person or script reads needs a login or a dashboard token.
    let protected = Router::new()
        .route("/", get(pages::audit_log))
        .route("/events/stream", get(pages::live_tail))
        .route("/events/{id}", get(pages::event_page))
        .route("/chain", get(pages::chain_page))
        .route("/deploys", get(pages::deploys_page))
        .route("/deploys/{id}", get(pages::deploy_page))
        .merge(api::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/webhooks/deploy/{id}", post(deploy_webhook::report))
        .route("/login", get(auth::login_page).post(auth::login_with_token))
        .route("/logout", post(auth::logout))
        .route("/auth/discord", get(auth::discord_start))
        .route("/auth/discord/callback", get(auth::discord_callback))
        .route("/static/app.js", get(pages::app_js))
        .route("/static/app.css", get(pages::app_css))
        .merge(protected)
        .layer(axum::middleware::from_fn(auth::security_headers))
        .with_state(state)
}

/// The dashboard's authentication settings from the config.
pub fn dashboard(config: &crate::config::Config) -> auth::Dashboard {
    let secret = |s: &crate::config::Secret| secrecy::SecretString::from(s.expose().to_owned());
    if config.http.session_secret.is_none() {
        tracing::info!(
            "no [http] session_secret: dashboard sessions end when opsbot restarts and are not shared between replicas"
        );
    }
    let discord = match (config.discord.client_id, &config.discord.client_secret) {
        (Some(client_id), Some(client_secret)) => {
            let base = config
                .http
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", config.http.listen));
            Some(auth::DiscordLogin {
                client_id: client_id.to_string(),
                client_secret: secret(client_secret),
                api_base: config.discord.api_base.clone(),
                bot_token: config.discord.token.as_ref().map(secret),
                guild_ids: config.discord.guild_ids.clone(),
                redirect_uri: format!("{base}/auth/discord/callback"),
            })
        }
        _ => None,
    };
    auth::Dashboard {
        tokens: config.http.dashboard_tokens.iter().map(secret).collect(),
        key: auth::Dashboard::key_from(config.http.session_secret.as_ref().map(|s| s.expose())),
        session_ttl: config.http.session_ttl,
        secure_cookies: config
            .http
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://")),
        discord,
    }
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
