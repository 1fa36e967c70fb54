//! How much of a request the HTTP server reads: every route, every door.
//!
//! - Headers: at most [`MAX_HEADER_BYTES`] in all (names, values and the request target)
//!   and [`MAX_HEADERS`] of them, else 431. hyper's own bounds (about 400 KiB of buffered
//!   head, 100 headers) keep a request that never ends its head from growing memory; this
//!   is the bound a request must meet to be handled.
//! - Bodies: a `Content-Length` over the route's limit is refused with 413 before a byte of
//!   the body is read (a slow sender is not waited for); a body without one (chunked) is
//!   cut at the limit by the extractor that reads it (axum's [`DefaultBodyLimit`], or the
//!   Alertmanager door's own bounded read) and answered 413 too.

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The most header bytes a request may carry: a dashboard session cookie, a bearer token and
/// a browser's usual headers fit many times over; 32 KiB is what common proxies accept.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// The most headers a request may carry (browsers send about 20).
pub const MAX_HEADERS: usize = 64;
/// The body limit of every route but the Alertmanager webhook: deploy reports, the login and
/// logout forms are a few hundred bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// The body limit of `path`.
pub fn body_limit(path: &str) -> usize {
    if path == "/webhooks/alertmanager" {
        // Alertmanager groups of many alerts are large; its door reads at most this.
        opsbot_commands::alerts::ingest::MAX_BODY
    } else {
        MAX_BODY
    }
}

/// The layer that makes extractors (`Bytes`, `Form`, `Json`) stop at [`MAX_BODY`].
pub fn extractor_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(MAX_BODY)
}

/// Refuses requests over the header bounds (431) or announcing a body over the route's
/// limit (413), before the handler runs.
pub async fn refuse_oversized(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let header_bytes: usize = request.uri().to_string().len()
        + headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "request headers too large: at most {MAX_HEADERS} headers and {MAX_HEADER_BYTES} bytes\n"
            ),
        )
            .into_response();
    }
    let limit = body_limit(request.uri().path());
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|length| length > limit as u64) {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body too large: at most {limit} bytes here\n"),
        )
            .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alertmanager_door_takes_more_than_the_others() {
        assert_eq!(body_limit("/webhooks/deploy/1"), MAX_BODY);
        assert_eq!(body_limit("/login"), MAX_BODY);
        assert!(body_limit("/webhooks/alertmanager") > MAX_BODY);
    }
}
