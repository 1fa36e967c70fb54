//! `[audit]`: the chain key, the checkpoint file and its interval.

use std::path::PathBuf;
use std::time::Duration;

use super::*;

const KEY: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn audit_defaults_to_no_key_and_no_checkpoint() {
    let config = Config::load_with_env(None, &env(&[])).expect("defaults");
    assert!(config.audit.chain_key.is_none());
    assert_eq!(config.audit.checkpoint_path, None);
    assert_eq!(config.audit.checkpoint_interval, Duration::from_secs(60));
}

#[test]
fn audit_keys_load_from_the_file_and_the_environment() {
    let config = load_text(
        "[audit]\nchain_key = \"env:CHAIN_KEY\"\ncheckpoint_path = \"/var/lib/opsbot/head.json\"\ncheckpoint_interval = \"5m\"\n",
        &[("CHAIN_KEY", KEY)],
    )
    .expect("loads");
    let key = config.audit.chain_key.expect("key");
    assert_eq!(key.expose(), KEY);
    assert_eq!(format!("{key:?}"), "Secret(env:CHAIN_KEY)");
    assert_eq!(
        config.audit.checkpoint_path,
        Some(PathBuf::from("/var/lib/opsbot/head.json"))
    );
    assert_eq!(config.audit.checkpoint_interval, Duration::from_secs(300));

    // In the environment the key may be the secret itself, even if it looks like TOML.
    let config = Config::load_with_env(
        None,
        &env(&[
            (
                "OPSBOT_AUDIT_CHAIN_KEY",
                "[1234567890123456789012345678901234]",
            ),
            ("OPSBOT_AUDIT_CHECKPOINT_PATH", "head.json"),
        ]),
    )
    .expect("loads");
    assert_eq!(
        config.audit.chain_key.expect("key").expose(),
        "[1234567890123456789012345678901234]"
    );
    assert_eq!(
        config.audit.checkpoint_path,
        Some(PathBuf::from("head.json"))
    );
}

#[test]
fn audit_problems_name_the_key_and_never_the_secret() {
    let problems = problems_of(
        "[audit]\nchain_key = \"env:CHAIN_KEY\"\ncheckpoint_path = \"\"\ncheckpoint_interval = \"often\"\ncheckpoint_every = \"1m\"\n",
        &[("CHAIN_KEY", "short-secret")],
    );
    assert!(
        problems.contains("audit.chain_key: the key is shorter than 32 bytes (from env:CHAIN_KEY)"),
        "{problems}"
    );
    assert!(!problems.contains("short-secret"), "{problems}");
    assert!(
        problems.contains("audit.checkpoint_path: is empty"),
        "{problems}"
    );
    assert!(
        problems.contains("audit.checkpoint_interval: `often` is not a duration"),
        "{problems}"
    );
    assert!(
        problems.contains("known keys in [audit]: chain_key, checkpoint_path, checkpoint_interval"),
        "{problems}"
    );

    let literal = problems_of(&format!("[audit]\nchain_key = \"{KEY}\"\n"), &[]);
    assert!(
        literal.contains("secrets are never written in the config file"),
        "{literal}"
    );
    assert!(!literal.contains(KEY), "{literal}");
}
