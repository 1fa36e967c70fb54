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
            error(format!(
                "unknown command /{typed_name}; commands: {}",
                command_list()
            ))
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
                error(format!(
                    "unknown subcommand \"{sub}\" for {path}; subcommands: {names}"
                ))
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
                error(format!(
                    "unknown option \"{key}\" for {path}; options: {option_names}"
                ))
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

/// The value to send and the value to display for one `name:value`.
fn option_value(
    option: &Value,
    text: &str,
    directory: &GuildDirectory,
    resolved: &mut Resolved,
) -> Result<(Value, Value), LineError> {
    let name = name_of(option);
    if type_of(option) == ATTACHMENT {
        return Err(error(format!(
            "option {name} takes a file, and the shell cannot attach files; leave it out or use Discord"
        )));
    }
    if text.is_empty() {
        return Err(error(format!(
            "option {name} needs a value after the colon, e.g. {name}:…"
        )));
    }
    if let Some(choices) = field(option, "choices").and_then(Value::as_array) {
        return choice_value(option, choices, text).map(|v| (v.clone(), v));
    }
    let value = match type_of(option) {
        STRING => {
            let length = text.chars().count();
            let min = field(option, "min_length").and_then(Value::as_f64);
            // Without a max_length, Discord's client still stops at 6,000 characters.
            let max = field(option, "max_length")
                .and_then(Value::as_f64)
                .or(Some(STRING_MAX as f64));
            if min.is_some_and(|min| (length as f64) < min)
                || max.is_some_and(|max| (length as f64) > max)
            {
                return Err(error(format!(
                    "option {name} must be {} characters long, got {length}",
                    bounds_text(min, max)
                )));
            }
            json!(text)
        }
        INTEGER => {
            let number = text
                .parse::<i64>()
                .ok()
                .filter(|n| n.abs() <= MAX_SAFE_INTEGER)
                .ok_or_else(|| {
                    error(format!(
                        "option {name} must be a whole number, got \"{text}\""
                    ))
                })?;
            check_range(option, number as f64, text)?;
            json!(number)
        }
        NUMBER => {
            let number = text
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && n.abs() <= MAX_SAFE_INTEGER as f64 + 1.0)
                .ok_or_else(|| error(format!("option {name} must be a number, got \"{text}\"")))?;
            check_range(option, number, text)?;
            json!(number)
        }
        BOOLEAN => match text.to_ascii_lowercase().as_str() {
            "true" | "yes" => json!(true),
            "false" | "no" => json!(false),
            _ => {
                return Err(error(format!(
                    "option {name} must be true or false, got \"{text}\""
                )));
            }
        },
        USER => {
            let member = find_member(directory, text).ok_or_else(|| {
                error(format!(
                    "no member \"{text}\" for option {name}; {}",
                    list_members(directory)
                ))
            })?;
            resolved.add_member(member);
            return Ok((
                json!(member.id.to_string()),
                json!(format!("@{}", member.name)),
            ));
        }
        MENTIONABLE => {
            if let Some(member) = find_member(directory, text) {
                resolved.add_member(member);
                return Ok((
                    json!(member.id.to_string()),
                    json!(format!("@{}", member.name)),
                ));
            }
            let role = find_role(directory, text).ok_or_else(|| {
                error(format!(
                    "no member or role \"{text}\" for option {name}; {}; {}",
                    list_members(directory),
                    list_roles(directory)
                ))
            })?;
            resolved.add_role(role, directory.guild_id);
            return Ok((json!(role.id.to_string()), json!(at_role(role))));
        }
        ROLE => {
            let role = find_role(directory, text).ok_or_else(|| {
                error(format!(
                    "no role \"{text}\" for option {name}; {}",
                    list_roles(directory)
                ))
            })?;
            resolved.add_role(role, directory.guild_id);
            return Ok((json!(role.id.to_string()), json!(at_role(role))));
        }
        CHANNEL => {
            let channel = find_channel(option, text, directory)?;
            resolved.add_channel(channel);
            return Ok((
                json!(channel.id.to_string()),
                json!(format!("#{}", channel.name)),
            ));
        }
        other => {
            return Err(error(format!(
                "option {name} has type {other}, which the shell does not know"
            )));
        }
    };
    Ok((value.clone(), value))
}

