//! The NATS JetStream sink (`[events.nats]`): one message per event on
//! `{subject}.{group}` (`opsbot.audit.deploy`), `Nats-Msg-Id` = the chain position so that
//! JetStream discards a message sent twice (within the stream's duplicate window, 2 minutes
//! by default). The stream is created when missing, capturing `{subject}.>`.
//!
//! Messages of a batch are sent one after the other, each after the previous one's
//! acknowledgement: a connection that drops mid-batch can then never let a later event into
//! the stream before an earlier one.

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use super::{EventsError, Outgoing, Sink};

/// How long a publish waits for JetStream's acknowledgement before the batch counts as failed.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// How opsbot authenticates to NATS.
#[derive(Debug, Clone)]
pub enum NatsAuth {
    None,
    UserPassword {
        user: String,
        password: SecretString,
    },
    Token(SecretString),
    /// The contents of a `.creds` file (a user JWT and its NKey seed).
    Credentials(SecretString),
}

/// `[events.nats]`, validated.
#[derive(Debug, Clone)]
pub struct NatsSpec {
    /// `nats://host:port` (or several, comma-separated).
    pub url: String,
    /// The subject prefix: events go to `{subject}.{group}`.
    pub subject: String,
    /// The JetStream stream, created when missing with subjects `{subject}.>`.
    pub stream: String,
    pub auth: NatsAuth,
}

#[derive(Debug)]
pub struct NatsSink {
    spec: NatsSpec,
    /// Connected (and the stream checked) at the first publish, and again after a failure to.
    context: Mutex<Option<jetstream::Context>>,
}

impl NatsSink {
    pub fn new(spec: NatsSpec) -> NatsSink {
        NatsSink {
            spec,
            context: Mutex::new(None),
        }
    }

    fn broker(&self, message: impl std::fmt::Display) -> EventsError {
        EventsError::Broker {
            sink: "nats".to_owned(),
            message: format!("{} ({})", message, self.spec.url),
        }
    }

    async fn connect(&self) -> Result<jetstream::Context, EventsError> {
        let options = match &self.spec.auth {
            NatsAuth::None => async_nats::ConnectOptions::new(),
            NatsAuth::UserPassword { user, password } => async_nats::ConnectOptions::new()
                .user_and_password(user.clone(), password.expose_secret().to_owned()),
            NatsAuth::Token(token) => {
                async_nats::ConnectOptions::new().token(token.expose_secret().to_owned())
            }
            NatsAuth::Credentials(creds) => async_nats::ConnectOptions::with_credentials(
                creds.expose_secret(),
            )
            .map_err(|e| self.broker(format!("the credentials are not a .creds file: {e}")))?,
        };
        let client = options
            .name("opsbot events")
            .connection_timeout(Duration::from_secs(5))
            // Reconnects forever (with the client's own backoff) once connected.
            .max_reconnects(None)
            .connect(self.spec.url.as_str())
            .await
            .map_err(|e| self.broker(format!("cannot connect: {e}")))?;
        let mut context = jetstream::new(client);
        context.set_timeout(ACK_TIMEOUT);
        context
            .get_or_create_stream(jetstream::stream::Config {
                name: self.spec.stream.clone(),
                subjects: vec![format!("{}.>", self.spec.subject)],
                ..Default::default()
            })
            .await
            .map_err(|e| {
                self.broker(format!(
                    "cannot find or create the stream `{}`: {e}",
                    self.spec.stream
                ))
            })?;
        tracing::info!(url = %self.spec.url, stream = %self.spec.stream, "events: connected to NATS JetStream");
        Ok(context)
    }
}

#[async_trait::async_trait]
impl Sink for NatsSink {
    fn name(&self) -> &'static str {
        "nats"
    }

    async fn publish(&self, batch: &[Outgoing]) -> Result<(), EventsError> {
        let mut slot = self.context.lock().await;
        let context = match slot.as_ref() {
            Some(context) => context.clone(),
            None => {
                let context = self.connect().await?;
                *slot = Some(context.clone());
                context
            }
        };
        drop(slot);
        for event in batch {
            let subject = format!("{}.{}", self.spec.subject, event.group);
            let message = PublishMessage::build()
                .payload(event.json.clone().into())
                .message_id(event.position.to_string());
            let ack = context
                .send_publish(subject, message)
                .await
                .map_err(|e| self.broker(format!("publish of position {}: {e}", event.position)))?;
            ack.await.map_err(|e| {
                self.broker(format!(
                    "no acknowledgement for position {}: {e}",
                    event.position
                ))
            })?;
        }
        Ok(())
    }
}
