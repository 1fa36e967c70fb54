//! The `opsbot` binary's front doors: Discord, the CLI, HTTP, and the background workers.
//! They translate to and from the domain (`opsbot_commands`) and hold no business rules.

pub mod config;
pub mod dispatch;
