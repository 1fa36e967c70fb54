//! The Google Cloud Pub/Sub sink (`[events.pubsub]`), through Pub/Sub's REST API
//! (`POST /v1/projects/{project}/topics/{topic}:publish`): one message per event, its data the
//! event's JSON, the attribute `position` = the chain position, the ordering key = the
//! correlation id (or [`UNCORRELATED_KEY`]). A batch is one request, which Pub/Sub accepts
//! or refuses whole.
//!
//! With `PUBSUB_EMULATOR_HOST` (the Google convention, read by the configuration) requests go
//! to the emulator at `http://HOST` without credentials, and the topic is created when
//! missing. Against Google, a bearer `access_token` from the configuration is sent; obtaining
//! tokens from workload identity or a service account key is not built (see the README).

use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::OnceCell;

use super::{EventsError, Outgoing, Sink};

/// The ordering key of events that belong to no story (no correlation id).
pub const UNCORRELATED_KEY: &str = "opsbot";
const GOOGLE_BASE: &str = "https://pubsub.googleapis.com";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `[events.pubsub]`, validated.
#[derive(Debug, Clone)]
pub struct PubsubSpec {
    pub project: String,
    pub topic: String,
    /// `host:port` of the emulator (`PUBSUB_EMULATOR_HOST`); `None`: Google's API.
    pub emulator_host: Option<String>,
    /// A bearer token for Google's API (`access_token`); not sent to the emulator.
    pub access_token: Option<SecretString>,
}

#[derive(Debug)]
pub struct PubsubSink {
    spec: PubsubSpec,
    http: reqwest::Client,
    /// On the emulator: set once the topic exists.
    topic_ready: OnceCell<()>,
}

impl PubsubSink {
    pub fn new(spec: PubsubSpec) -> Result<PubsubSink, EventsError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| EventsError::Broker {
                sink: "pubsub".to_owned(),
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(PubsubSink {
            spec,
            http,
            topic_ready: OnceCell::new(),
        })
    }

    fn base(&self) -> String {
        match &self.spec.emulator_host {
            Some(host) => format!("http://{}", host.trim_end_matches('/')),
            None => GOOGLE_BASE.to_owned(),
        }
    }

    fn topic_url(&self) -> String {
        format!(
            "{}/v1/projects/{}/topics/{}",
            self.base(),
            self.spec.project,
            self.spec.topic
        )
    }

    fn broker(&self, message: impl std::fmt::Display) -> EventsError {
        EventsError::Broker {
            sink: "pubsub".to_owned(),
            message: format!(
                "{message} (projects/{}/topics/{} at {})",
                self.spec.project,
                self.spec.topic,
                self.base()
            ),
        }
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match (&self.spec.emulator_host, &self.spec.access_token) {
            (None, Some(token)) => request.bearer_auth(token.expose_secret()),
            _ => request,
        }
    }

    /// On the emulator, creates the topic unless it exists (`PUT`, 409 when it does).
    async fn ensure_topic(&self) -> Result<(), EventsError> {
        if self.spec.emulator_host.is_none() {
            return Ok(());
        }
        let response = self
            .http
            .put(self.topic_url())
            .json(&serde_json::json!({}))
            .send()
            .await
            .map_err(|e| self.broker(format!("cannot create the topic: {e}")))?;
        let status = response.status();
        if status.is_success() || status == reqwest::StatusCode::CONFLICT {
            Ok(())
        } else {
            let body = response.text().await.unwrap_or_default();
            Err(self.broker(format!(
                "cannot create the topic: HTTP {status}: {}",
                short(&body)
            )))
        }
    }
}

/// The publish request's body for `batch`.
pub fn publish_body(batch: &[Outgoing]) -> serde_json::Value {
    let engine = base64::engine::general_purpose::STANDARD;
    let messages: Vec<serde_json::Value> = batch
        .iter()
        .map(|event| {
            serde_json::json!({
                "data": engine.encode(event.json.as_bytes()),
                "attributes": { "position": event.position.to_string() },
                "orderingKey": event
                    .correlation_id
                    .map_or_else(|| UNCORRELATED_KEY.to_owned(), |id| id.to_string()),
            })
        })
        .collect();
    serde_json::json!({ "messages": messages })
}

fn short(body: &str) -> String {
    let trimmed = body.trim();
    match trimmed.char_indices().nth(300) {
        Some((end, _)) => format!("{}…", &trimmed[..end]),
        None => trimmed.to_owned(),
    }
}

#[async_trait::async_trait]
impl Sink for PubsubSink {
    fn name(&self) -> &'static str {
        "pubsub"
    }

    async fn publish(&self, batch: &[Outgoing]) -> Result<(), EventsError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.topic_ready
            .get_or_try_init(|| self.ensure_topic())
            .await?;
        let request = self
            .http
            .post(format!("{}:publish", self.topic_url()))
            .json(&publish_body(batch));
        let response = self
            .authorized(request)
            .send()
            .await
            .map_err(|e| self.broker(format!("publish failed: {e}")))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(self.broker(format!("publish refused: HTTP {status}: {}", short(&body))))
    }
}
