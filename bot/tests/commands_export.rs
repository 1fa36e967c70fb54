//! `opsbot commands export` prints the registration JSON, and it fits Discord's limits
//! (FIELD-NOTES: names `^[-_a-z0-9]{1,32}$` (context-menu commands: 1-32 characters, no
//! description), descriptions 1-100 chars, ≤ 25 options and
//! choices, required options before optional ones, ≤ 100 commands, ≤ 8000 chars a command),
//! and every STRING option has a `max_length` (without one Discord accepts 6,000 characters,
//! and a refusal quoting such a value cannot be sent).

use std::process::Command;

use serde_json::Value;

fn export() -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_opsbot"))
        .args(["commands", "export"])
        .env_remove("DATABASE_URL")
        .env_remove("OPSBOT_CONFIG")
        .output()
        .expect("run opsbot");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

fn check_name(name: &str, path: &str, problems: &mut Vec<String>) {
    let ok = (1..=32).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        problems.push(format!(
            "{path}: name `{name}` does not match ^[-_a-z0-9]{{1,32}}$"
        ));
    }
}

fn check_description(description: &str, path: &str, problems: &mut Vec<String>) {
    if !(1..=100).contains(&description.chars().count()) {
        problems.push(format!(
            "{path}: description must be 1-100 characters, is {}",
            description.chars().count()
        ));
    }
}

fn check_options(options: &[Value], path: &str, problems: &mut Vec<String>) {
    if options.len() > 25 {
        problems.push(format!("{path}: {} options, at most 25", options.len()));
    }
    let mut seen_optional = false;
    for option in options {
        let name = option["name"].as_str().unwrap_or_default();
        let here = format!("{path} {name}");
        check_name(name, &here, problems);
        check_description(
            option["description"].as_str().unwrap_or_default(),
            &here,
            problems,
        );
        let kind = option["type"].as_u64().unwrap_or_default();
        if option["choices"].as_array().map_or(0, Vec::len) > 25 {
            problems.push(format!("{here}: more than 25 choices"));
        }
        // Types 1 and 2 are subcommands and groups; they have no `required`.
        if kind > 2 {
            let required = option["required"].as_bool().unwrap_or(false);
            if required && seen_optional {
                problems.push(format!("{here}: a required option after an optional one"));
            }
            seen_optional |= !required;
        }
        if let Some(nested) = option["options"].as_array() {
            check_options(nested, &here, problems);
        }
    }
}

#[test]
fn exported_commands_fit_discords_limits() {
    let exported = export();
    let commands = exported.as_array().expect("an array of commands");
    assert!(!commands.is_empty());
    assert!(
        commands.len() <= 100,
        "{} commands, at most 100 per scope",
        commands.len()
    );
    let mut problems = Vec::new();
    for command in commands {
        let name = command["name"].as_str().unwrap_or_default();
        let path = format!("/{name}");
        // Message and user commands (types 3 and 2) are named as shown in the Apps menu
        // (1-32 characters, spaces and capitals allowed) and have an empty description.
        if command["type"].as_u64().unwrap_or(1) != 1 {
            if !(1..=32).contains(&name.chars().count()) {
                problems.push(format!("{path}: a name of 1-32 characters"));
            }
            if command["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
            {
                problems.push(format!("{path}: a context-menu command has no description"));
            }
            continue;
        }
        check_name(name, &path, &mut problems);
        check_description(
            command["description"].as_str().unwrap_or_default(),
            &path,
            &mut problems,
        );
        check_options(
            command["options"].as_array().map_or(&[][..], Vec::as_slice),
            &path,
            &mut problems,
        );
        let size = serde_json::to_string(command).expect("json").len();
        if size > 8000 {
            problems.push(format!("{path}: {size} characters, at most 8000"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn exported_commands_are_the_documented_ones() {
    let exported = export();
    let mut names: Vec<String> = Vec::new();
    for command in exported.as_array().expect("array") {
        let name = command["name"].as_str().expect("name");
        let subcommands: Vec<&str> = command["options"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| o["type"] == 1)
            .filter_map(|o| o["name"].as_str())
            .collect();
        if subcommands.is_empty() {
            names.push(format!("/{name}"));
        } else {
            names.extend(subcommands.iter().map(|s| format!("/{name} {s}")));
        }
        assert_eq!(
            command["contexts"],
            serde_json::json!([0]),
            "/{name} is guild-only"
        );
    }
    insta::assert_snapshot!(names.join("\n"), @r"
    /whoami
    /deploy run
    /deploy status
    /deploy history
    /deploy lock
    /deploy unlock
    /rollback
    /incident declare
    /incident status
    /incident severity
    /incident role
    /incident note
    /incident resolve
    /incident reopen
    /incident list
    /incident postmortem
    /Declare incident
    /Add to incident timeline
    /alerts active
    /alerts silences
    /alerts silence
    /metrics query
    /metrics service
    /audit recent
    /audit verify
    /digest preview
    ");
}

/// Every STRING option (type 3) under `options`, as `(path, option)`.
fn string_options<'a>(options: &'a [Value], path: &str, out: &mut Vec<(String, &'a Value)>) {
    for option in options {
        let here = format!("{path} {}", option["name"].as_str().unwrap_or_default());
        if option["type"] == 3 {
            out.push((here.clone(), option));
        }
        if let Some(nested) = option["options"].as_array() {
            string_options(nested, &here, out);
        }
    }
}

#[test]
fn every_string_option_has_a_max_length() {
    let exported = export();
    let mut strings = Vec::new();
    for command in exported.as_array().expect("array") {
        let path = format!("/{}", command["name"].as_str().unwrap_or_default());
        string_options(
            command["options"].as_array().map_or(&[][..], Vec::as_slice),
            &path,
            &mut strings,
        );
    }
    assert!(!strings.is_empty());
    let limits: Vec<String> = strings
        .iter()
        .map(|(path, option)| format!("{path}: {}", option["max_length"]))
        .collect();
    let missing: Vec<&String> = limits
        .iter()
        .filter(|l| !l.ends_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert!(missing.is_empty(), "no max_length: {missing:?}");
    for (path, option) in &strings {
        let max = option["max_length"].as_u64().unwrap_or_default();
        assert!((1..=6000).contains(&max), "{path}: max_length {max}");
    }
    insta::assert_snapshot!(limits.join("\n"), @r"
    /deploy run service: 100
    /deploy run version: 200
    /deploy run env: 100
    /deploy run reason: 4000
    /deploy status service: 100
    /deploy history service: 100
    /deploy history env: 100
    /deploy lock service: 100
    /deploy lock env: 100
    /deploy lock reason: 4000
    /deploy lock duration: 50
    /deploy unlock service: 100
    /deploy unlock env: 100
    /rollback service: 100
    /rollback env: 100
    /rollback to: 200
    /incident declare title: 100
    /incident declare severity: 32
    /incident declare services: 200
    /incident declare description: 1000
    /incident status text: 1000
    /incident severity level: 32
    /incident role role: 32
    /incident note text: 1000
    /incident resolve summary: 1000
    /alerts active service: 100
    /alerts active severity: 100
    /alerts silence matchers: 1000
    /alerts silence duration: 32
    /alerts silence reason: 500
    /metrics query promql: 2000
    /metrics query range: 16
    /metrics query step: 16
    /metrics service name: 100
    /metrics service range: 16
    /audit recent actor: 100
    /audit recent command: 100
    /audit recent outcome: 32
    /digest preview name: 32
    ");
}
