//! The `opsbot` command line: one binary, one subcommand per job.

mod digest;
mod status;
mod verify;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use opsbot_commands::audit;

use crate::config::{Config, check_command};
use crate::database::Database;
use crate::telemetry::{self, LogFormat};

/// opsbot: the operations desk of a platform team, on Discord.
#[derive(Debug, Parser)]
#[command(name = "opsbot", version, about, propagate_version = true)]
pub struct Cli {
    /// Configuration file [default: opsbot.toml if it exists, else built-in defaults]
    #[arg(long, global = true, env = "OPSBOT_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// How log lines (on stderr) are written
    #[arg(
        long,
        global = true,
        env = "OPSBOT_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: CliCommand,
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Run the bot: Discord gateway (with a token), HTTP server, audit sealer, outbox dispatcher
    Run,
    /// The whole bot against a built-in Discord emulator: type slash commands in the terminal
    Shell {
        /// The member you act as (created on first use)
        #[arg(long, default_value = "you")]
        user: String,
        /// Your roles, comma-separated (names from [roles])
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// One JSON object per line on stdout instead of text
        #[arg(long)]
        json: bool,
        /// Log lines on stderr even at a terminal (there they go to .opsbot/shell.log)
        #[arg(long)]
        verbose: bool,
    },
    /// Apply database migrations and exit
    Migrate,
    /// Check the configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The slash commands opsbot registers with Discord
    #[command(subcommand)]
    Commands(CommandsCommand),
    /// Read and verify the audit trail
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The replicas running against this database, and which leases each holds
    Status,
    /// Scheduled digests ([[digests]] in the config)
    #[command(subcommand)]
    Digest(digest::DigestCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every problem in the configuration (exit 2), or confirm it is valid (exit 0)
    Check,
}

#[derive(Debug, Subcommand)]
pub enum CommandsCommand {
    /// Print the exact JSON registered with Discord
    Export,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain, read-only: `ok: N events` (exit 0) or each bad event (exit 1)
    Verify {
        /// A head recorded earlier (as this command prints it): fails if the chain no longer
        /// has HASH at POSITION (cut off: position missing; rewritten: another hash). Repeatable
        #[arg(long = "expect-head", value_name = "POSITION:HASH")]
        expect_head: Vec<audit::ExpectedHead>,
        /// A checkpoint file written by `opsbot run` ([audit] checkpoint_path, checked by
        /// default when configured): fails if the chain no longer holds it or its MAC is wrong
        #[arg(long, value_name = "PATH")]
        checkpoint: Option<PathBuf>,
    },
    /// Print the newest events, oldest first
    Tail {
        /// How many events
        #[arg(short = 'n', long = "lines", default_value_t = 20)]
        n: i64,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_file = shell_log_file(
        &cli.command,
        std::io::IsTerminal::is_terminal(&std::io::stdin()),
    );
    telemetry::init_logging(cli.log_format, log_file.as_deref());
    if let CliCommand::Config(ConfigCommand::Check) = cli.command {
        return check_command(cli.config.as_deref());
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!(
                "error: the configuration is invalid:\n{errors}\n(run `opsbot config check` for hints)"
            );
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli.command, config, log_file)) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "opsbot failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Where an interactive `opsbot shell` writes its log lines: text mode at a terminal without
/// `--verbose`. `--json`, a pipe and every other command keep them on stderr.
fn shell_log_file(command: &CliCommand, stdin_is_terminal: bool) -> Option<PathBuf> {
    match command {
        CliCommand::Shell {
            json: false,
            verbose: false,
            ..
        } if stdin_is_terminal => Some(PathBuf::from(crate::shell::LOG_FILE)),
        _ => None,
    }
}

async fn execute(
    command: CliCommand,
    config: Config,
    log_file: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    match command {
        CliCommand::Run => {
            crate::run::run(config).await?;
            Ok(ExitCode::SUCCESS)
        }
        CliCommand::Shell {
            user, roles, json, ..
        } => {
            let options = crate::shell::ShellOptions {
                user,
                roles,
                json,
                log_file,
            };
            crate::shell::shell(config, options).await?;
            Ok(ExitCode::SUCCESS)
        }
        CliCommand::Migrate => {
            let db = Database::connect(&config.database).await?;
            let result = db.migrate().await;
            db.close().await;
            result?;
            tracing::info!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        CliCommand::Config(ConfigCommand::Check) => Ok(check_command(None)),
        CliCommand::Commands(CommandsCommand::Export) => {
            let json = serde_json::to_string_pretty(&crate::discord::registration_json())?;
            writeln!(std::io::stdout().lock(), "{json}")?;
            Ok(ExitCode::SUCCESS)
        }
        CliCommand::Status => {
            let db = Database::connect(&config.database).await?;
            let report = status::status_command(&db).await;
            db.close().await;
            write!(
                std::io::stdout().lock(),
                "{}",
                report
                    .map_err(|e| e.context("reading the replicas (run `opsbot migrate` first?)"))?
            )?;
            Ok(ExitCode::SUCCESS)
        }
        CliCommand::Digest(command) => digest::run(&config, command).await,
        CliCommand::Audit(audit_command) => {
            let db = Database::connect(&config.database).await?;
            let result = run_audit(&db, &config.audit, audit_command).await;
            db.close().await;
            result
        }
    }
}

async fn run_audit(
    db: &Database,
    audit_config: &crate::config::AuditConfig,
    command: AuditCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify {
            expect_head,
            checkpoint,
        } => verify::verify_command(db, audit_config, &expect_head, checkpoint.as_deref()).await,
        AuditCommand::Tail { n, json } => {
            if n < 1 {
                anyhow::bail!("-n must be at least 1");
            }
            let mut out = std::io::stdout().lock();
            for event in audit::tail(&db.pool, n).await.map_err(not_migrated_hint)? {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&event)?)?;
                } else {
                    writeln!(out, "{}", tail_line(&event))?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One event as a line for people: `#12 2026-11-28T10:00:00Z discord ana whoami {} -> ok: detail`.
pub fn tail_line(event: &audit::AuditEvent) -> String {
    let detail = if event.detail.is_empty() {
        String::new()
    } else {
        format!(": {}", event.detail)
    };
    format!(
        "#{} {} {} {} {} {} -> {}{}{}",
        event.id,
        event.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        event.source,
        event.actor_name,
        event.command,
        event.args,
        event.outcome,
        detail,
        if event.hash.is_none() {
            " (unsealed)"
        } else {
            ""
        },
    )
}

fn not_migrated_hint(error: sqlx::Error) -> anyhow::Error {
    let missing_table = error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "42P01");
    if missing_table {
        anyhow::anyhow!(
            "this database has no audit trail yet: run `opsbot migrate` (or `opsbot run`) first"
        )
    } else {
        anyhow::Error::new(error).context("reading the audit trail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn config_is_global_before_or_after_the_subcommand() {
        for args in [
            ["opsbot", "--config", "x.toml", "audit", "verify"],
            ["opsbot", "audit", "verify", "--config", "x.toml"],
        ] {
            let cli = Cli::try_parse_from(args).expect("parses");
            assert_eq!(cli.config, Some(PathBuf::from("x.toml")));
            assert!(matches!(
                cli.command,
                CliCommand::Audit(AuditCommand::Verify { .. })
            ));
        }
        let cli =
            Cli::try_parse_from(["opsbot", "audit", "tail", "-n", "5", "--json"]).expect("parses");
        assert!(matches!(
            cli.command,
            CliCommand::Audit(AuditCommand::Tail { n: 5, json: true })
        ));
        assert!(Cli::try_parse_from(["opsbot", "deploy"]).is_err());
    }

    #[test]
    fn only_an_interactive_text_shell_logs_to_its_file() {
        let log_file = |args: &[&str], terminal: bool| {
            let cli = Cli::try_parse_from(args).expect("parses");
            shell_log_file(&cli.command, terminal)
        };
        let file = Some(PathBuf::from(".opsbot/shell.log"));
        assert_eq!(log_file(&["opsbot", "shell"], true), file);
        assert_eq!(log_file(&["opsbot", "shell", "--verbose"], true), None);
        assert_eq!(log_file(&["opsbot", "shell", "--json"], true), None);
        assert_eq!(log_file(&["opsbot", "shell"], false), None, "piped");
        assert_eq!(log_file(&["opsbot", "run"], true), None);
    }

    #[test]
    fn verify_takes_expected_heads_and_a_checkpoint() {
        let hash = "ab".repeat(32);
        let head = format!("5:{hash}");
        let cli = Cli::try_parse_from([
            "opsbot",
            "audit",
            "verify",
            "--expect-head",
            &head,
            "--expect-head",
            &format!("7:{}", hash.to_uppercase()),
            "--checkpoint",
            "head.json",
        ])
        .expect("parses");
        let CliCommand::Audit(AuditCommand::Verify {
            expect_head,
            checkpoint,
        }) = cli.command
        else {
            panic!("not audit verify: {:?}", cli.command);
        };
        let heads: Vec<String> = expect_head.iter().map(ToString::to_string).collect();
        assert_eq!(heads, [head, format!("7:{hash}")]);
        assert_eq!(checkpoint, Some(PathBuf::from("head.json")));
        let err = Cli::try_parse_from(["opsbot", "audit", "verify", "--expect-head", "5"])
            .expect_err("no hash");
        assert!(err.to_string().contains("POSITION:HASH"), "{err}");
    }
}
