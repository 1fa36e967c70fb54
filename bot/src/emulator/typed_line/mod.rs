//! A line typed as in Discord's client, turned into the `data` of an APPLICATION_COMMAND
//! interaction:
//!
//! ```text
//! /audit recent count:5 actor:ana
//! /deploy run service:api version:v1.2.3 env:staging reason:"hotfix for the login bug"
//! ```
//!
//! The line is checked against the command as the bot registered it, and mistakes that
//! Discord's client would not let a person make (an unknown option, a number out of range, a
//! member who is not in the guild) are refused here with a message listing what is valid, so
//! the bot only ever sees interactions Discord could have sent.

mod autocomplete;
mod nearest;
mod options;
mod resolve;

pub use autocomplete::autocomplete_data;
pub use nearest::nearest;

use options::*;
use resolve::*;

use serde_json::{Map, Value, json};

/// Members, roles and channels of the emulated guild, for options that name them.
#[derive(Debug, Clone, Default)]
pub struct GuildDirectory {
    pub guild_id: u64,
    pub members: Vec<DirectoryMember>,
    pub roles: Vec<DirectoryRole>,
    pub channels: Vec<DirectoryChannel>,
}

#[derive(Debug, Clone)]
pub struct DirectoryMember {
    pub id: u64,
    pub name: String,
    pub role_ids: Vec<u64>,
}

#[derive(Debug, Clone)]
pub struct DirectoryRole {
    pub id: u64,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct DirectoryChannel {
    pub id: u64,
    pub name: String,
    /// Discord channel type: 0 text, 4 category, 11 public thread.
    pub kind: u8,
}

/// A line turned into interaction data.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedCommand {
    /// The top-level command name (`audit`).
    pub name: String,
    /// The whole `data` object of an APPLICATION_COMMAND interaction: `id`, `name`, `type`,
    /// `guild_id`, `options` (nested for subcommands and groups) and, when an option names a
    /// member, role or channel, `resolved`.
    pub data: Value,
    /// The options as the user gave them, flat, for display (`{"count": 5}`).
    pub display_args: Value,
}

/// What was wrong with a line, written for the person who typed it, listing what is valid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct LineError(pub String);

/// Discord's client lists at most this many suggestions for a user, role or channel option;
/// an error listing more would drown the mistake it explains.
const MAX_LISTED: usize = 25;

/// Discord's INTEGER options hold integers between -2^53+1 and 2^53-1 (what a double holds
/// exactly).
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// The longest STRING option value Discord accepts when the command sets no `max_length`.
const STRING_MAX: usize = 6000;

/// When the emulator says every member joined; Discord requires a timestamp.
const JOINED_AT: &str = "2026-01-01T00:00:00+00:00";

const SUB_COMMAND: u64 = 1;
const SUB_COMMAND_GROUP: u64 = 2;
const STRING: u64 = 3;
const INTEGER: u64 = 4;
const BOOLEAN: u64 = 5;
const USER: u64 = 6;
const CHANNEL: u64 = 7;
const ROLE: u64 = 8;
const MENTIONABLE: u64 = 9;
const NUMBER: u64 = 10;
const ATTACHMENT: u64 = 11;

/// Application command type of slash commands (the only ones a line can invoke).
const CHAT_INPUT: u64 = 1;

fn error(message: impl Into<String>) -> LineError {
    LineError(message.into())
}

