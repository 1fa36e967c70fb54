//! The HTTP server `opsbot run` serves on `[http] listen`: `/healthz` (the process is up),
//! `/readyz` (200 only when the database answers with the schema this binary expects) and `/metrics` (Prometheus text format) —
//! these three need no authentication and expose nothing sensitive — and
//! `/webhooks/deploy/{id}` (signed reports of webhook-backend deployers). Every route reads
//! requests within [`limits`].

mod alertmanager;
pub mod alerts;
pub mod api;
mod audit_filters;
pub mod audit_log;
pub mod auth;
pub mod chart;
pub mod client;
mod deploy_webhook;
mod deploys;
pub mod errors;
mod event_row;
pub mod incidents;
pub mod limits;
pub mod overview;
pub mod pages;

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use opsbot_commands::{CommandError, Desk};

/// A readiness probe that hangs is worse than one that fails: answer within this.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What every handler shares. There is no pool here: handlers call [`Desk`] methods, which
/// check access, audit and query.
#[derive(Debug, Clone)]
pub struct WebState {
    pub metrics: PrometheusHandle,
    pub desk: Desk,
    pub dashboard: std::sync::Arc<auth::Dashboard>,
}

/// The HTTP status of a domain error, for every JSON door.
pub fn status_of(error: &CommandError) -> StatusCode {
    match error {
        CommandError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        CommandError::Denied { .. } | CommandError::Forbidden(_) => StatusCode::FORBIDDEN,
        CommandError::Invalid(_) => StatusCode::BAD_REQUEST,
        CommandError::NotFound(_) => StatusCode::NOT_FOUND,
        CommandError::Conflict(_) | CommandError::Replayed(_) | CommandError::Refused(_) => {
            StatusCode::CONFLICT
        }
        CommandError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        CommandError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub fn router(state: WebState) -> Router {
    // Everything a person or script reads needs a login or a dashboard token.
    let protected = Router::new()
        .route("/overview", get(overview::overview_page))
        .route("/api/overview", get(overview::overview_api))
        .route("/", get(audit_log::audit_log))
        .route("/events/stream", get(audit_log::live_tail))
        .route("/events/{id}", get(audit_log::event_page))
        .route("/chain", get(pages::chain_page))
        .route("/deploys", get(deploys::deploys_page))
        .route("/deploys/matrix", get(deploys::matrix_page))
        .route("/deploys/{id}", get(deploys::deploy_page))
        .route("/incidents", get(incidents::incidents_page))
        .route("/incidents/{id}", get(incidents::incident_page))
        .route("/alerts", get(alerts::alerts_page))
        .merge(api::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz_with_gateway))
        .route("/metrics", get(metrics))
        .route("/webhooks/deploy/{id}", post(deploy_webhook::report))
        .route("/webhooks/alertmanager", post(alertmanager::deliver))
        .route("/login", get(auth::login_page).post(auth::login_with_token))
        .route("/logout", post(auth::logout))
        .route("/auth/discord", get(auth::discord_start))
        .route("/auth/discord/callback", get(auth::discord_callback))
        .route("/static/app.js", get(pages::app_js))
        .route("/static/app.css", get(pages::app_css))
        .merge(protected)
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .fallback(errors::not_found)
        .layer(limits::extractor_limit())
        .layer(axum::middleware::from_fn(limits::refuse_oversized))
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
        attempts: auth::LoginAttempts::default(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// `/readyz` plus, when the router serves `opsbot run`, a `gateway: …` line
/// (`Extension<Arc<GatewayStatus>>`) and a `leases: …` line naming what this replica holds
/// (`Extension<Leases>`), and an `events: …` line with each sink's publishing lag
/// (`Extension<EventsReadiness>`); the status code stays the database's alone, so a Discord outage or
/// a standby role does not take a replica out of its load balancer.
async fn readyz_with_gateway(
    State(state): State<WebState>,
    gateway: Option<axum::Extension<std::sync::Arc<crate::discord::GatewayStatus>>>,
    leases: Option<axum::Extension<opsbot_commands::lease::Leases>>,
    events: Option<axum::Extension<opsbot_commands::events::EventsReadiness>>,
) -> axum::response::Response {
    let response = readyz(State(state)).await.into_response();
    if gateway.is_none() && leases.is_none() && events.is_none() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let mut text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    if let Some(axum::Extension(gateway)) = gateway {
        text.extend_from_slice(format!("gateway: {}\n", gateway.summary()).as_bytes());
    }
    if let Some(axum::Extension(leases)) = leases {
        let held = match tokio::time::timeout(READY_TIMEOUT, leases.held_here()).await {
            Ok(Ok(held)) if held.is_empty() => "none".to_owned(),
            Ok(Ok(held)) => held.join(", "),
            _ => "unknown (the database is not answering)".to_owned(),
        };
        text.extend_from_slice(format!("leases: {held}\n").as_bytes());
    }
    if let Some(axum::Extension(events)) = events {
        let line = tokio::time::timeout(READY_TIMEOUT, events.line())
            .await
            .unwrap_or_else(|_| "events: unknown (the database is not answering)".to_owned());
        text.extend_from_slice(format!("{line}\n").as_bytes());
    }
    (parts, text).into_response()
}

/// 200 only when the database answers and its schema is the one this binary expects
/// (every migration applied); 503 with the reason otherwise.
async fn readyz(State(state): State<WebState>) -> (StatusCode, String) {
    use opsbot_commands::schema::SchemaState;
    match tokio::time::timeout(READY_TIMEOUT, state.desk.schema_state()).await {
        Ok(Ok(SchemaState::Current)) => (StatusCode::OK, "ready\n".to_owned()),
        Ok(Ok(SchemaState::Behind { missing })) => {
            tracing::warn!(missing = ?missing, "readiness: the database schema is not migrated");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "database schema not migrated: {} migration(s) of this opsbot are not applied (run `opsbot migrate`)\n",
                    missing.len()
                ),
            )
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "database unavailable\n".to_owned(),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "database not answering\n".to_owned(),
        ),
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
