//! The canonical bytes of an event and the chain hash over them. Changing anything here
//! invalidates every existing chain: treat it as a file format.

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The predecessor hash of the first event in the chain.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// The fields that are hashed, exactly as stored.
#[derive(Debug)]
pub struct CanonicalFields<'a> {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor_id: i64,
    pub actor_name: &'a str,
    pub source: &'a str,
    pub guild_id: Option<i64>,
    pub channel_id: Option<i64>,
    pub interaction_id: Option<i64>,
    pub command: &'a str,
    pub args: &'a serde_json::Value,
    pub outcome: &'a str,
    pub detail: &'a str,
    pub correlation_id: Option<Uuid>,
}

/// An event row as stored, read by the sealer and `verify` (runtime queries map onto it).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct StoredEvent {
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
}

/// The event columns of `audit_events e`, in [`StoredEvent`]'s names, for runtime queries.
pub(super) const EVENT_COLUMNS: &str = "e.id, e.at, e.actor_id, e.actor_name, e.source, e.guild_id, e.channel_id, \
     e.interaction_id, e.command, e.args, e.outcome, e.detail, e.correlation_id";

impl StoredEvent {
    pub fn canonical(&self) -> Vec<u8> {
        canonical_bytes(&CanonicalFields {
            id: self.id,
            at: self.at,
            actor_id: self.actor_id,
            actor_name: &self.actor_name,
            source: &self.source,
            guild_id: self.guild_id,
            channel_id: self.channel_id,
            interaction_id: self.interaction_id,
            command: &self.command,
            args: &self.args,
            outcome: &self.outcome,
            detail: &self.detail,
            correlation_id: self.correlation_id,
        })
    }
}

/// JSON with sorted keys (serde_json's map is ordered by key) and microsecond UTC times,
/// the precision Postgres stores.
pub fn canonical_bytes(fields: &CanonicalFields<'_>) -> Vec<u8> {
    let value = serde_json::json!({
        "id": fields.id,
        "at": fields.at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "actor_id": fields.actor_id,
        "actor_name": fields.actor_name,
        "source": fields.source,
        "guild_id": fields.guild_id,
        "channel_id": fields.channel_id,
        "interaction_id": fields.interaction_id,
        "command": fields.command,
        "args": fields.args,
        "outcome": fields.outcome,
        "detail": fields.detail,
        "correlation_id": fields.correlation_id,
    });
    serde_json::to_vec(&value).unwrap_or_default()
}

/// `sha256(prev_hash || canonical(event))`.
pub fn chain_hash(prev_hash: &[u8], canonical: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    hasher.update(canonical);
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_is_stable() {
        let args = serde_json::json!({"z": 1, "a": "<b>"});
        let at = DateTime::parse_from_rfc3339("2026-11-28T10:00:00.123456Z")
            .expect("valid")
            .with_timezone(&Utc);
        let fields = CanonicalFields {
            id: 7,
            at,
            actor_id: 42,
            actor_name: "ana",
            source: "discord",
            guild_id: Some(1),
            channel_id: None,
            interaction_id: None,
            command: "whoami",
            args: &args,
            outcome: "ok",
            detail: "",
            correlation_id: None,
        };
        let bytes = canonical_bytes(&fields);
        insta::assert_snapshot!(String::from_utf8_lossy(&bytes), @r#"{"actor_id":42,"actor_name":"ana","args":{"a":"<b>","z":1},"at":"2026-11-28T10:00:00.123456Z","channel_id":null,"command":"whoami","correlation_id":null,"detail":"","guild_id":1,"id":7,"interaction_id":null,"outcome":"ok","source":"discord"}"#);
        assert_eq!(
            hex::encode(chain_hash(&GENESIS_HASH, &bytes)),
            hex::encode(chain_hash(&GENESIS_HASH, &canonical_bytes(&fields)))
        );
        assert_ne!(
            chain_hash(&GENESIS_HASH, &bytes),
            chain_hash(&[1; 32], &bytes)
        );
    }
}
