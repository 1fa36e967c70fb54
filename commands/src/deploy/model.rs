use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// requested → approved → running → succeeded | failed | cancelled; requested → rejected | expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployState {
    Requested,
    Approved,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Rejected,
    Expired,
}

impl DeployState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeployState::Requested => "requested",
            DeployState::Approved => "approved",
            DeployState::Running => "running",
            DeployState::Succeeded => "succeeded",
            DeployState::Failed => "failed",
            DeployState::Cancelled => "cancelled",
            DeployState::Rejected => "rejected",
            DeployState::Expired => "expired",
        }
    }

    /// The state named `text`; `None` for anything else (never a guess).
    pub fn parse(text: &str) -> Option<DeployState> {
        Some(match text {
            "requested" => DeployState::Requested,
            "approved" => DeployState::Approved,
            "running" => DeployState::Running,
            "succeeded" => DeployState::Succeeded,
            "failed" => DeployState::Failed,
            "cancelled" => DeployState::Cancelled,
            "rejected" => DeployState::Rejected,
            "expired" => DeployState::Expired,
            _ => return None,
        })
    }

    pub fn is_active(self) -> bool {
        matches!(
            self,
            DeployState::Requested | DeployState::Approved | DeployState::Running
        )
    }
}

impl std::fmt::Display for DeployState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A deploy (or rollback) row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deploy {
    pub id: i64,
    pub correlation_id: Uuid,
    pub service: String,
    pub environment: String,
    pub version: String,
    pub state: DeployState,
    pub is_rollback: bool,
    pub rollback_of: Option<i64>,
    pub reason: String,
    pub freeze_overridden: bool,
    pub requested_by_id: i64,
    pub requested_by_name: String,
    pub requested_at: DateTime<Utc>,
    pub approvals_required: i32,
    /// Names of those who approved, in order.
    pub approved_by: Vec<String>,
    pub approval_expires_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub backend: String,
    pub link: Option<String>,
    pub detail: String,
    pub guild_id: Option<i64>,
    pub channel_id: Option<i64>,
    pub status_message_id: Option<i64>,
    pub thread_id: Option<i64>,
}

/// A lock on deploys of a service to an environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lock {
    pub service: String,
    pub environment: String,
    pub locked_by_id: i64,
    pub locked_by_name: String,
    pub reason: String,
    pub locked_at: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
}

/// Stored as text; an unknown state read from the database is a decode error, not a guess.
impl sqlx::Type<sqlx::Postgres> for DeployState {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <&str as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for DeployState {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
        DeployState::parse(text).ok_or_else(|| format!("unknown deploy state {text:?}").into())
    }
}
