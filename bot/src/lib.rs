//! The `opsbot` binary's front doors: Discord, the CLI, HTTP, and the background workers.
//! They translate to and from the domain (`opsbot_commands`) and hold no business rules.

pub mod background;
pub mod cli;
pub mod config;
pub mod database;
pub mod discord;
pub mod dispatch;
pub mod emulator;
pub mod html;
pub mod run;
pub mod sealer;
pub mod shell;
pub mod telemetry;
pub mod web;
