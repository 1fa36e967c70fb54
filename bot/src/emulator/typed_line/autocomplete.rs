//! A line being typed, turned into the `data` of an APPLICATION_COMMAND_AUTOCOMPLETE
//! interaction: the last option is the one the cursor is in (`focused`), its value the
//! partial text (`/deploy run service:ap`). Discord sends the other options as typed so far;
//! here they are sent as strings, the type autocomplete options have.

use serde_json::{Value, json};

use super::{
    CHAT_INPUT, LineError, STRING, SUB_COMMAND, SUB_COMMAND_GROUP, error, name_of, options_of,
    split_words, type_of,
};

/// The autocomplete `data` for `line`, checked against `registered`: the command and
/// subcommands must exist, and the focused option must be one with autocomplete.
pub fn autocomplete_data(
    line: &str,
    registered: &[Value],
    guild_id: u64,
) -> Result<Value, LineError> {
    let words = split_words(line.trim())?;
    let Some(typed_name) = words.first().and_then(|w| w.strip_prefix('/')) else {
        return Err(error(
            "autocomplete needs a command line, e.g. /deploy run service:",
        ));
    };
    let command = registered
        .iter()
        .filter(|c| c.get("type").and_then(Value::as_u64).unwrap_or(CHAT_INPUT) == CHAT_INPUT)
        .find(|c| name_of(c).eq_ignore_ascii_case(typed_name))
        .ok_or_else(|| {
            let names = registered.iter().map(name_of);
            error(match super::nearest(typed_name, names) {
                Some(near) => format!("unknown command /{typed_name}; did you mean /{near}?"),
                None => format!("unknown command /{typed_name}"),
            })
        })?;
    let mut rest = words[1..].iter().map(String::as_str).peekable();
    let mut path = format!("/{}", name_of(command));
    let mut chain: Vec<(&str, u64)> = Vec::new();
    let mut schema = options_of(command);
    while schema
        .iter()
        .any(|o| matches!(type_of(o), SUB_COMMAND | SUB_COMMAND_GROUP))
    {
        let sub = rest
            .next()
            .filter(|w| !w.contains(':'))
            .ok_or_else(|| error(format!("{path} needs a subcommand")))?;
        let chosen = schema
            .iter()
            .find(|o| name_of(o).eq_ignore_ascii_case(sub))
            .ok_or_else(|| error(format!("unknown subcommand \"{sub}\" for {path}")))?;
        path = format!("{path} {}", name_of(chosen));
        chain.push((name_of(chosen), type_of(chosen)));
        schema = options_of(chosen);
    }
    let given: Vec<&str> = rest.collect();
    let Some((last, earlier)) = given.split_last() else {
        return Err(error(format!(
            "end the line with the option to complete, e.g. {path} {}:",
            schema.first().map_or("option", |o| name_of(o))
        )));
    };
    let mut options = Vec::new();
    for (index, word) in earlier.iter().chain([last]).enumerate() {
        let (key, value) = word.split_once(':').ok_or_else(|| {
            error(format!(
                "\"{word}\" is not an option: give options as name:value"
            ))
        })?;
        let option = schema
            .iter()
            .find(|o| name_of(o).eq_ignore_ascii_case(key))
            .ok_or_else(|| error(format!("unknown option \"{key}\" for {path}")))?;
        let focused = index == earlier.len();
        if focused && option.get("autocomplete").and_then(Value::as_bool) != Some(true) {
            return Err(error(format!(
                "option {} of {path} has no autocomplete",
                name_of(option)
            )));
        }
        let mut entry = json!({ "name": name_of(option), "type": STRING, "value": value });
        if focused {
            entry["type"] = json!(type_of(option));
            entry["focused"] = json!(true);
        }
        options.push(entry);
    }
    for (name, kind) in chain.into_iter().rev() {
        options = vec![json!({ "name": name, "type": kind, "options": options })];
    }
    Ok(json!({
        "id": command["id"].as_str().map_or_else(|| command["id"].to_string(), str::to_owned),
        "name": name_of(command),
        "type": CHAT_INPUT,
        "guild_id": guild_id.to_string(),
        "options": options,
    }))
}

#[cfg(test)]
mod tests {
    use super::autocomplete_data;
    use serde_json::json;

    fn registered() -> Vec<serde_json::Value> {
        vec![json!({
            "id": "7", "name": "deploy", "type": 1,
            "options": [{ "name": "run", "type": 1, "options": [
                { "name": "service", "type": 3, "autocomplete": true, "required": true },
                { "name": "version", "type": 3, "required": true },
            ]}],
        })]
    }

    #[test]
    fn the_last_option_is_focused_inside_its_subcommand() {
        let data =
            autocomplete_data("/deploy run version:v1 service:ap", &registered(), 1).expect("data");
        let options = &data["options"][0]["options"];
        assert_eq!(data["options"][0]["name"], "run");
        assert_eq!(
            options[0],
            json!({ "name": "version", "type": 3, "value": "v1" })
        );
        assert_eq!(
            options[1],
            json!({ "name": "service", "type": 3, "value": "ap", "focused": true })
        );
        let empty = autocomplete_data("/deploy run service:", &registered(), 1).expect("data");
        assert_eq!(empty["options"][0]["options"][0]["value"], "");
    }

    #[test]
    fn refusals_say_what_to_type() {
        let refused = |line: &str| autocomplete_data(line, &registered(), 1).unwrap_err().0;
        assert!(refused("/deploy run").contains("deploy run service:"));
        assert!(refused("/deploy run version:").contains("no autocomplete"));
        assert!(refused("/deploy run owner:").contains("unknown option"));
        assert!(refused("/nope x:").contains("unknown command"));
        assert!(refused("/deploy").contains("needs a subcommand"));
    }
}