/// The choice named (case-insensitively) or valued `text`; its value keeps its JSON type.
fn choice_value(option: &Value, choices: &[Value], text: &str) -> Result<Value, LineError> {
    let by_value = |choice: &&Value| match choice.get("value") {
        Some(Value::String(value)) => value == text,
        Some(Value::Number(value)) => text.parse::<f64>().ok() == value.as_f64(),
        _ => false,
    };
    choices
        .iter()
        .find(|c| name_of(c).eq_ignore_ascii_case(text))
        .or_else(|| choices.iter().find(by_value))
        .and_then(|c| c.get("value").cloned())
        .ok_or_else(|| {
            let names = choices.iter().map(name_of).collect::<Vec<_>>().join(", ");
            error(format!(
                "\"{text}\" is not a choice for option {}; choices: {names}",
                name_of(option)
            ))
        })
}

fn check_range(option: &Value, number: f64, text: &str) -> Result<(), LineError> {
    let min = field(option, "min_value").and_then(Value::as_f64);
    let max = field(option, "max_value").and_then(Value::as_f64);
    if min.is_some_and(|min| number < min) || max.is_some_and(|max| number > max) {
        return Err(error(format!(
            "option {} must be {}, got {text}",
            name_of(option),
            bounds_text(min, max)
        )));
    }
    Ok(())
}

/// `between 1 and 25`, `at least 1`, `at most 25`; whole bounds without a decimal point.
fn bounds_text(min: Option<f64>, max: Option<f64>) -> String {
    let show = |n: f64| {
        if n.fract() == 0.0 && n.abs() < 1e15 {
            format!("{}", n as i64)
        } else {
            n.to_string()
        }
    };
    match (min, max) {
        (Some(min), Some(max)) => format!("between {} and {}", show(min), show(max)),
        (Some(min), None) => format!("at least {}", show(min)),
        (None, Some(max)) => format!("at most {}", show(max)),
        (None, None) => String::new(),
    }
}

/// A snowflake written as digits, or inside a mention such as `<@…>`.
fn mentioned_id(text: &str, prefixes: &[&str]) -> Option<u64> {
    if let Ok(id) = text.parse() {
        return Some(id);
    }
    let inner = text.strip_prefix('<')?.strip_suffix('>')?;
    prefixes
        .iter()
        .find_map(|p| inner.strip_prefix(p)?.parse().ok())
}

fn find_member<'a>(directory: &'a GuildDirectory, text: &str) -> Option<&'a DirectoryMember> {
    if let Some(id) = mentioned_id(text, &["@!", "@"]) {
        return directory.members.iter().find(|m| m.id == id);
    }
    let name = text.strip_prefix('@').unwrap_or(text);
    directory
        .members
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case(name))
}

fn find_role<'a>(directory: &'a GuildDirectory, text: &str) -> Option<&'a DirectoryRole> {
    if let Some(id) = mentioned_id(text, &["@&"]) {
        return directory.roles.iter().find(|r| r.id == id);
    }
    directory
        .roles
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(text))
        .or_else(|| {
            let name = text.strip_prefix('@').unwrap_or(text);
            directory
                .roles
                .iter()
                .find(|r| r.name.eq_ignore_ascii_case(name))
        })
}

/// The channel named by `text`, if its type is one the option allows (`channel_types`).
fn find_channel<'a>(
    option: &Value,
    text: &str,
    directory: &'a GuildDirectory,
) -> Result<&'a DirectoryChannel, LineError> {
    let allowed: Option<Vec<u64>> = field(option, "channel_types")
        .and_then(Value::as_array)
        .map(|t| t.iter().filter_map(Value::as_u64).collect());
    let allows = |channel: &DirectoryChannel| {
        allowed
            .as_ref()
            .is_none_or(|a| a.contains(&u64::from(channel.kind)))
    };
    let name = name_of(option);
    let channel = match mentioned_id(text, &["#"]) {
        Some(id) => directory.channels.iter().find(|c| c.id == id),
        None => {
            let wanted = text.strip_prefix('#').unwrap_or(text);
            let mut named = directory
                .channels
                .iter()
                .filter(|c| c.name.eq_ignore_ascii_case(wanted));
            // Two channels may share a name (a category and a text channel): prefer one that fits.
            named.clone().find(|c| allows(c)).or_else(|| named.next())
        }
    };
    let listed = || {
        let names = directory
            .channels
            .iter()
            .filter(|c| allows(c))
            .map(|c| format!("#{}", c.name));
        list("channels", names)
    };
    let channel = channel.ok_or_else(|| {
        error(format!(
            "no channel \"{text}\" for option {name}; {}",
            listed()
        ))
    })?;
    if !allows(channel) {
        let kinds: Vec<&str> = allowed
            .iter()
            .flatten()
            .map(|&k| u8::try_from(k).map_or("channel", channel_kind))
            .collect();
        let kinds = match kinds.split_last() {
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => "channel".to_owned(),
        };
        return Err(error(format!(
            "#{} is a {}, but option {name} takes a {kinds}; {}",
            channel.name,
            channel_kind(channel.kind),
            listed()
        )));
    }
    Ok(channel)
}

