//! Pages that fail well: every refusal and failure of a dashboard page is a page in the
//! dashboard's layout and navigation (`templates/error.html`) with its status — 400 saying
//! what was wrong with the address ("`abc` is not a deploy id", never a parser's text), 403,
//! 404 for unknown paths and ids, 503 when the database is not answering. API paths
//! (`/api/...`) answer JSON instead.

use askama::Template;
use axum::Json;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::SignedCookieJar;
use opsbot_commands::CommandError;

use super::auth::Principal;
use super::pages::render;
use super::status_of;

#[derive(Debug, Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub who: String,
    pub csrf: String,
    pub status: u16,
    pub heading: &'static str,
    /// Shown as code before the message (the value at fault), when there is one.
    pub subject: String,
    pub message: String,
}

fn heading(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "That address does not work",
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "Not for you",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::CONFLICT => "Conflict",
        StatusCode::SERVICE_UNAVAILABLE => "The database is not answering",
        _ => "Something went wrong",
    }
}

/// A page with `status` saying `` `subject` message ``.
pub fn page(who: Option<&Principal>, status: StatusCode, subject: &str, message: &str) -> Response {
    let mut response = render(&ErrorPage {
        who: who.map(|w| w.name.clone()).unwrap_or_default(),
        csrf: who.map(|w| w.csrf.clone()).unwrap_or_default(),
        status: status.as_u16(),
        heading: heading(status),
        subject: subject.to_owned(),
        message: message.to_owned(),
    });
    if response.status() == StatusCode::OK {
        *response.status_mut() = status;
    }
    response
}

/// A domain error as a page: its status and its text for the person who asked.
pub fn domain(who: Option<&Principal>, error: &CommandError) -> Response {
    let status = status_of(error);
    if status.is_server_error() {
        tracing::warn!(error = %error, "dashboard page failed");
    }
    page(who, status, "", &error.to_string())
}

/// 400 for a path segment that is not an id: "`abc` is not a deploy id".
pub fn not_an_id(who: &Principal, given: &str, what: &str) -> Response {
    let shown: String = given.chars().take(100).collect();
    page(
        Some(who),
        StatusCode::BAD_REQUEST,
        &shown,
        &format!("is not {what} id; ids are whole numbers, as in the lists"),
    )
}

/// The id in a path segment (a positive whole number), if it is one.
pub fn id_of(given: &str) -> Option<i64> {
    given.parse::<i64>().ok().filter(|id| *id > 0)
}

/// 404 for `what` (e.g. "deploy 12") that does not exist.
pub fn no_such(who: &Principal, what: &str, list: &str) -> Response {
    page(
        Some(who),
        StatusCode::NOT_FOUND,
        "",
        &format!("There is no {what}. {list}"),
    )
}

/// Every path no route serves. It needs no login (it reveals only that a path is not ours,
/// and a redirect to the login page here would replace a login form's CSRF cookie whenever
/// a browser asks for a stray asset); a session cookie only names who is looking.
pub async fn not_found(jar: SignedCookieJar, request: Request) -> Response {
    let path: String = request.uri().path().chars().take(200).collect();
    if path.starts_with("/api/") {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": format!("no API at {path}; see /api/audit and /api/overview") })),
        )
            .into_response();
    }
    let who = super::auth::session(&jar);
    page(
        who.as_ref(),
        StatusCode::NOT_FOUND,
        &path,
        "is not a page of this dashboard; the navigation above lists them",
    )
}

/// `Query<T>` whose rejection is a 400 page of the dashboard, not axum's parser text.
#[derive(Debug)]
pub struct PageQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for PageQuery<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Response> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(PageQuery(value)),
            Err(rejection) => {
                tracing::debug!(error = %rejection, "a page's query string was refused");
                let who = parts.extensions.get::<Principal>().cloned();
                Err(page(
                    who.as_ref(),
                    StatusCode::BAD_REQUEST,
                    "",
                    "This address's parameters are not understood here (a value of the wrong kind, or text that is not UTF-8); use the page's own links and filters.",
                ))
            }
        }
    }
}

/// `Path<T>` whose rejection is a 400 page of the dashboard, not axum's parser text.
#[derive(Debug)]
pub struct PagePath<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for PagePath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Response> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(PagePath(value)),
            Err(rejection) => {
                tracing::debug!(error = %rejection, "a page's path was refused");
                let who = parts.extensions.get::<Principal>().cloned();
                Err(page(
                    who.as_ref(),
                    StatusCode::BAD_REQUEST,
                    "",
                    "This address is not understood (it is not valid UTF-8 text); use the page's own links.",
                ))
            }
        }
    }
}
