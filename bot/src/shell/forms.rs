//! The shell lines for forms and the Apps menu: `:write`, `:apps`, `:modal`, `:complete`.

use crate::emulator::EmulatorEvent;

use super::Session;

/// Splits `title="API down" severity=sev1` into fields; `name:value` works too. A value may
/// be quoted with `"` or `'` (a backslash takes the next character literally).
pub(super) fn form_fields(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut fields = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(fields);
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ':' || c.is_whitespace() {
                break;
            }
            name.push(c);
            chars.next();
        }
        if !matches!(chars.next(), Some('=' | ':')) || name.is_empty() {
            return Err(format!(
                "give fields as name=value, e.g. :modal title=\"API down\" severity=sev1 (got `{name}`)"
            ));
        }
        let mut value = String::new();
        match chars.peek().copied() {
            Some(quote @ ('"' | '\'')) => {
                chars.next();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    if c == quote {
                        closed = true;
                        break;
                    }
                    if c == '\\' {
                        if let Some(escaped) = chars.next() {
                            value.push(escaped);
                        }
                    } else {
                        value.push(c);
                    }
                }
                if !closed {
                    return Err(format!("unclosed {quote} quote in the value of {name}"));
                }
            }
            _ => {
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        fields.push((name, value));
    }
}

/// A form popping up, for people: its title and fields (`*` required), and how to fill it in.
pub(super) fn modal_text(event: &EmulatorEvent) -> String {
    let fields: Vec<String> = event
        .components
        .iter()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .map(|input| {
            let id = input["custom_id"].as_str().unwrap_or_default();
            let required = input["required"].as_bool().unwrap_or(true);
            let value = input["value"].as_str().filter(|v| !v.is_empty());
            format!(
                "  {id}{}{}",
                if required { " *" } else { "" },
                value.map(|v| format!(" = \"{v}\"")).unwrap_or_default()
            )
        })
        .collect();
    format!(
        "[form \"{}\", only you can see this]\n{}\nfill it in with :modal FIELD=VALUE ... (* required)",
        event.content,
        fields.join("\n")
    )
}

impl Session {
    pub(super) async fn forms_line(&mut self, line: &str) {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        match word {
            ":write" => match self.emulator.write_message(self.member, self.channel, rest) {
                Ok(id) => self.info(&format!("you wrote message {id}")),
                Err(e) => self.error(line, &e.to_string()),
            },
            ":apps" => {
                let (name, target) = match rest.rsplit_once(' ') {
                    Some((name, id)) if id.chars().all(|c| c.is_ascii_digit()) => {
                        (name.trim(), id.parse::<u64>().ok())
                    }
                    _ => (rest, None),
                };
                let name = name.trim_matches('"');
                let target =
                    target.or_else(|| self.emulator.newest_message(self.member, self.channel));
                let Some(message) = target else {
                    return self.error(
                        line,
                        "no message here to run it on; :write one first, or give a message id",
                    );
                };
                if name.is_empty() {
                    return self
                        .error(line, ":apps needs a command, e.g. `:apps Declare incident`");
                }
                match self.emulator.message_command(self.member, message, name) {
                    Ok(interaction) => self.await_answer(line, interaction).await,
                    Err(e) => self.error(line, &e.to_string()),
                }
            }
            ":modal" => {
                let fields = match form_fields(rest) {
                    Ok(fields) => fields,
                    Err(e) => return self.error(line, &e),
                };
                let Some((opener, _)) = self.emulator.open_form(self.member) else {
                    return self.error(
                        line,
                        "no form is open for you: a command or button opens one",
                    );
                };
                match self.emulator.submit_modal(self.member, &fields) {
                    // The bot answers the interaction that opened the form.
                    Ok(_) => self.await_answer(line, opener).await,
                    Err(e) => self.error(line, &e.to_string()),
                }
            }
            ":complete" => match self.emulator.autocomplete(self.member, self.channel, rest) {
                Ok(interaction) => self.await_answer(line, interaction).await,
                Err(e) => self.error(line, &e.to_string()),
            },
            _ => self.error(line, "unknown shell command; type :help"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::form_fields;

    #[test]
    fn form_fields_take_quoted_and_bare_values() {
        let fields = form_fields(r#"title="API down" severity=sev1 description:'it\'s bad'"#)
            .expect("parsed");
        assert_eq!(
            fields,
            [
                ("title".to_owned(), "API down".to_owned()),
                ("severity".to_owned(), "sev1".to_owned()),
                ("description".to_owned(), "it's bad".to_owned()),
            ]
        );
        assert!(form_fields("title").is_err());
        assert!(form_fields("title=\"open").is_err());
        assert_eq!(form_fields("  ").expect("empty"), []);
    }
}
