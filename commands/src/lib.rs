//! opsbot's domain: the audit trail, access control, the outbox and the commands.
//!
//! Front doors (`bot/`: Discord, shell, web, scheduler) build an [`Invocation`], call a
//! [`Desk`] method and render the result or the [`CommandError`]. Nothing here knows about
//! Discord, HTTP or any framework.

pub mod access;
pub mod actor;
pub mod admission;
pub mod alerts;
pub mod audit;
pub mod chat;
pub mod deploy;
pub mod desk;
pub mod digest;
pub mod error;
pub mod events;
pub mod http_client;
pub mod incident;
pub mod lease;
pub mod metrics;
pub mod outbox;
pub mod overview;
pub mod refusals;
pub mod replicas;
pub mod schema;
pub mod sessions;
pub mod whoami;

pub use actor::{Actor, Source};
pub use desk::{Desk, Invocation};
pub use error::CommandError;

/// The schema, shared by `opsbot migrate`, `opsbot run` and every `#[sqlx::test]`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");
