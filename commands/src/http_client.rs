//! What the domain's HTTP clients of monitoring servers (Prometheus, Alertmanager) share:
//! how opsbot proves itself, and a client that never waits longer than its timeout.

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

use crate::error::CommandError;

/// How opsbot proves itself to a server: nothing, basic auth, or a bearer token.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    #[default]
    None,
    Basic {
        username: String,
        password: SecretString,
    },
    Bearer(SecretString),
}

impl Auth {
    /// `request` with these credentials.
    pub fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::None => request,
            Auth::Basic { username, password } => {
                request.basic_auth(username, Some(password.expose_secret()))
            }
            Auth::Bearer(token) => request.bearer_auth(token.expose_secret()),
        }
    }
}

/// A client whose requests end after `timeout`, connecting within at most 5 s of it.
pub fn client(timeout: Duration) -> Result<reqwest::Client, CommandError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .build()
        .map_err(CommandError::internal)
}
