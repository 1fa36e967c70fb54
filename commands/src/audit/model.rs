use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::actor::Source;

/// The one outcome vocabulary of the whole product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Denied,
    Invalid,
    Conflict,
    /// Refused by a rule in force (a freeze window, an incident's deploy freeze), not by a
    /// missing permission (`denied`) nor by the state of things (`conflict`).
    Refused,
    Error,
    Requested,
    Approved,
    Started,
    Succeeded,
    Failed,
    Rejected,
    Expired,
    Cancelled,
}

impl Outcome {
    pub const ALL: [Outcome; 14] = [
        Outcome::Ok,
        Outcome::Denied,
        Outcome::Invalid,
        Outcome::Conflict,
        Outcome::Refused,
        Outcome::Error,
        Outcome::Requested,
        Outcome::Approved,
        Outcome::Started,
        Outcome::Succeeded,
        Outcome::Failed,
        Outcome::Rejected,
        Outcome::Expired,
        Outcome::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Invalid => "invalid",
            Outcome::Conflict => "conflict",
            Outcome::Refused => "refused",
            Outcome::Error => "error",
            Outcome::Requested => "requested",
            Outcome::Approved => "approved",
            Outcome::Started => "started",
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Rejected => "rejected",
            Outcome::Expired => "expired",
            Outcome::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == text)
    }

    /// The outcome named `text` (any case), or why not, naming the valid ones: the one check
    /// every door uses for an outcome filter.
    pub fn parse_filter(text: &str) -> Result<Outcome, String> {
        Outcome::parse(&text.to_ascii_lowercase()).ok_or_else(|| {
            let known: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
            format!(
                "outcome: \"{text}\" is not an outcome; one of {}",
                known.join(", ")
            )
        })
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event about to be appended.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub actor_id: i64,
    pub actor_name: String,
    pub source: Source,
    pub guild_id: Option<i64>,
    pub channel_id: Option<i64>,
    /// Discord's interaction id: unique, so a replayed interaction is refused.
    pub interaction_id: Option<i64>,
    /// The command as typed, without options: `deploy run`, `audit verify`.
    pub command: String,
    /// The options as given, even when invalid.
    pub args: serde_json::Value,
    pub outcome: Outcome,
    pub detail: String,
    /// Ties the steps of one long action (a deploy, an incident) together.
    pub correlation_id: Option<Uuid>,
}

/// A stored event, with its chain position and hash once sealed.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AuditEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor_id: i64,
    pub actor_name: String,
    pub source: String,
    pub guild_id: Option<i64>,
    pub channel_id: Option<i64>,
    pub interaction_id: Option<i64>,
    pub command: String,
    pub args: serde_json::Value,
    pub outcome: String,
    pub detail: String,
    pub correlation_id: Option<Uuid>,
    /// Position in the chain; `None` while not yet sealed.
    pub position: Option<i64>,
    /// Hex sha256 of the chain at this event; `None` while not yet sealed.
    pub hash: Option<String>,
}
