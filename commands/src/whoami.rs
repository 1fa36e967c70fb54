//! `/whoami`: your name, your roles and the permissions they grant you. Needs no permission.

use serde::Serialize;

use crate::desk::{Desk, Invocation};
use crate::error::CommandError;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WhoAmI {
    pub id: i64,
    pub name: String,
    pub roles: Vec<String>,
    /// Grants from `[roles]` for the roles above, sorted.
    pub grants: Vec<String>,
}

impl Desk {
    pub async fn whoami(&self, inv: &Invocation) -> Result<WhoAmI, CommandError> {
        let who = WhoAmI {
            id: inv.actor.id,
            name: inv.actor.name.clone(),
            roles: inv.actor.roles.clone(),
            grants: self.roles.grants_of(&inv.actor),
        };
        self.conclude(inv, Ok(who), |w| format!("{} grants", w.grants.len()))
            .await
    }
}
