//! Option values as Discord's client checks them: types, choices, ranges, lengths.

use super::*;

/// The value to send and the value to display for one `name:value`.
pub(super) fn option_value(
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
pub(super) fn choice_value(
    option: &Value,
    choices: &[Value],
    text: &str,
) -> Result<Value, LineError> {
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

pub(super) fn check_range(option: &Value, number: f64, text: &str) -> Result<(), LineError> {
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
pub(super) fn bounds_text(min: Option<f64>, max: Option<f64>) -> String {
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
