//! `POST /webhooks/alertmanager`: Alertmanager's `webhook_configs` deliveries (payload
//! version 4), authenticated by `Authorization: Bearer <[alerts] webhook_token>`.
//! This door only translates: it reads at most 1 MiB of body and hands the raw request to
//! [`Desk::alertmanager_delivery`](opsbot_commands::Desk), whose refusal becomes the status:
//! 401 (token), 415 (not JSON), 413 (over 1 MiB), 400 (malformed, wrong version), 503 (the
//! database cannot take it: Alertmanager retries), 200 with what changed otherwise.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opsbot_commands::alerts::ingest::MAX_BODY;
use opsbot_commands::alerts::{Delivery, DeliveryBody, Refusal};
use serde_json::json;

use super::WebState;
use super::client::ClientAddr;

fn status(refusal: Refusal) -> StatusCode {
    match refusal {
        Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
        Refusal::BadRequest => StatusCode::BAD_REQUEST,
        Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Refusal::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Refusal::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub async fn deliver(
    State(state): State<WebState>,
    ClientAddr(address): ClientAddr,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let header = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    // Reading stops one byte past the limit: a longer body is never held in memory.
    let bytes = axum::body::to_bytes(body, MAX_BODY).await;
    let body = match &bytes {
        Ok(bytes) => DeliveryBody::Complete(bytes),
        Err(_) => DeliveryBody::TooLarge,
    };
    let delivery = Delivery {
        authorization: header(header::AUTHORIZATION),
        content_type: header(header::CONTENT_TYPE),
        body,
        address,
    };
    match state.desk.alertmanager_delivery(delivery).await {
        Ok(outcome) => (
            StatusCode::OK,
            Json(json!({
                "group_id": outcome.group_id,
                "changed": outcome.changed,
                "queued": outcome.queued,
            })),
        )
            .into_response(),
        Err(e) => (status(e.refusal), Json(json!({ "error": e.to_string() }))).into_response(),
    }
}
