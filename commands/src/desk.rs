//! The domain's entry point: every command runs through a [`Desk`], which checks access,
//! runs the command and records the outcome in the audit trail, denied and failed ones included.

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::access::RoleMap;
use crate::actor::Actor;
use crate::audit::{self, NewEvent, Outcome};
use crate::error::CommandError;

/// One invocation of a command, from any front door.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub actor: Actor,
    /// The command without options: `whoami`, `audit verify`.
    pub command: String,
    /// The options as given, even when invalid.
    pub args: Value,
    pub guild_id: Option<i64>,
    pub channel_id: Option<i64>,
    pub interaction_id: Option<i64>,
    pub correlation_id: Option<Uuid>,
}

impl Invocation {
    pub fn new(actor: Actor, command: impl Into<String>, args: Value) -> Invocation {
        Invocation {
            actor,
            command: command.into(),
            args,
            guild_id: None,
            channel_id: None,
            interaction_id: None,
            correlation_id: None,
        }
    }

    /// The audit event recording this invocation with `outcome`.
    pub fn event(&self, outcome: Outcome, detail: impl Into<String>) -> NewEvent {
        NewEvent {
            actor_id: self.actor.id,
            actor_name: self.actor.name.clone(),
            source: self.actor.source,
            guild_id: self.guild_id,
            channel_id: self.channel_id,
            interaction_id: self.interaction_id,
            command: self.command.clone(),
            args: self.args.clone(),
            outcome,
            detail: detail.into(),
            correlation_id: self.correlation_id,
        }
    }
}

/// The shared state every command needs: the database and the access rules.
#[derive(Debug, Clone)]
pub struct Desk {
    pub pool: PgPool,
    pub roles: RoleMap,
}

impl Desk {
    pub fn new(pool: PgPool, roles: RoleMap) -> Desk {
        Desk { pool, roles }
    }

    /// Checks `permission`; a denial is audited (outcome `denied`) before it is returned.
    pub async fn authorize(
        &self,
        inv: &Invocation,
        permission: &str,
        action: &str,
    ) -> Result<(), CommandError> {
        if self.roles.allows(&inv.actor, permission) {
            return Ok(());
        }
        let denied = CommandError::Denied {
            permission: permission.to_owned(),
            action: action.to_owned(),
        };
        self.record(inv, Outcome::Denied, &denied.to_string()).await?;
        Err(denied)
    }

    /// Appends the audit event of `inv` with `outcome`.
    pub async fn record(
        &self,
        inv: &Invocation,
        outcome: Outcome,
        detail: &str,
    ) -> Result<i64, CommandError> {
        metrics::counter!(
            "opsbot_commands_total",
            "command" => inv.command.clone(),
            "outcome" => outcome.as_str()
        )
        .increment(1);
        audit::append(&self.pool, &inv.event(outcome, detail)).await
    }

    /// Records how a command ended: `ok` with `detail` of the value, or the error's outcome
    /// with its user-facing text. Internal errors are recorded by reference only.
    pub async fn conclude<T>(
        &self,
        inv: &Invocation,
        result: Result<T, CommandError>,
        detail: impl FnOnce(&T) -> String,
    ) -> Result<T, CommandError> {
        match result {
            Ok(value) => {
                self.record(inv, Outcome::Ok, &detail(&value)).await?;
                Ok(value)
            }
            Err(error) => {
                // A replayed interaction must not leave a second event behind.
                if !matches!(error, CommandError::Conflict(_) if inv.interaction_id.is_some()) {
                    self.record(inv, error.outcome(), &error.to_string()).await?;
                }
                Err(error)
            }
        }
    }
}
