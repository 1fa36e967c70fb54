//! Permissions and the role → permission map from `[roles]` in the config.
//!
//! A permission is colon-separated segments: `deploy:production`, `audit:read`,
//! `deploy:approve:production`. A grant may end in `*`, which matches every remaining
//! segment: `deploy:*` grants `deploy:staging` and `deploy:approve:production`; `*` grants all.

use std::collections::BTreeMap;

use crate::actor::Actor;

/// Checks the spelling of a grant as written in `[roles]`.
pub fn validate_grant(grant: &str) -> Result<(), String> {
    if grant == "*" {
        return Ok(());
    }
    let segments: Vec<&str> = grant.split(':').collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        if *segment == "*" && last {
            continue;
        }
        if segment.is_empty()
            || !segment
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(format!(
                "`{grant}` is not a permission: write lowercase segments separated by `:`, optionally ending in `*` (e.g. `deploy:*`, `audit:read`)"
            ));
        }
    }
    Ok(())
}

/// Whether `grant` (possibly ending in `*`) covers `permission`.
pub fn grant_covers(grant: &str, permission: &str) -> bool {
    if grant == "*" {
        return true;
    }
    match grant.strip_suffix(":*") {
        Some(prefix) => permission
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with(':') && rest.len() > 1),
        None => grant == permission,
    }
}

/// The role a dashboard token acts with on the web door. It grants `audit:*` and nothing
/// else, and only to the token's principal (source web, id 0: no Discord user has id 0), so a
/// guild role that happens to carry this name grants nothing.
pub const DASHBOARD_TOKEN_ROLE: &str = "dashboard token";

fn is_dashboard_token(actor: &Actor) -> bool {
    actor.source == crate::actor::Source::Web
        && actor.id == 0
        && actor.roles.iter().any(|r| r == DASHBOARD_TOKEN_ROLE)
}

/// Role name → grants, as configured.
#[derive(Debug, Clone, Default)]
pub struct RoleMap {
    roles: BTreeMap<String, Vec<String>>,
}

impl RoleMap {
    /// Builds the map, refusing grants that are not spelled as permissions.
    pub fn new(roles: BTreeMap<String, Vec<String>>) -> Result<RoleMap, String> {
        for (role, grants) in &roles {
            for grant in grants {
                validate_grant(grant).map_err(|e| format!("role `{role}`: {e}"))?;
            }
        }
        Ok(RoleMap { roles })
    }

    /// The grants an actor holds through their roles, sorted and de-duplicated.
    pub fn grants_of(&self, actor: &Actor) -> Vec<String> {
        let mut grants: Vec<String> = actor
            .roles
            .iter()
            .filter_map(|role| self.roles.get(role))
            .flatten()
            .cloned()
            .collect();
        grants.sort();
        grants.dedup();
        grants
    }

    pub fn allows(&self, actor: &Actor, permission: &str) -> bool {
        if is_dashboard_token(actor) && grant_covers("audit:*", permission) {
            return true;
        }
        actor
            .roles
            .iter()
            .filter_map(|role| self.roles.get(role))
            .flatten()
            .any(|grant| grant_covers(grant, permission))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::Source;

    fn actor(roles: &[&str]) -> Actor {
        Actor {
            id: 1,
            name: "ana".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            source: Source::Shell,
        }
    }

    #[test]
    fn the_dashboard_token_role_reads_the_audit_log_only_as_the_token() {
        let map = RoleMap::default();
        let mut token = actor(&[DASHBOARD_TOKEN_ROLE]);
        token.id = 0;
        token.source = Source::Web;
        assert!(map.allows(&token, "audit:read"));
        assert!(map.allows(&token, "audit:verify"));
        assert!(!map.allows(&token, "deploy:production"));
        // A Discord member whose guild role has the same name gets nothing from it.
        let mut member = token.clone();
        member.id = 42;
        assert!(!map.allows(&member, "audit:read"));
        let mut shell = token.clone();
        shell.source = Source::Shell;
        assert!(!map.allows(&shell, "audit:read"));
    }

    #[test]
    fn star_matches_every_remaining_segment() {
        assert!(grant_covers("deploy:*", "deploy:staging"));
        assert!(grant_covers("deploy:*", "deploy:approve:production"));
        assert!(grant_covers("*", "audit:read"));
        assert!(!grant_covers("deploy:*", "deploy"));
        // A star stands for at least one more segment: an empty one is none.
        assert!(!grant_covers("deploy:*", "deploy:"));
        assert!(!grant_covers("deploy:*", "deployer:x"));
        assert!(!grant_covers("deploy:staging", "deploy:production"));
        assert!(grant_covers(
            "deploy:approve:*",
            "deploy:approve:production"
        ));
    }

    #[test]
    fn role_map_grants_by_role_name() {
        let map = RoleMap::new(BTreeMap::from([
            ("ops".to_string(), vec!["audit:*".to_string()]),
            ("dev".to_string(), vec!["deploy:staging".to_string()]),
        ]))
        .expect("valid");
        assert!(map.allows(&actor(&["ops"]), "audit:read"));
        assert!(!map.allows(&actor(&["dev"]), "audit:read"));
        assert!(!map.allows(&actor(&[]), "audit:read"));
        assert_eq!(
            map.grants_of(&actor(&["dev", "ops", "unknown"])),
            vec!["audit:*", "deploy:staging"]
        );
    }

    #[test]
    fn grants_may_use_digits_dashes_and_underscores() {
        for good in [
            "deploy:us-east-1",
            "deploy:eu_west_2",
            "deploy:*",
            "*",
            "a:b:*",
        ] {
            assert_eq!(validate_grant(good), Ok(()), "{good}");
        }
        for bad in ["deploy:us.east", "deploy:*x", "deploy:x*", ":x", "x:"] {
            assert!(validate_grant(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_grants_are_refused_with_the_role_named() {
        for bad in ["Deploy:x", "deploy::x", "deploy:*:x", "", "de ploy"] {
            let err = RoleMap::new(BTreeMap::from([("ops".to_string(), vec![bad.to_string()])]))
                .expect_err(bad);
            assert!(err.starts_with("role `ops`"), "{err}");
        }
    }
}
