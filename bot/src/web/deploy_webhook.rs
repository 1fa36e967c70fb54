//! `POST /webhooks/deploy/{id}`: a webhook-backend deployer reports progress or the outcome
//! of deploy `id`, signed like the request opsbot sent it (HMAC-SHA256 over
//! `{timestamp}.{body}` with the service's `secret`, in `X-Opsbot-Signature` and
//! `X-Opsbot-Timestamp`). A bad signature is refused (401, audited) and changes nothing.
//! Body: `{"status": "running"|"succeeded"|"failed", "message": "...", "url": "..."}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use opsbot_commands::deploy::backends::BackendSpec;
use opsbot_commands::deploy::backends::webhook::{self, ProgressReport};
use opsbot_commands::deploy::deploy_by_id;
use opsbot_commands::{Actor, CommandError, Invocation, Source};
use secrecy::ExposeSecret as _;
use serde_json::json;

use super::WebState;

fn answer(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn error_response(error: &CommandError) -> Response {
    let status = match error {
        CommandError::Denied { .. } | CommandError::Forbidden(_) => StatusCode::FORBIDDEN,
        CommandError::Invalid(_) => StatusCode::BAD_REQUEST,
        CommandError::NotFound(_) => StatusCode::NOT_FOUND,
        CommandError::Conflict(_) => StatusCode::CONFLICT,
        CommandError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        CommandError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    answer(status, &error.to_string())
}

pub async fn report(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let desk = &state.desk;
    let deploy = match deploy_by_id(&desk.pool, id).await {
        Ok(Some(deploy)) => deploy,
        Ok(None) => {
            return answer(
                StatusCode::NOT_FOUND,
                &format!("deploy #{id} does not exist"),
            );
        }
        Err(e) => return error_response(&CommandError::from(e)),
    };
    let secret = match desk
        .deploys
        .services
        .get(&deploy.service)
        .map(|s| &s.backend)
    {
        Some(BackendSpec::Webhook(spec)) => spec.secret.clone(),
        _ => {
            return answer(
                StatusCode::CONFLICT,
                &format!(
                    "deploy #{id} ({}) does not use a webhook backend",
                    deploy.service
                ),
            );
        }
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let verified = webhook::verify(
        secret.expose_secret().as_bytes(),
        header(webhook::TIMESTAMP_HEADER),
        header(webhook::SIGNATURE_HEADER),
        &body,
        chrono::Utc::now().timestamp(),
    );
    if let Err(e) = verified {
        let mut inv = Invocation::new(
            Actor::system(Source::Webhook),
            "deploy report",
            json!({ "deploy_id": id }),
        );
        inv.correlation_id = Some(deploy.correlation_id);
        let refusal = CommandError::Forbidden(format!("signature refused: {e}"));
        let _ = desk.refuse(&inv, refusal).await;
        return answer(StatusCode::UNAUTHORIZED, &format!("signature refused: {e}"));
    }
    let report: ProgressReport = match serde_json::from_slice(&body) {
        Ok(report) => report,
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                &format!(
                    "the body is not a progress report ({e}); send {{\"status\": \"running\"|\"succeeded\"|\"failed\", \"message\": \"...\"}}"
                ),
            );
        }
    };
    match desk.deploy_webhook_report(id, &report).await {
        Ok(state) => (
            StatusCode::OK,
            Json(json!({ "deploy_id": id, "state": state })),
        )
            .into_response(),
        Err(e) => error_response(&e),
    }
}
