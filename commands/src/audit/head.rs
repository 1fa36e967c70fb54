//! The chain head as an anchor kept outside the database: its keyed MAC
//! (`HMAC-SHA256(chain_key, "POSITION:HASH")`, which a database-only attacker cannot compute)
//! and the check of an expected head (`opsbot audit verify --expect-head POSITION:HASH`).
//!
//! The chain hash alone is plain SHA-256: anyone who can write the tables can recompute the
//! whole chain, or cut events off its tail, and `verify` still holds. Only a head recorded
//! elsewhere (a checkpoint file, a chat message, an event stream) shows it.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::PgPool;

/// Bytes a chain key needs at least: a MAC is only as strong as a key nobody can guess.
pub const CHAIN_KEY_MIN_LEN: usize = 32;

/// The secret `[audit] chain_key`, kept outside the database. `{:?}` never shows it.
#[derive(Clone)]
pub struct ChainKey {
    mac: Hmac<Sha256>,
}

/// A chain key shorter than [`CHAIN_KEY_MIN_LEN`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the chain key has {0} bytes; it needs at least {CHAIN_KEY_MIN_LEN} (e.g. `openssl rand -hex 32`)"
)]
pub struct ChainKeyTooShort(pub usize);

impl ChainKey {
    pub fn new(key: &[u8]) -> Result<ChainKey, ChainKeyTooShort> {
        if key.len() < CHAIN_KEY_MIN_LEN {
            return Err(ChainKeyTooShort(key.len()));
        }
        // HMAC takes keys of every length; the error cannot happen, but is not unwrapped.
        let mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| ChainKeyTooShort(key.len()))?;
        Ok(ChainKey { mac })
    }

    fn keyed(&self, position: i64, hash: &str) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(format!("{position}:{}", hash.to_ascii_lowercase()).as_bytes());
        mac
    }

    /// `HMAC-SHA256(key, "POSITION:HASH")` in lowercase hex; `hash` is the head's hex hash.
    pub fn head_mac(&self, position: i64, hash: &str) -> String {
        hex::encode(self.keyed(position, hash).finalize().into_bytes())
    }

    /// Whether `mac` (hex) is this key's MAC of the head, compared in constant time.
    pub fn verifies(&self, position: i64, hash: &str, mac: &str) -> bool {
        hex::decode(mac).is_ok_and(|mac| self.keyed(position, hash).verify_slice(&mac).is_ok())
    }
}

impl fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChainKey(<redacted>)")
    }
}

/// A head recorded elsewhere: `POSITION:HASH`, as `opsbot audit verify` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedHead {
    pub position: i64,
    /// 64 lowercase hex digits.
    pub hash: String,
}

impl FromStr for ExpectedHead {
    type Err = String;

    fn from_str(text: &str) -> Result<ExpectedHead, String> {
        let usage = "write POSITION:HASH, e.g. 1234:9f86d08…, as `opsbot audit verify` prints it";
        let (position, hash) = text
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("`{text}` has no `:`; {usage}"))?;
        let position = position
            .parse::<i64>()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| format!("`{position}` is not a chain position (1, 2, …); {usage}"))?;
        let hash = hash.to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "`{hash}` is not a chain hash (64 hex digits); {usage}"
            ));
        }
        Ok(ExpectedHead { position, hash })
    }
}

impl fmt::Display for ExpectedHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.position, self.hash)
    }
}

/// How the chain differs from an expected head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadMismatch {
    /// The chain no longer reaches the position: events were cut off its tail.
    Truncated { position: i64, last: Option<i64> },
    /// The position holds another hash: the chain was rewritten at or before it.
    Rewritten {
        position: i64,
        expected: String,
        actual: String,
    },
}

impl fmt::Display for HeadMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadMismatch::Truncated {
                position,
                last: Some(last),
            } => write!(
                f,
                "the chain has no position {position}, it ends at position {last}: events were cut off its tail (truncated)"
            ),
            HeadMismatch::Truncated {
                position,
                last: None,
            } => write!(
                f,
                "the chain has no position {position}, it is empty: every event was cut off (truncated)"
            ),
            HeadMismatch::Rewritten {
                position,
                expected,
                actual,
            } => write!(
                f,
                "position {position} has hash {actual}, not {expected}: the chain was rewritten at or before it"
            ),
        }
    }
}

/// Whether the chain at `expected.position` has `expected.hash` (read-only).
///
/// This checks the one position; `verify` checks that everything up to the head chains onto
/// it, so together they prove that the chain still extends the recorded head.
pub async fn check_expected_head(
    pool: &PgPool,
    expected: &ExpectedHead,
) -> Result<Result<(), HeadMismatch>, sqlx::Error> {
    let found: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT hash FROM audit_chain WHERE position = $1")
            .bind(expected.position)
            .fetch_optional(pool)
            .await?;
    Ok(match found {
        Some(hash) if hex::encode(&hash) == expected.hash => Ok(()),
        Some(hash) => Err(HeadMismatch::Rewritten {
            position: expected.position,
            expected: expected.hash.clone(),
            actual: hex::encode(hash),
        }),
        None => {
            let last: Option<i64> = sqlx::query_scalar("SELECT max(position) FROM audit_chain")
                .fetch_one(pool)
                .await?;
            Err(HeadMismatch::Truncated {
                position: expected.position,
                last,
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ChainKey {
        ChainKey::new(b"0123456789abcdef0123456789abcdef").expect("long enough")
    }

    #[test]
    fn the_head_mac_is_hmac_sha256_of_position_and_hash() {
        let hash = "ab".repeat(32);
        let mac = key().head_mac(7, &hash);
        // Independently: HMAC-SHA256(key, "7:abab…").
        let mut reference =
            Hmac::<Sha256>::new_from_slice(b"0123456789abcdef0123456789abcdef").expect("hmac key");
        reference.update(format!("7:{hash}").as_bytes());
        assert_eq!(mac, hex::encode(reference.finalize().into_bytes()));
        assert!(key().verifies(7, &hash, &mac));
        assert!(key().verifies(7, &hash.to_uppercase(), &mac));
        assert!(!key().verifies(8, &hash, &mac));
        let other = ChainKey::new(b"another key, just as long as it must be").expect("key");
        assert!(!other.verifies(7, &hash, &mac));
        assert!(!key().verifies(7, &hash, "not hex"));
        assert_eq!(format!("{:?}", key()), "ChainKey(<redacted>)");
    }

    #[test]
    fn a_short_key_is_refused() {
        assert_eq!(
            ChainKey::new(b"short").expect_err("too short"),
            ChainKeyTooShort(5)
        );
    }

    #[test]
    fn expected_heads_parse_and_explain_their_mistakes() {
        let hash = "AB".repeat(32);
        let parsed: ExpectedHead = format!("12:{hash}").parse().expect("parses");
        assert_eq!(parsed.position, 12);
        assert_eq!(parsed.hash, "ab".repeat(32));
        assert_eq!(parsed.to_string(), format!("12:{}", "ab".repeat(32)));
        for bad in [
            "12",
            "0:ab",
            "x:ab",
            "3:abc",
            &format!("3:{}", "zz".repeat(32)),
        ] {
            let err = bad.parse::<ExpectedHead>().expect_err(bad);
            assert!(err.contains("POSITION:HASH"), "{err}");
        }
    }
}
