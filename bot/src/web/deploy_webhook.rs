//! `POST /webhooks/deploy/{id}`: a webhook-backend deployer reports progress or the outcome
//! of deploy `id`, signed with scheme v2 (see `opsbot_commands::deploy::backends::webhook`).
//! Body: `{"status": "running"|"succeeded"|"failed", "message": "...", "url": "..."}`.
//! This door only translates: [`Desk::deploy_report`](opsbot_commands::Desk) authenticates,
//! audits and applies the report; its error becomes the HTTP status.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use opsbot_commands::deploy::backends::webhook;
use opsbot_commands::deploy::report::SignedReport;
use serde_json::json;

use super::client::ClientAddr;
use super::{WebState, status_of};

pub async fn report(
    State(state): State<WebState>,
    Path(id): Path<String>,
    ClientAddr(address): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // A path that is no deploy id reads like any other unauthenticated refusal.
    let deploy_id = id.parse::<i64>().unwrap_or(0);
    let report = SignedReport {
        deploy_id,
        timestamp: header(webhook::TIMESTAMP_HEADER),
        signature: header(webhook::SIGNATURE_HEADER),
        body: &body,
        address,
    };
    match state.desk.deploy_report(report).await {
        Ok(deploy_state) => (
            StatusCode::OK,
            Json(json!({ "deploy_id": deploy_id, "state": deploy_state })),
        )
            .into_response(),
        Err(e) => (status_of(&e), Json(json!({ "error": e.to_string() }))).into_response(),
    }
}
