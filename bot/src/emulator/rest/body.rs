//! Request bodies as Discord takes them: JSON, or multipart with `payload_json` and files.

use super::*;

/// The largest file Discord takes from a bot (10 MiB); a larger one is refused with 40005.
pub const FILE_MAX_BYTES: usize = 10 * 1024 * 1024;
/// The largest request body the emulator reads: a message with ten files at the limit.
pub const BODY_MAX_BYTES: usize = 10 * FILE_MAX_BYTES + 1024 * 1024;

/// A request body as Discord takes it: JSON, or multipart with `payload_json` (files are kept
/// in `__files`, byte for byte, each at most [`FILE_MAX_BYTES`]). A body that is neither, or
/// a file too large, is refused the way Discord refuses it.
#[derive(Debug)]
pub(super) struct DiscordBody(pub(super) Value);

impl<S: Send + Sync> FromRequest<S> for DiscordBody {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let headers = request.headers().clone();
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        parse_json(&bytes, &headers).map(DiscordBody)
    }
}

#[expect(
    clippy::result_large_err,
    reason = "the refusal is the HTTP response, answered as is"
)]
pub(super) fn parse_json(body: &Bytes, headers: &HeaderMap) -> Result<Value, Response> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("multipart/") {
        let payload = multipart_payload(body, content_type).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                50109,
                "multipart body without payload_json",
            )
        })?;
        if array(&payload["__files"])
            .iter()
            .any(|f| f["size"].as_u64().unwrap_or(0) > FILE_MAX_BYTES as u64)
        {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                40005,
                "Request entity too large",
            ));
        }
        return Ok(payload);
    }
    serde_json::from_slice(body).map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            50109,
            "The request body contains invalid JSON.",
        )
    })
}

/// The `payload_json` part of a multipart body, with the files (name, size, bytes) in `__files`.
pub(super) fn multipart_payload(body: &Bytes, content_type: &str) -> Option<Value> {
    let boundary = content_type.split("boundary=").nth(1)?.trim_matches('"');
    let delimiter = format!("--{boundary}");
    let mut payload: Option<Value> = None;
    let mut files = Vec::new();
    for part in split_bytes(body, delimiter.as_bytes()) {
        let Some(split) = find(part, b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&part[..split]);
        let mut content = &part[split + 4..];
        if content.ends_with(b"\r\n") {
            content = &content[..content.len() - 2];
        }
        if head.contains("name=\"payload_json\"") {
            payload = serde_json::from_slice(content).ok();
        } else if let Some(filename) = head
            .split("filename=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
        {
            use base64::Engine as _;
            files.push(json!({
                "filename": filename,
                "size": content.len(),
                "data": base64::engine::general_purpose::STANDARD.encode(content),
            }));
        }
    }
    let mut payload = payload.unwrap_or_else(|| json!({}));
    if !files.is_empty() {
        payload["__files"] = Value::Array(files);
    }
    Some(payload)
}

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The parts of a multipart body between `delimiter`s, as bytes (files may be binary).
pub(super) fn split_bytes<'a>(body: &'a [u8], delimiter: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut rest = body;
    while let Some(at) = find(rest, delimiter) {
        parts.push(&rest[..at]);
        rest = &rest[at + delimiter.len()..];
    }
    parts.push(rest);
    parts
}

/// Uploaded files (name and bytes) of a [`DiscordBody`].
pub(super) fn uploaded_files(body: &Value) -> Vec<(String, Vec<u8>)> {
    use base64::Engine as _;
    array(&body["__files"])
        .iter()
        .filter_map(|f| {
            let name = f["filename"].as_str()?.to_owned();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(f["data"].as_str()?)
                .ok()?;
            Some((name, bytes))
        })
        .collect()
}
