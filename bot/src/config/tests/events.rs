//! `[events.nats]` and `[events.pubsub]`.

use super::*;

#[test]
fn no_sinks_by_default() {
    let config = Config::load_with_env(None, &env(&[])).expect("defaults");
    assert!(config.events.nats.is_none() && config.events.pubsub.is_none());
    assert!(config.events.sinks().expect("sinks").is_empty());
}

#[test]
fn nats_takes_defaults_and_secrets_by_reference() {
    let config = load_text(
        "[events.nats]\nurl = \"nats://127.0.0.1:4222\"\ntoken = \"env:NATS_TOKEN\"\n",
        &[("NATS_TOKEN", "s3cret")],
    )
    .expect("loads");
    let nats = config.events.nats.clone().expect("nats");
    assert_eq!(nats.subject, "opsbot.audit");
    assert_eq!(nats.stream, "OPSBOT_AUDIT");
    match &nats.credentials {
        NatsCredentials::Token(token) => assert_eq!(token.expose(), "s3cret"),
        other => panic!("expected a token, got {other:?}"),
    }
    assert!(!format!("{config:?}").contains("s3cret"), "never shown");
    let sinks = config.events.sinks().expect("sinks");
    assert_eq!(sinks.iter().map(|s| s.name()).collect::<Vec<_>>(), ["nats"]);
}

#[test]
fn an_unknown_key_is_named_with_the_known_ones() {
    let text = problems_of(
        "[events.nats]\nurl = \"nats://127.0.0.1:4222\"\nsubjet = \"a.b\"\n\n[events.kafka]\nx = 1\n",
        &[],
    );
    assert!(text.contains("events.nats.subjet: unknown key"), "{text}");
    assert!(text.contains("did you mean `subject`?"), "{text}");
    assert!(text.contains("events.kafka"), "{text}");
}

#[test]
fn bad_nats_values_are_refused_each_naming_its_key() {
    let text = problems_of(
        "[events.nats]\nurl = \"http://x\"\nsubject = \"a.*\"\nstream = \"a.b\"\ntoken = \"literal\"\nuser = \"u\"\n",
        &[],
    );
    for key in [
        "events.nats.url",
        "events.nats.subject",
        "events.nats.stream",
        "events.nats.token",
    ] {
        assert!(text.contains(key), "{key} in {text}");
    }
    let text = problems_of(
        "[events.nats]\nurl = \"nats://h:4222\"\nuser = \"u\"\n",
        &[],
    );
    assert!(text.contains("user and password go together"), "{text}");
    let text = problems_of("[events.nats]\nsubject = \"a\"\n", &[]);
    assert!(text.contains("events.nats.url: is missing"), "{text}");
}

#[test]
fn pubsub_needs_project_and_topic_and_honours_the_emulator_variable() {
    let text = problems_of("[events.pubsub]\ntopic = \"1x\"\n", &[]);
    assert!(text.contains("events.pubsub.project: is missing"), "{text}");
    assert!(text.contains("events.pubsub.topic"), "{text}");
    let config = load_text(
        "[events.pubsub]\nproject = \"acme-ops\"\ntopic = \"opsbot-audit\"\nemulator_host = \"127.0.0.1:1\"\n",
        &[("PUBSUB_EMULATOR_HOST", "127.0.0.1:8085")],
    )
    .expect("loads");
    let pubsub = config.events.pubsub.expect("pubsub");
    assert_eq!(pubsub.emulator_host.as_deref(), Some("127.0.0.1:8085"));
    assert!(pubsub.access_token.is_none());
}

/// The commented-out `[events.*]` sections of `opsbot.example.toml`, uncommented, load (all
/// but one NATS login method, since only one may be set).
#[test]
fn the_example_events_sections_load() {
    let example = include_str!("../../../../opsbot.example.toml");
    let start = example
        .find("# [events.nats]")
        .expect("the example has [events.nats]");
    let end = example[start..]
        .find("# [prometheus]")
        .map_or(example.len(), |i| start + i);
    let mut toml = String::new();
    for line in example[start..end].lines() {
        let code = line.strip_prefix("# ").unwrap_or("");
        let is_setting = code.starts_with('[') || code.contains(" = ");
        let other_login = ["user =", "password =", "credentials ="]
            .iter()
            .any(|k| code.starts_with(k));
        if is_setting && !other_login {
            toml.push_str(code);
            toml.push('\n');
        }
    }
    let config = load_text(&toml, &[("NATS_TOKEN", "t"), ("PUBSUB_ACCESS_TOKEN", "a")])
        .unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let nats = config.events.nats.expect("nats");
    assert_eq!(nats.url, "nats://127.0.0.1:4222");
    assert!(matches!(nats.credentials, NatsCredentials::Token(_)));
    let pubsub = config.events.pubsub.expect("pubsub");
    assert_eq!(
        (pubsub.project.as_str(), pubsub.topic.as_str()),
        ("acme-ops", "opsbot-audit")
    );
    assert_eq!(pubsub.emulator_host.as_deref(), Some("127.0.0.1:8085"));
}
