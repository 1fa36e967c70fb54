//! `opsbot digest list [--after TIME]`: each digest's next fire time, in its time zone and in
//! UTC. `opsbot digest run NAME`: posts the digest now through the outbox (a running opsbot
//! delivers it), audited with the operator's login name; the schedule is not affected.

use std::io::Write as _;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use opsbot_commands::digest::DigestCatalog;
use opsbot_commands::{Actor, CommandError, Desk, Invocation, Source};

use crate::config::Config;
use crate::database::Database;

#[derive(Debug, Subcommand)]
pub enum DigestCommand {
    /// Print each digest's next fire time in its time zone
    List {
        /// Fire times after this RFC 3339 time instead of now
        #[arg(long, value_name = "TIME")]
        after: Option<DateTime<Utc>>,
    },
    /// Post a digest now (covering the time since its last fire time), through the outbox
    Run {
        /// The digest's name, as in [[digests]] name
        name: String,
    },
}

pub(super) async fn run(config: &Config, command: DigestCommand) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        DigestCommand::List { after } => {
            let text = list_text(&config.digest_catalog(), after.unwrap_or_else(Utc::now));
            write!(out, "{text}")?;
            Ok(ExitCode::SUCCESS)
        }
        DigestCommand::Run { name } => {
            let db = Database::connect(&config.database).await?;
            let desk = Desk::new(db.pool.clone(), config.role_map())
                .with_alerts(config.alerts_catalog())
                .with_digests(config.digest_catalog());
            let inv = Invocation::new(
                operator(),
                "digest run",
                serde_json::json!({ "name": name }),
            );
            let result = desk.digest_run_by_operator(&inv, &name, Utc::now()).await;
            db.close().await;
            match result {
                Ok(done) => {
                    writeln!(
                        out,
                        "queued digest {name} (outbox #{}) for {} – {}; a running opsbot posts it",
                        done.outbox_id,
                        done.window
                            .start
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        done.window
                            .end
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    )?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(CommandError::NotFound(why) | CommandError::Invalid(why)) => {
                    writeln!(std::io::stderr().lock(), "error: {why}")?;
                    Ok(ExitCode::from(2))
                }
                Err(e) => Err(anyhow::Error::new(e).context(format!("posting digest {name}"))),
            }
        }
    }
}

/// Whoever runs the CLI on this machine, as the audit trail names them: the login name of
/// the process's user (not `$USER`, which anyone can set).
fn operator() -> Actor {
    let uid = nix::unistd::getuid();
    let user = match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => format!("uid {uid}"),
    };
    Actor {
        id: 0,
        name: format!("{user} (cli)"),
        roles: Vec::new(),
        source: Source::Shell,
    }
}

/// One line per digest: `daily: next 2026-12-02 09:00:00 CET (2026-12-02T08:00:00Z), cron
/// "0 0 9 * * Mon-Fri" in Europe/Berlin, to channel 111`.
pub fn list_text(catalog: &DigestCatalog, after: DateTime<Utc>) -> String {
    let upcoming = catalog.upcoming(after);
    if upcoming.is_empty() {
        return "no digests configured (add [[digests]] entries to the config)\n".to_owned();
    }
    let mut text = String::new();
    for d in upcoming {
        let next = match d.next {
            Some(at) => format!(
                "next {} ({})",
                at.with_timezone(&d.zone).format("%Y-%m-%d %H:%M:%S %Z"),
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            None => "never fires again".to_owned(),
        };
        text.push_str(&format!(
            "{}: {next}, cron \"{}\" in {}, to channel {}\n",
            d.name,
            d.cron,
            d.zone.name(),
            d.channel
        ));
    }
    text
}
