//! Discord's OpenAPI spec (shared fixtures), for checking what the bot sends.

use std::path::PathBuf;

use serde_json::{Value, json};

/// Where to point the tests at the spec when it is not in the shared fixtures.
const SPEC_ENV: &str = "OPSBOT_DISCORD_OPENAPI";

fn spec_path() -> PathBuf {
    if let Some(path) = std::env::var_os(SPEC_ENV) {
        return PathBuf::from(path);
    }
    let candidates = [
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/discord/openapi.json"
        ),
        "/work/shared/fixtures/discord/openapi.json",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("Discord's OpenAPI spec not found at {candidates:?}; set {SPEC_ENV}")
        })
}

/// The spec's components (schemas), loaded once per call.
pub fn load() -> Value {
    let path = spec_path();
    let text = std::fs::read_to_string(&path).expect("read the OpenAPI spec");
    serde_json::from_str(&text).expect("the OpenAPI spec is JSON")
}

/// What is wrong with `instance` as the spec's schema `name` (empty: it conforms).
pub fn violations(spec: &Value, name: &str, instance: &Value) -> Vec<String> {
    let mut root = json!({ "$ref": format!("#/components/schemas/{name}") });
    root["components"] = spec["components"].clone();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&root)
        .expect("schema");
    validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}
