//! The domain's entry point: every command runs through a [`Desk`], which checks access,
//! runs the command and records the outcome in the audit trail, denied and failed ones included.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::access::RoleMap;
use crate::actor::Actor;
use crate::audit::{self, NewEvent, Outcome};
use crate::chat::Chat;
use crate::error::CommandError;
use crate::refusals::RefusalSampler;

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

    /// The audit event recording this invocation with `outcome`. Text PostgreSQL cannot
    /// store (NUL) is replaced by `␀`, so what was given is always recorded.
    pub fn event(&self, outcome: Outcome, detail: impl Into<String>) -> NewEvent {
        NewEvent {
            actor_id: self.actor.id,
            actor_name: clean(&self.actor.name),
            source: self.actor.source,
            guild_id: self.guild_id,
            channel_id: self.channel_id,
            interaction_id: self.interaction_id,
            command: clean(&self.command),
            args: clean_json(&self.args),
            outcome,
            detail: clean(&detail.into()),
            correlation_id: self.correlation_id,
        }
    }

    /// The first option whose value (or name) contains a NUL byte, by name.
    pub fn nul_option(&self) -> Option<String> {
        nul_option_in(&self.args)
    }
}

/// The first option of `args` whose value (or name) contains a NUL byte, by name: the check
/// a front door can make before it builds a whole [`Invocation`].
pub fn nul_option_in(args: &Value) -> Option<String> {
    fn find(value: &Value, path: &str) -> Option<String> {
        match value {
            Value::String(s) if s.contains('\0') => Some(path.to_owned()),
            Value::Array(items) => items.iter().find_map(|v| find(v, path)),
            Value::Object(map) => map.iter().find_map(|(k, v)| {
                if k.contains('\0') {
                    Some(clean(k))
                } else {
                    find(v, k)
                }
            }),
            _ => None,
        }
    }
    find(args, "the input")
}

/// What stands for a NUL byte in stored text.
pub const NUL_STAND_IN: &str = "␀";

/// `text` with every NUL replaced by [`NUL_STAND_IN`].
pub fn clean(text: &str) -> String {
    if text.contains('\0') {
        text.replace('\0', NUL_STAND_IN)
    } else {
        text.to_owned()
    }
}

fn clean_json(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(clean(s)),
        Value::Array(items) => Value::Array(items.iter().map(clean_json).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (clean(k), clean_json(v))).collect())
        }
        other => other.clone(),
    }
}

/// The shared state every command needs: the database, the access rules, the chat platform
/// for the few calls that need an answer, and each feature's own state. Front doors hold a
/// `Desk` and call its methods; its fields are the domain's, not theirs.
#[derive(Debug, Clone)]
pub struct Desk {
    pub(crate) pool: PgPool,
    pub(crate) roles: RoleMap,
    pub(crate) chat: Option<Arc<dyn Chat>>,
    /// Unauthenticated refusals, counted and sampled into the trail (see [`RefusalSampler`]).
    pub(crate) refusals: RefusalSampler,
    /// How many commands this replica works on at once (see [`crate::admission`]).
    pub(crate) admission: Arc<crate::admission::Admission>,
    /// Each feature's state (the deploy catalog, ...), by type: a new feature adds its own
    /// type here with [`Desk::with_feature`], never a field every other feature sees.
    features: Features,
}

#[derive(Clone, Default)]
struct Features(HashMap<TypeId, Arc<dyn Any + Send + Sync>>);

impl std::fmt::Debug for Features {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Features({} registered)", self.0.len())
    }
}

impl Desk {
    pub fn new(pool: PgPool, roles: RoleMap) -> Desk {
        Desk {
            pool,
            roles,
            chat: None,
            refusals: RefusalSampler::default(),
            admission: Arc::default(),
            features: Features::default(),
        }
    }

    /// Sets how many commands this replica works on at once ([`crate::admission`]).
    pub fn with_admission(mut self, admission: crate::admission::Admission) -> Desk {
        self.admission = Arc::new(admission);
        self
    }

    /// Registers a feature's state (one value per type; a second call replaces the first).
    pub fn with_feature<T: Any + Send + Sync>(mut self, state: T) -> Desk {
        self.features.0.insert(TypeId::of::<T>(), Arc::new(state));
        self
    }

    /// The state a feature registered, if it did.
    pub(crate) fn feature<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.features
            .0
            .get(&TypeId::of::<T>())
            .and_then(|state| state.downcast_ref::<T>())
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

    /// Admits an invocation from a front door, or refuses (and audits, with a cleaned copy of
    /// the options) input no command accepts: a NUL byte anywhere in the options.
    pub async fn admit(&self, inv: &Invocation) -> Result<(), CommandError> {
        match inv.nul_option() {
            None => Ok(()),
            Some(option) => {
                let error = CommandError::Invalid(format!(
                    "`{option}` contains a NUL byte (U+0000), which opsbot does not accept; remove it and try again"
                ));
                Err(self.refuse(inv, error).await)
            }
        }
    }

    /// Refuses a caller who did not authenticate at `door`: counted, logged (sampled) and
    /// recorded at most once per address and minute by the refusal flush, never row by row.
    pub fn refuse_unauthenticated(
        &self,
        door: &'static str,
        source: crate::actor::Source,
        address: std::net::IpAddr,
        reason: &str,
    ) {
        self.refusals.note(door, source, address, reason);
    }

    /// Writes the sampled refusals of ended minutes (all of them with `all`) to the trail.
    pub async fn flush_refusals(&self, all: bool) -> Result<usize, CommandError> {
        let sampled = self.refusals.flush(&self.pool, all).await?;
        Ok(sampled + self.flush_shed(all).await?)
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
                // A replay must not leave a second event behind; every other refusal,
                // conflicts included, is recorded.
                if !matches!(error, CommandError::Replayed(_)) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::Source;
    use serde_json::json;

    fn nul_invocation() -> Invocation {
        let actor = Actor {
            id: 7,
            name: "ana".to_owned(),
            roles: vec!["ops".to_owned()],
            source: Source::Discord,
        };
        Invocation::new(
            actor,
            "deploy lock",
            json!({ "service": "api", "reason": "hot\u{0}fix" }),
        )
    }

    #[test]
    fn nul_bytes_are_found_by_option_and_cleaned_for_the_record() {
        let inv = nul_invocation();
        assert_eq!(inv.nul_option().as_deref(), Some("reason"));
        let event = inv.event(Outcome::Invalid, "bad\u{0}detail");
        assert_eq!(event.args["reason"], "hot␀fix");
        assert_eq!(event.detail, "bad␀detail");
        let fine = Invocation::new(inv.actor.clone(), "whoami", json!({ "n": 1 }));
        assert_eq!(fine.nul_option(), None);
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn a_nul_byte_is_refused_and_audited(pool: PgPool) {
        let desk = Desk::new(pool.clone(), RoleMap::default());
        let refused = desk.admit(&nul_invocation()).await;
        let Err(CommandError::Invalid(text)) = refused else {
            panic!("expected Invalid, got {refused:?}");
        };
        assert!(text.contains("`reason` contains a NUL byte"), "{text}");
        let (outcome, reason): (String, String) =
            sqlx::query_as("SELECT outcome, args->>'reason' FROM audit_events")
                .fetch_one(&pool)
                .await
                .expect("one audit event");
        assert_eq!((outcome.as_str(), reason.as_str()), ("invalid", "hot␀fix"));
    }
}
