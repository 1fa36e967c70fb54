//! Fault scenarios (issue 14), each against a private PostgreSQL the test starts itself
//! (`support/private_pg.rs`), never the machine's shared server. RELIABILITY.md lists them
//! with what each proves and the figures of the last run; each prints its figures on a
//! `FAULT` line (`cargo test -p opsbot --test faults -- --nocapture`).

mod support;

#[path = "faults/backends.rs"]
mod backends;
#[path = "faults/discord_limits.rs"]
mod discord_limits;
#[path = "faults/fake_discord.rs"]
mod fake_discord;
#[path = "faults/harness.rs"]
mod harness;
#[path = "faults/outage.rs"]
mod outage;
#[path = "faults/restart.rs"]
mod restart;
#[path = "faults/sigkill.rs"]
mod sigkill;
#[path = "faults/storage.rs"]
mod storage;
