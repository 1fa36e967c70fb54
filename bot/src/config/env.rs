//! Environment overrides: `OPSBOT_<SECTION>_<KEY>` replaces `<key>` in `[<section>]`.
//! Arrays of tables (`[[services]]`) have no single key to replace and are file-only.

use std::collections::BTreeMap;

use toml::{Table, Value};

use super::problem::{Problem, closest};
use super::{ARRAY_SECTIONS, SECRET_KEYS, SECTIONS, section_names};

/// Variables that configure the command line rather than the bot; they map to no key.
/// The test harness's variables (`scripts/test-runner`, the tests' prerequisites) reach every
/// `opsbot` a test starts; they are not config either.
const CLI_SETTINGS: &[&str] = &[
    "OPSBOT_CONFIG",
    "OPSBOT_LOG_FORMAT",
    "OPSBOT_REQUIRE_ALL",
    "OPSBOT_TEST_PG_LINGER",
];

/// The conventional alias of `OPSBOT_DATABASE_URL`, which wins when both are set.
const DATABASE_URL_ALIAS: &str = "DATABASE_URL";

/// Writes every override from `env` into `table`. Returns which variable set each key path,
/// so that problems with those values name the variable.
pub(super) fn apply(
    table: &mut Table,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, String> {
    let mut origins = BTreeMap::new();
    for (name, text) in env {
        let Some(rest) = name.strip_prefix("OPSBOT_") else {
            continue;
        };
        if CLI_SETTINGS.contains(&name.as_str()) {
            continue;
        }
        let key = format!("{name} (env)");
        let Some((section, field)) = rest
            .split_once('_')
            .filter(|(s, f)| !s.is_empty() && !f.is_empty())
        else {
            problems.push(
                Problem::new(key, "names no config key")
                    .with_hint("write OPSBOT_<SECTION>_<KEY>, e.g. OPSBOT_HTTP_LISTEN"),
            );
            continue;
        };
        let (section, field) = (section.to_lowercase(), field.to_lowercase());
        if !SECTIONS.iter().any(|(known, _)| *known == section) {
            let mut hint = format!("known sections: {}", section_names().join(", "));
            if let Some(guess) = closest(&section, &section_names()) {
                hint = format!("did you mean OPSBOT_{}_…? {hint}", guess.to_uppercase());
            }
            problems.push(
                Problem::new(
                    key,
                    format!("unknown section [{section}] (from {section}.{field})"),
                )
                .with_hint(hint),
            );
            continue;
        }
        if ARRAY_SECTIONS.contains(&section.as_str()) {
            problems.push(
                Problem::new(key, format!("[[{section}]] can only be set in the config file"))
                    .with_hint(format!(
                        "write each entry under its own [[{section}]] header in the file, and unset {name}"
                    )),
            );
            continue;
        }
        let path = format!("{section}.{field}");
        let value = if SECRET_KEYS.contains(&path.as_str()) {
            // A secret is taken verbatim, even when it happens to look like a TOML literal.
            Value::String(text.clone())
        } else {
            parse_literal(text)
        };
        if insert(table, &section, &field, value) {
            origins.insert(path, name.clone());
        }
    }
    if !origins.contains_key("database.url")
        && let Some(url) = env.get(DATABASE_URL_ALIAS).filter(|url| !url.is_empty())
        && insert(table, "database", "url", Value::String(url.clone()))
    {
        origins.insert("database.url".to_owned(), DATABASE_URL_ALIAS.to_owned());
    }
    origins
}

/// A TOML literal when the text is one (`8080`, `true`, `[1, 2]`, `"quoted"`), else the text
/// as a string, so that `OPSBOT_HTTP_LISTEN=0.0.0.0:9000` needs no quotes.
fn parse_literal(text: &str) -> Value {
    match format!("value = {text}").parse::<Table>() {
        Ok(mut parsed) if parsed.len() == 1 => parsed
            .remove("value")
            .unwrap_or_else(|| Value::String(text.to_owned())),
        _ => Value::String(text.to_owned()),
    }
}

/// Sets `section.field`, creating the section; false when the section is not a table
/// (that is reported by the section check, so it is not reported twice).
fn insert(table: &mut Table, section: &str, field: &str, value: Value) -> bool {
    let entry = table
        .entry(section.to_owned())
        .or_insert_with(|| Value::Table(Table::new()));
    match entry {
        Value::Table(section) => {
            section.insert(field.to_owned(), value);
            true
        }
        _ => false,
    }
}
