//! The domain's entry point: every command runs through a [`Desk`], which checks access,
//! runs the command and records the outcome in the audit trail, denied and failed ones included.

use std::sync::Arc;

use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::access::RoleMap;
use crate::actor::Actor;
use crate::audit::{self, NewEvent, Outcome};
use crate::chat::Chat;
use crate::deploy::DeployCatalog;
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

/// The shared state every command needs: the database, the access rules, what the config
/// says about deploys, and the chat platform for the few calls that need an answer.
#[derive(Debug, Clone)]
pub struct Desk {
    pub pool: PgPool,
    pub roles: RoleMap,
    pub deploys: Arc<DeployCatalog>,
    pub chat: Option<Arc<dyn Chat>>,
    /// Wakes the deploy tracker when a deploy becomes ready to start.
    pub deploy_wakeup: Arc<Notify>,
}

impl Desk {
    pub fn new(pool: PgPool, roles: RoleMap) -> Desk {
        Desk {
            pool,
            roles,
            deploys: Arc::new(DeployCatalog::default()),
            chat: None,
            deploy_wakeup: Arc::new(Notify::new()),
        }
    }

    pub fn with_deploys(mut self, catalog: DeployCatalog) -> Desk {
        self.deploys = Arc::new(catalog);
        self
    }

    pub fn with_chat(mut self, chat: Arc<dyn Chat>) -> Desk {
        self.chat = Some(chat);
        self
    }

    /// Records a refusal (invalid input, a conflict, a denial by rule) and returns it.
    pub async fn refuse(&self, inv: &Invocation, error: CommandError) -> CommandError {
        match self.record(inv, error.outcome(), &error.to_string()).await {
            Ok(_) => error,
            Err(recording) => recording,
        }
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
        self.record(inv, Outcome::Denied, &denied.to_string())
            .await?;
        Err(denied)
    }

    /// Appends the audit event of `inv` with `outcome`.
    pub async fn record(
        &self,
        inv: &Invocation,
        outcome: Outcome,
        detail: &str,
    ) -> Result<i64, CommandError> {
        record_in(&self.pool, inv, outcome, detail).await
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
                    self.record(inv, error.outcome(), &error.to_string())
                        .await?;
                }
                Err(error)
            }
        }
    }
}

/// Appends the audit event of `inv` with `outcome` through `db` (pass a transaction to make
/// it commit with the change it records), counting it in the command metrics.
pub async fn record_in(
    db: impl sqlx::PgExecutor<'_>,
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
    audit::append(db, &inv.event(outcome, detail)).await
}
