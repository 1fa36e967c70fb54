//! Who a message notifies, by Discord's rules (resources-message, "Allowed Mentions
//! Object"): mentions in the content (`<@id>`, `<@!id>`, `<@&id>`, `@everyone`, `@here`)
//! notify only as far as `allowed_mentions` allows. Without `allowed_mentions`, a regular
//! message parses every kind and an interaction response or webhook message parses users.
//! `parse` is exclusive with explicit `users` / `roles` lists of the same kind; Discord refuses
//! a body with both.
//!
//! Mentions inside code spans are counted too: the emulator errs towards reporting a ping.

use serde::Serialize;
use serde_json::Value;

/// Who a message notifies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pings {
    pub users: Vec<u64>,
    pub roles: Vec<u64>,
    /// `@everyone` or `@here`.
    pub everyone: bool,
}

impl Pings {
    /// Whether the message notifies no one.
    pub fn nobody(&self) -> bool {
        self.users.is_empty() && self.roles.is_empty() && !self.everyone
    }
}

/// Where a message was sent: the default `allowed_mentions` differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// `POST /channels/{id}/messages` and its edits.
    Message,
    /// Interaction responses, follow-ups and their edits (webhook routes).
    Interaction,
}

/// Discord's refusal of an `allowed_mentions` object, if it would refuse it.
pub fn validate(allowed: Option<&Value>) -> Result<(), String> {
    let Some(allowed) = allowed.filter(|a| !a.is_null()) else {
        return Ok(());
    };
    let parse = parse_list(allowed);
    for kind in ["users", "roles"] {
        let listed = allowed[kind].as_array().is_some_and(|l| !l.is_empty());
        if listed && parse.iter().any(|p| p == kind) {
            return Err(format!(
                "allowed_mentions: parse:[\"{kind}\"] and a {kind} list are mutually exclusive"
            ));
        }
    }
    Ok(())
}

/// Who `content` notifies when sent with `allowed` (the body's `allowed_mentions`).
pub fn pings(content: &str, allowed: Option<&Value>, sent: Sent) -> Pings {
    let found = mentioned(content);
    let allowed = allowed.filter(|a| !a.is_null());
    let parse: Vec<String> = match allowed {
        Some(allowed) => parse_list(allowed),
        None => match sent {
            Sent::Message => vec!["users".into(), "roles".into(), "everyone".into()],
            Sent::Interaction => vec!["users".into()],
        },
    };
    let listed = |kind: &str| -> Vec<u64> {
        allowed
            .and_then(|a| a[kind].as_array())
            .into_iter()
            .flatten()
            .filter_map(|id| match id {
                Value::String(s) => s.parse().ok(),
                Value::Number(n) => n.as_u64(),
                _ => None,
            })
            .collect()
    };
    let keep = |kind: &str, ids: Vec<u64>| -> Vec<u64> {
        if parse.iter().any(|p| p == kind) {
            return ids;
        }
        let allowed_ids = listed(kind);
        ids.into_iter()
            .filter(|id| allowed_ids.contains(id))
            .collect()
    };
    Pings {
        users: keep("users", found.users),
        roles: keep("roles", found.roles),
        everyone: found.everyone && parse.iter().any(|p| p == "everyone"),
    }
}

fn parse_list(allowed: &Value) -> Vec<String> {
    allowed["parse"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect()
}

/// Every mention written in `content` (a backslash before it escapes it).
fn mentioned(content: &str) -> Pings {
    let mut found = Pings::default();
    let bytes = content.as_bytes();
    let escaped = |at: usize| at > 0 && bytes[at - 1] == b'\\';
    for (at, _) in content.match_indices("<@") {
        if escaped(at) {
            continue;
        }
        let rest = &content[at + 2..];
        let (is_role, rest) = match rest.as_bytes().first() {
            Some(b'&') => (true, &rest[1..]),
            Some(b'!') => (false, &rest[1..]),
            _ => (false, rest),
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() || !rest[digits.len()..].starts_with('>') {
            continue;
        }
        let Ok(id) = digits.parse::<u64>() else {
            continue;
        };
        let list = if is_role {
            &mut found.roles
        } else {
            &mut found.users
        };
        if !list.contains(&id) {
            list.push(id);
        }
    }
    found.everyone = ["@everyone", "@here"]
        .iter()
        .any(|word| content.match_indices(word).any(|(at, _)| !escaped(at)));
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CONTENT: &str = "@here Hello <@&1234> and <@5678> and <@!42> 👋";

    #[test]
    fn without_allowed_mentions_messages_ping_everything_interactions_users() {
        let message = pings(CONTENT, None, Sent::Message);
        assert_eq!(
            message,
            Pings {
                users: vec![5678, 42],
                roles: vec![1234],
                everyone: true
            }
        );
        let reply = pings(CONTENT, None, Sent::Interaction);
        assert_eq!(
            reply,
            Pings {
                users: vec![5678, 42],
                roles: vec![],
                everyone: false
            }
        );
    }

    #[test]
    fn an_empty_parse_list_pings_nobody() {
        let allowed = json!({"parse": []});
        assert!(pings(CONTENT, Some(&allowed), Sent::Message).nobody());
        let serenity_empty = json!({"parse": [], "users": [], "roles": []});
        assert!(pings(CONTENT, Some(&serenity_empty), Sent::Interaction).nobody());
    }

    #[test]
    fn the_documented_examples() {
        // Only the 1234 role and the 5678 user; not @here.
        let allowed = json!({"parse": ["users", "roles"], "users": []});
        let p = pings(
            "@here Hello <@&1234> and <@5678> 👋",
            Some(&allowed),
            Sent::Message,
        );
        assert_eq!(
            (p.users, p.roles, p.everyone),
            (vec![5678], vec![1234], false)
        );
        // Listed ids ping only if mentioned.
        let allowed = json!({"users": ["123", "456"]});
        let p = pings(
            "<@123> Time for some memes 🤠",
            Some(&allowed),
            Sent::Message,
        );
        assert_eq!(p.users, vec![123]);
        // parse and a list of the same kind are refused.
        let invalid = json!({"parse": ["users"], "users": ["1234", "5678"]});
        assert!(validate(Some(&invalid)).is_err());
        assert!(validate(Some(&json!({"parse": ["everyone"], "users": ["1"]}))).is_ok());
        assert!(validate(None).is_ok());
    }

    #[test]
    fn escaped_and_malformed_mentions_do_not_ping() {
        let p = pings(r"\@everyone \<@12> <@abc> <@34 <@&>", None, Sent::Message);
        assert!(p.nobody(), "{p:?}");
    }
}