/// Splits a line into words at whitespace. A `"` or `'` at the start of a word or right after
/// its first `:` opens a quote (`reason:"a b"`, `'a b'`) that runs to the same quote; inside,
/// a backslash takes the next character literally. Quotes elsewhere are ordinary characters,
/// so `reason:it's` needs no quoting.
pub fn split_words(line: &str) -> Result<Vec<String>, LineError> {
    let mut words = Vec::new();
    let mut chars = line.chars();
    let mut word = String::new();
    // A word may be empty (`""`) yet present.
    let mut in_word = false;
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            if in_word {
                words.push(std::mem::take(&mut word));
                in_word = false;
            }
            continue;
        }
        let quote_may_open = !in_word || (word.ends_with(':') && word.matches(':').count() == 1);
        in_word = true;
        if (c == '"' || c == '\'') && quote_may_open {
            let mut closed = false;
            while let Some(q) = chars.next() {
                if q == c {
                    closed = true;
                    break;
                }
                if q == '\\' {
                    match chars.next() {
                        Some(escaped) => word.push(escaped),
                        None => break,
                    }
                } else {
                    word.push(q);
                }
            }
            if !closed {
                return Err(error(format!(
                    "unclosed {c} quote in `{line}`; end the quoted value with {c} (use \\{c} for a {c} inside it)"
                )));
            }
            continue;
        }
        word.push(c);
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Turns a typed line into the `data` of an APPLICATION_COMMAND interaction, checked against
/// `registered` (the command objects as registered, each with an `id`).
pub fn parse_line(
    line: &str,
    registered: &[Value],
    directory: &GuildDirectory,
) -> Result<TypedCommand, LineError> {
    let slash_commands: Vec<&Value> = registered
        .iter()
        .filter(|c| c.get("type").and_then(Value::as_u64).unwrap_or(CHAT_INPUT) == CHAT_INPUT)
        .collect();
    let command_list = || {
        let mut names: Vec<String> = slash_commands
            .iter()
            .map(|c| format!("/{}", name_of(c)))
            .collect();
        names.sort();
        names.join(", ")
    };
    let example = slash_commands.first().map_or("help", |c| name_of(c));
    let line = line.trim();
    if !line.starts_with('/') {
        return Err(error(format!(
            "a command starts with /, e.g. /{example}; commands: {}",
            command_list()
        )));
    }
    let words = split_words(line)?;
    let mut words = words.iter().map(String::as_str).peekable();
    let typed_name = words
        .next()
        .and_then(|w| w.strip_prefix('/'))
        .unwrap_or_default();
    if typed_name.is_empty() {
        return Err(error(format!(
            "type a command right after /, e.g. /{example}; commands: {}",
            command_list()
        )));
    }
    let command = slash_commands
        .iter()
        .find(|c| name_of(c).eq_ignore_ascii_case(typed_name))
        .ok_or_else(|| {
            let names = slash_commands.iter().map(|c| name_of(c));
            error(match nearest(typed_name, names) {
                Some(near) => format!("unknown command /{typed_name}; did you mean /{near}?"),
                None => format!(
                    "unknown command /{typed_name}; commands: {}",
                    command_list()
                ),
            })
        })?;
    let command_name = name_of(command).to_owned();
    let id = match command.get("id") {
        Some(Value::String(id)) => id.clone(),
        Some(Value::Number(id)) => id.to_string(),
        _ => {
            return Err(error(format!(
                "/{command_name} has no id yet: it was not registered with Discord"
            )));
        }
    };

    // Walk down subcommand groups and subcommands; `path` is what the user has typed so far.
    let mut path = format!("/{command_name}");
    let mut chain: Vec<(&str, u64)> = Vec::new();
    let mut schema = options_of(command);
    while schema
        .iter()
        .any(|o| matches!(type_of(o), SUB_COMMAND | SUB_COMMAND_GROUP))
    {
        let names = schema
            .iter()
            .map(|o| name_of(o))
            .collect::<Vec<_>>()
            .join(", ");
        let sub = match words.peek() {
            Some(word) if !word.contains(':') => *word,
            _ => return Err(error(format!("{path} needs a subcommand: {names}"))),
        };
        words.next();
        let chosen = schema
            .iter()
            .find(|o| name_of(o).eq_ignore_ascii_case(sub))
            .ok_or_else(|| {
                error(match nearest(sub, schema.iter().map(|o| name_of(o))) {
                    Some(near) => format!(
                        "unknown subcommand \"{sub}\" for {path}; did you mean {path} {near}? subcommands: {names}"
                    ),
                    None => format!(
                        "unknown subcommand \"{sub}\" for {path}; subcommands: {names}"
                    ),
                })
            })?;
        path = format!("{path} {}", name_of(chosen));
        chain.push((name_of(chosen), type_of(chosen)));
        schema = options_of(chosen);
    }

    let mut resolved = Resolved::default();
    let mut given: Vec<Option<(Value, Value)>> = vec![None; schema.len()];
    let option_names = schema
        .iter()
        .map(|o| name_of(o))
        .collect::<Vec<_>>()
        .join(", ");
    for word in words {
        if schema.is_empty() {
            return Err(error(format!(
                "{path} takes no options, but got \"{word}\""
            )));
        }
        let Some((key, value)) = word.split_once(':') else {
            return Err(error(format!(
                "\"{word}\" is not an option: give options as name:value, e.g. {}:…; options for {path}: {option_names}",
                name_of(schema[0])
            )));
        };
        let index = schema
            .iter()
            .position(|o| name_of(o).eq_ignore_ascii_case(key))
            .ok_or_else(|| {
                error(match nearest(key, schema.iter().map(|o| name_of(o))) {
                    Some(near) => format!(
                        "unknown option \"{key}\" for {path}; did you mean {near}? options: {option_names}"
                    ),
                    None => format!("unknown option \"{key}\" for {path}; options: {option_names}"),
                })
            })?;
        let option = schema[index];
        if given[index].is_some() {
            return Err(error(format!(
                "option {} is given twice; give it once",
                name_of(option)
            )));
        }
        given[index] = Some(option_value(option, value, directory, &mut resolved)?);
    }

    let missing: Vec<&str> = schema
        .iter()
        .zip(&given)
        .filter(|(o, g)| g.is_none() && o.get("required").and_then(Value::as_bool).unwrap_or(false))
        .map(|(o, _)| name_of(o))
        .collect();
    if !missing.is_empty() {
        let noun = if missing.len() == 1 {
            "option"
        } else {
            "options"
        };
        return Err(error(format!(
            "{path} is missing required {noun}: {}",
            missing.join(", ")
        )));
    }

    let mut options = Vec::new();
    let mut display_args = Map::new();
    for (option, given) in schema.iter().zip(given) {
        if let Some((value, display)) = given {
            options
                .push(json!({ "name": name_of(option), "type": type_of(option), "value": value }));
            display_args.insert(name_of(option).to_owned(), display);
        }
    }
    for (name, kind) in chain.into_iter().rev() {
        options = vec![json!({ "name": name, "type": kind, "options": options })];
    }
    let mut data = json!({
        "id": id,
        "name": command_name,
        "type": CHAT_INPUT,
        "guild_id": directory.guild_id.to_string(),
        "options": options,
    });
    if let Some(resolved) = resolved.into_json() {
        data["resolved"] = resolved;
    }
    Ok(TypedCommand {
        name: command_name,
        data,
        display_args: Value::Object(display_args),
    })
}

fn name_of(value: &Value) -> &str {
    value
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn type_of(value: &Value) -> u64 {
    value
        .get("type")
        .and_then(Value::as_u64)
        .unwrap_or_default()
}

fn options_of(value: &Value) -> Vec<&Value> {
    value
        .get("options")
        .and_then(Value::as_array)
        .map(|o| o.iter().collect())
        .unwrap_or_default()
}

/// A schema field, treating `null` and `[]` (what poise registers for "not set") as absent.
fn field<'a>(option: &'a Value, key: &str) -> Option<&'a Value> {
    option
        .get(key)
        .filter(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
}

#[cfg(test)]
mod tests;
