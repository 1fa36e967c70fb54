//! `opsbot shell` in text mode through a pipe, end to end: Discord's markup is rendered (no
//! `**` or `<@…>` reaches the terminal), a mistyped command or shell line gets the nearest
//! one, and the log lines stay on stderr (a pipe keeps today's streams).

mod support;

use std::process::Stdio;
use std::time::Duration;

use sqlx::PgPool;
use support::database_url;

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn the_piped_shell_prints_discord_markup_as_text_and_suggests_commands(pool: PgPool) {
    let config = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(
        config.path(),
        "[roles]\nops = [\"audit:*\"]\n[http]\nlisten = \"127.0.0.1:0\"\n",
    )
    .expect("write config");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_opsbot"))
        .args(["shell", "--user", "ana", "--roles", "ops", "--config"])
        .arg(config.path())
        .env("DATABASE_URL", database_url(&pool))
        .env_remove("NO_COLOR")
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start opsbot shell");
    let script = "/whoami\n/deplyo\n:clik Approve\n/audit rcent\n/audit recent cuont:1\n";
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(script.as_bytes())
            .await
            .expect("write script");
    }
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the shell exits at end of input")
        .expect("output");
    let logs = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{logs}");
    assert!(
        logs.contains("connected to the database"),
        "piped, the log lines stay on stderr: {logs}"
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!text.contains('\x1b'), "no colours into a pipe: {text:?}");
    assert!(!text.contains("**") && !text.contains("<@"), "{text}");
    // The member id is the emulator's; the rest is what a person reads.
    let text: String = text
        .lines()
        .map(|line| match line.split_once(" (") {
            Some((name, id)) if name == "ana" && id.ends_with(')') => "ana (ID)".to_owned(),
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!(text, @r#"
    [reply in #general, only you can see this]
    ana (ID)
    roles: ops
    permissions: audit:*
    error: unknown command /deplyo; did you mean /deploy?
    error: unknown shell command `:clik`; did you mean :click?
    error: unknown subcommand "rcent" for /audit; did you mean /audit recent? subcommands: recent, verify
    error: unknown option "cuont" for /audit recent; did you mean count? options: count, actor, command, outcome
    "#);
}