/// Discord's name for a channel type, as its client shows it.
fn channel_kind(kind: u8) -> &'static str {
    match kind {
        0 => "text channel",
        2 => "voice channel",
        4 => "category",
        5 => "announcement channel",
        10 => "announcement thread",
        11 => "public thread",
        12 => "private thread",
        13 => "stage channel",
        15 => "forum channel",
        16 => "media channel",
        _ => "channel",
    }
}

fn is_thread(kind: u8) -> bool {
    matches!(kind, 10..=12)
}

fn at_role(role: &DirectoryRole) -> String {
    if role.name.starts_with('@') {
        role.name.clone()
    } else {
        format!("@{}", role.name)
    }
}

fn list_members(directory: &GuildDirectory) -> String {
    list("members", directory.members.iter().map(|m| m.name.clone()))
}

fn list_roles(directory: &GuildDirectory) -> String {
    list("roles", directory.roles.iter().map(|r| r.name.clone()))
}

/// `members: ana, bob` sorted, at most [`MAX_LISTED`], saying how many were left out.
fn list(what: &str, names: impl Iterator<Item = String>) -> String {
    let mut names: Vec<String> = names.collect();
    if names.is_empty() {
        return format!("there are no {what}");
    }
    names.sort_by_key(|n| n.to_lowercase());
    names.dedup();
    let more = names.len().saturating_sub(MAX_LISTED);
    names.truncate(MAX_LISTED);
    let mut listed = format!("{what}: {}", names.join(", "));
    if more > 0 {
        listed.push_str(&format!(" and {more} more"));
    }
    listed
}

/// The `resolved` object: what the options referenced, shaped as Discord sends it.
#[derive(Debug, Default)]
struct Resolved {
    users: Map<String, Value>,
    members: Map<String, Value>,
    roles: Map<String, Value>,
    channels: Map<String, Value>,
}

impl Resolved {
    fn add_member(&mut self, member: &DirectoryMember) {
        let id = member.id.to_string();
        self.users.insert(
            id.clone(),
            json!({
                "id": id,
                "username": member.name,
                "global_name": null,
                "discriminator": "0",
                "avatar": null,
            }),
        );
        self.members.insert(
            id,
            json!({
                "roles": member.role_ids.iter().map(u64::to_string).collect::<Vec<_>>(),
                "joined_at": JOINED_AT,
                "deaf": false,
                "mute": false,
                "flags": 0,
                "pending": false,
                "permissions": "0",
                "nick": null,
                "avatar": null,
            }),
        );
    }

    fn add_role(&mut self, role: &DirectoryRole, guild_id: u64) {
        let id = role.id.to_string();
        // @everyone has the guild's id and sits at the bottom.
        let position = if role.id == guild_id { 0 } else { 1 };
        self.roles.insert(
            id.clone(),
            json!({
                "id": id,
                "name": role.name,
                "color": 0,
                "colors": { "primary_color": 0, "secondary_color": null, "tertiary_color": null },
                "hoist": false,
                "position": position,
                "permissions": "0",
                "managed": false,
                "mentionable": false,
                "flags": 0,
                "icon": null,
                "unicode_emoji": null,
            }),
        );
    }

    fn add_channel(&mut self, channel: &DirectoryChannel) {
        let id = channel.id.to_string();
        let mut value = json!({
            "id": id,
            "name": channel.name,
            "type": channel.kind,
            "permissions": "0",
        });
        if is_thread(channel.kind) {
            value["parent_id"] = Value::Null;
            value["thread_metadata"] = json!({
                "archived": false,
                "auto_archive_duration": 1440,
                "archive_timestamp": JOINED_AT,
                "locked": false,
                "create_timestamp": JOINED_AT,
            });
        }
        self.channels.insert(id, value);
    }

    fn into_json(self) -> Option<Value> {
        let mut resolved = Map::new();
        for (key, map) in [
            ("users", self.users),
            ("members", self.members),
            ("roles", self.roles),
            ("channels", self.channels),
        ] {
            if !map.is_empty() {
                resolved.insert(key.to_owned(), Value::Object(map));
            }
        }
        (!resolved.is_empty()).then_some(Value::Object(resolved))
    }
}

#[cfg(test)]
mod tests;
