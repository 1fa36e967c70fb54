//! The quick ways in, through the emulator: `/incident declare` with no options opens a form
//! (a modal checked against Discord's spec) whose submit declares the incident; the
//! **Declare incident** message command opens it pre-filled from the message; autocomplete
//! of `/deploy run service:` and `/incident declare severity:` lists what is configured.

mod support;

use opsbot::emulator::EmulatorEvent;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::{TestBot, discord_spec};

const INCIDENTS: u64 = 222_000_000_000_000_222;
const CATEGORY: u64 = 444_000_000_000_000_444;

fn config() -> String {
    config_toml()
}

fn config_toml() -> String {
    format!(
        r##"
[roles]
ops = ["incident:*", "deploy:*"]
dev = ["deploy:staging"]
[http]
listen = "127.0.0.1:0"
[channels]
incidents = {INCIDENTS}
incident_category = {CATEGORY}
[incidents.severities.sev1]
description = "customer-facing outage"
[incidents.severities.sev3]
description = "degraded"
[[services]]
name = "api"
environments = ["staging", "production"]
backend = {{ kind = "command", program = "true", args = [], timeout = "30s" }}
[[services]]
name = "worker"
environments = ["staging"]
backend = {{ kind = "command", program = "true", args = [], timeout = "30s" }}
"##
    )
}

async fn event_of(bot: &mut TestBot, kind: &'static str, interaction: u64) -> EmulatorEvent {
    bot.next_event(kind, |e| {
        e.event == kind && e.interaction_id == Some(interaction)
    })
    .await
}

fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The text input `custom_id` of a modal.
fn input<'a>(modal: &'a Value, custom_id: &str) -> &'a Value {
    modal["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().into_iter().flatten())
        .find(|c| c["custom_id"] == custom_id)
        .unwrap_or_else(|| panic!("no input {custom_id} in {modal:#}"))
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn the_declare_form_declares_an_incident(pool: PgPool) {
    let mut bot = TestBot::with_config(pool.clone(), &config()).await;
    let spec = discord_spec::load();
    let ana = bot.emulator.member("ana", Some(&["ops".to_owned()]));

    let command = bot
        .emulator
        .type_line(ana, bot.general, "/incident declare")
        .expect("typed");
    let popped = event_of(&mut bot, "modal", command).await;
    assert_eq!(popped.content, "Declare an incident");
    let modal = bot.emulator.modal(command).expect("the form is open");
    let callback = json!({ "type": 9, "data": modal });
    let problems = discord_spec::violations(&spec, "ModalInteractionCallbackRequest", &callback);
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(input(&modal, "title")["required"], true);
    assert_eq!(input(&modal, "description")["style"], 2, "a paragraph");

    // What Discord's client would not submit is refused before the bot sees it.
    let missing = bot
        .emulator
        .submit_modal(ana, &fields(&[("title", "API down")]))
        .expect_err("severity is required");
    assert!(missing.0.contains("Severity"), "{missing}");
    let unknown = bot
        .emulator
        .submit_modal(ana, &fields(&[("owner", "me")]))
        .expect_err("no such field");
    assert!(unknown.0.contains("fields: title, severity"), "{unknown}");

    // A wrong severity typed into the form: refused by the domain, audited, nothing declared.
    bot.emulator
        .submit_modal(ana, &fields(&[("Title", "API down"), ("severity", "sev9")]))
        .expect("submitted");
    let refused = bot.answer_to(command).await;
    assert!(refused.content.contains("sev1"), "{}", refused.content);

    let command = bot
        .emulator
        .type_line(ana, bot.general, "/incident declare")
        .expect("typed");
    event_of(&mut bot, "modal", command).await;
    let submit = bot
        .emulator
        .submit_modal(
            ana,
            &fields(&[
                ("title", "API down"),
                ("severity", "sev1"),
                ("services", "api"),
                ("description", "5xx everywhere"),
            ]),
        )
        .expect("submitted");
    assert_ne!(submit, command);
    let declared = bot.answer_to(command).await;
    assert!(
        declared.content.contains("#inc-1-api-down"),
        "{}",
        declared.content
    );
    assert!(bot.emulator.find_channel("inc-1-api-down").is_some());
    assert!(bot.emulator.modal(command).is_none(), "the form closed");

    let audited: Vec<(String, Value)> = sqlx::query_as(
        "SELECT outcome, args FROM audit_events WHERE command = 'incident declare' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("audit");
    let outcomes: Vec<&str> = audited.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(outcomes, ["invalid", "ok"]);
    assert_eq!(audited[1].1["form"], true);
    assert_eq!(audited[1].1["title"], "API down");
    let (services, description): (Vec<String>, String) =
        sqlx::query_as("SELECT services, description FROM incidents WHERE id = 1")
            .fetch_one(&pool)
            .await
            .expect("incident");
    assert_eq!(services, ["api"]);
    assert_eq!(description, "5xx everywhere");

    // Without incident:declare the form does not open: refused at once, ephemerally, audited.
    let dev = bot.emulator.member("dev", Some(&["dev".to_owned()]));
    let command = bot
        .emulator
        .type_line(dev, bot.general, "/incident declare")
        .expect("typed");
    let denied = bot.answer_to(command).await;
    assert!(bot.emulator.modal(command).is_none(), "no form for dev");
    assert!(denied.ephemeral, "{denied:?}");
    assert!(
        denied.content.contains("incident:declare"),
        "{}",
        denied.content
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn declare_incident_on_a_message_opens_the_form_pre_filled(pool: PgPool) {
    let mut bot = TestBot::with_config(pool.clone(), &config()).await;
    let ana = bot.emulator.member("ana", Some(&["ops".to_owned()]));
    let message = bot
        .emulator
        .write_message(
            ana,
            bot.general,
            "checkout returns 502 since 14:02\nseen by three customers",
        )
        .expect("written");
    let unknown = bot
        .emulator
        .message_command(ana, message, "Declare outage")
        .expect_err("no such command");
    assert!(unknown.0.contains("Declare incident"), "{unknown}");

    let command = bot
        .emulator
        .message_command(ana, message, "declare incident")
        .expect("pressed");
    event_of(&mut bot, "modal", command).await;
    let modal = bot.emulator.modal(command).expect("the form is open");
    assert_eq!(
        input(&modal, "title")["value"],
        "checkout returns 502 since 14:02"
    );
    let description = input(&modal, "description")["value"]
        .as_str()
        .expect("pre-filled")
        .to_owned();
    assert!(
        description.starts_with("checkout returns 502 since 14:02\nseen by three customers (from https://discord.com/channels/1000"),
        "{description}"
    );
    assert!(description.ends_with("by ana)"), "{description}");

    bot.emulator
        .submit_modal(ana, &fields(&[("severity", "sev3")]))
        .expect("submitted");
    let declared = bot.answer_to(command).await;
    assert!(
        declared
            .content
            .contains("#inc-1-checkout-returns-502-since-14-02"),
        "{}",
        declared.content
    );
    let (severity, stored): (String, String) =
        sqlx::query_as("SELECT severity, description FROM incidents WHERE id = 1")
            .fetch_one(&pool)
            .await
            .expect("incident");
    assert_eq!(severity, "sev3");
    assert_eq!(stored, description);
    let from: Value = sqlx::query_scalar(
        "SELECT args FROM audit_events WHERE command = 'incident declare' AND outcome = 'ok'",
    )
    .fetch_one(&pool)
    .await
    .expect("audit");
    assert_eq!(from["from_message"], message.to_string());
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn autocomplete_lists_the_configured_services_and_severities(pool: PgPool) {
    let mut bot = TestBot::with_config(pool, &config()).await;
    let spec = discord_spec::load();
    let ana = bot.emulator.member("ana", Some(&["ops".to_owned()]));
    let mut ask = async |line: &str| -> EmulatorEvent {
        let interaction = bot
            .emulator
            .autocomplete(ana, bot.general, line)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        event_of(&mut bot, "choices", interaction).await
    };

    let services = ask("/deploy run service:").await;
    assert_eq!(services.content, "api\nworker");
    let callback = json!({ "type": 8, "data": { "choices": services.components } });
    let problems = discord_spec::violations(
        &spec,
        "ApplicationCommandAutocompleteCallbackRequest",
        &callback,
    );
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(ask("/deploy run service:wor").await.content, "worker");
    assert_eq!(
        ask("/incident declare title:x severity:").await.content,
        "sev1\nsev3"
    );
    assert_eq!(ask("/incident declare severity:3").await.content, "sev3");

    let no_autocomplete = bot
        .emulator
        .autocomplete(ana, bot.general, "/incident declare title:")
        .expect_err("title has no autocomplete");
    assert!(
        no_autocomplete.0.contains("no autocomplete"),
        "{no_autocomplete}"
    );
}

/// The shell's lines for the same: `:write`, `:apps`, `:modal`, `:complete`.
#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn the_shell_fills_in_forms_and_runs_message_commands(pool: PgPool) {
    use std::process::Stdio;
    let config = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(config.path(), config_toml()).expect("write config");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_opsbot"))
        .args([
            "shell", "--json", "--user", "ana", "--roles", "ops", "--config",
        ])
        .arg(config.path())
        .env("DATABASE_URL", support::database_url(&pool))
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start opsbot shell");
    let script = "\
:complete /incident declare severity:
/incident declare
:modal title=\"API down\" severity=sev9
/incident declare
:modal title=\"API down\" severity=sev1 services=api
:modal title=x
:write checkout is slow
:apps Declare incident
:modal severity=sev3
";
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(script.as_bytes())
            .await
            .expect("write script");
    }
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the shell exits at end of input")
        .expect("output");
    let logs = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{logs}");
    let events: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .filter(|e: &Value| e["channel"] != "incidents" && e["event"] != "channel_created")
        .filter(|e: &Value| !e["channel"].as_str().is_some_and(|c| c.starts_with("inc-")))
        .collect();
    let summary: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e["event"],
                e["input"],
                e["content"]
                    .as_str()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default()
            )
        })
        .collect();
    insta::assert_snapshot!(summary.join("\n"), @r#"
    "choices" ":complete /incident declare severity:" sev1
    "modal" "/incident declare" Declare an incident
    "reply" ":modal title=\"API down\" severity=sev9" ❌ unknown severity `sev9`; configured: sev1, sev3
    "modal" "/incident declare" Declare an incident
    "reply" ":modal title=\"API down\" severity=sev1 services=api" Declared incident **#1 API down** (sev1): join #inc-1-api-down
    "error" ":modal title=x" no form is open for you: a command or button opens one
    "modal" ":apps Declare incident" Declare an incident
    "reply" ":modal severity=sev3" Declared incident **#2 checkout is slow** (sev3): join #inc-2-checkout-is-slow
    "#);
    let form = &events[6];
    assert_eq!(
        form["components"][0]["components"][0]["value"],
        "checkout is slow"
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn add_to_incident_timeline_copies_a_message_with_its_author(pool: PgPool) {
    let mut bot = TestBot::with_config(pool.clone(), &config()).await;
    let ana = bot.emulator.member("ana", Some(&["ops".to_owned()]));
    bot.say(
        "ana",
        &["ops"],
        "/incident declare title:\"API down\" severity:sev1",
    )
    .await;
    let (channel, _) = bot
        .emulator
        .find_channel("inc-1-api-down")
        .expect("channel");
    let bo = bot.emulator.member("bo", Some(&["dev".to_owned()]));
    let seen = bot
        .emulator
        .write_message(bo, channel, "error rate back under 1% after the restart")
        .expect("written");

    // Outside an incident channel there is no incident to add it to.
    let elsewhere = bot
        .emulator
        .write_message(bo, bot.general, "unrelated")
        .expect("written");
    let command = bot
        .emulator
        .message_command(ana, elsewhere, "Add to incident timeline")
        .expect("pressed");
    let refused = bot.answer_to(command).await;
    assert!(
        refused.content.contains("not an incident channel"),
        "{}",
        refused.content
    );

    // Without incident:update: denied.
    let command = bot
        .emulator
        .message_command(bo, seen, "Add to incident timeline")
        .expect("pressed");
    let denied = bot.answer_to(command).await;
    assert!(
        denied.content.contains("incident:update"),
        "{}",
        denied.content
    );

    let command = bot
        .emulator
        .message_command(ana, seen, "Add to incident timeline")
        .expect("pressed");
    bot.answer_to(command).await;
    let text: String = sqlx::query_scalar(
        "SELECT text FROM incident_events WHERE incident_id = 1 AND kind = 'note'",
    )
    .fetch_one(&pool)
    .await
    .expect("the note");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert!(text.starts_with(&format!("note: bo at {today} ")), "{text}");
    assert!(
        text.ends_with("UTC: error rate back under 1% after the restart"),
        "{text}"
    );
    let outcomes: Vec<String> = sqlx::query_scalar(
        "SELECT outcome FROM audit_events WHERE command = 'incident note' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("audit");
    assert_eq!(outcomes, ["invalid", "denied", "ok"]);
}
