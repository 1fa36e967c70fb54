//! Secrets (`discord.token`, `database.url`, deploy backends' `token` and `secret`): typed so that they are never printed, and
//! resolved from `env:NAME` or `file:PATH` references when the configuration is loaded.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use super::problem::Problem;

/// A secret value. `{:?}` and `{}` show where it came from (`Secret(env:DISCORD_TOKEN)`),
/// never the value; call [`Secret::expose`] at the one place that needs it.
#[derive(Clone)]
pub struct Secret {
    value: SecretString,
    origin: String,
}

impl Secret {
    /// A secret with no recorded origin, shown as `Secret(<redacted>)`; for tests and callers
    /// that obtained the value themselves.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret {
            value: SecretString::from(value.into()),
            origin: "<redacted>".to_owned(),
        }
    }

    /// The secret itself. Pass it straight to the client that needs it; do not log it.
    pub fn expose(&self) -> &str {
        self.value.expose_secret()
    }

    /// Where the value came from, e.g. `env:DISCORD_TOKEN` or `file:/run/secrets/token`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn from_origin(value: String, origin: String) -> Secret {
        Secret {
            value: SecretString::from(value),
            origin,
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.origin)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.origin)
    }
}

/// Where the text of a secret setting was written, which decides what it may contain.
pub(super) enum Written<'a> {
    /// In the config file: only `env:` and `file:` references are allowed.
    File,
    /// In this environment variable: a reference, or the secret itself.
    Env(&'a str),
}

/// Turns the text of a secret setting into the secret, or the problem that stops it.
/// `key` is the problem key; `path` the config key (`discord.token`), used in hints.
pub(super) fn resolve(
    key: &str,
    path: &str,
    text: &str,
    written: Written<'_>,
    env: &BTreeMap<String, String>,
) -> Result<Secret, Problem> {
    if let Some(name) = text.strip_prefix("env:") {
        let name = name.trim();
        if name.is_empty() {
            return Err(Problem::new(key, "`env:` names no variable")
                .with_hint(format!("write env:NAME, e.g. env:{}", suggested_var(path))));
        }
        return match env.get(name) {
            Some(value) if !value.is_empty() => {
                Ok(Secret::from_origin(value.clone(), format!("env:{name}")))
            }
            Some(_) => Err(
                Problem::new(key, format!("environment variable {name} is empty")).with_hint(
                    format!("set {name} to the secret, or point {path} at a file with file:PATH"),
                ),
            ),
            None => Err(
                Problem::new(key, format!("environment variable {name} is not set")).with_hint(
                    format!("export {name}=..., or point {path} at a file with file:PATH"),
                ),
            ),
        };
    }
    if let Some(file) = text.strip_prefix("file:") {
        let file = file.trim();
        if file.is_empty() {
            return Err(Problem::new(key, "`file:` names no file")
                .with_hint("write file:PATH, e.g. file:/run/secrets/opsbot"));
        }
        return match std::fs::read_to_string(file) {
            Ok(contents) => {
                let value = contents
                    .strip_suffix("\r\n")
                    .or_else(|| contents.strip_suffix('\n'))
                    .unwrap_or(&contents);
                if value.is_empty() {
                    Err(Problem::new(key, format!("secret file {file} is empty"))
                        .with_hint("write the secret into the file"))
                } else {
                    Ok(Secret::from_origin(value.to_owned(), format!("file:{file}")))
                }
            }
            Err(error) => Err(Problem::new(
                key,
                format!("cannot read secret file {file}: {error}"),
            )
            .with_hint(
                "check the path (relative paths start from the working directory) and that opsbot's user may read it",
            )),
        };
    }
    match written {
        Written::File => Err(Problem::new(
            key,
            "secrets are never written in the config file; write env:NAME or file:PATH",
        )
        .with_hint(format!(
            "e.g. {path} = \"env:{}\", and remove the secret from the file (rotate it if the file was shared)",
            suggested_var(path)
        ))),
        Written::Env(var) if text.is_empty() => Err(Problem::new(
            key,
            format!("{var} is empty"),
        )
        .with_hint(format!("set {var} to the secret (or env:NAME / file:PATH), or unset it"))),
        Written::Env(var) => Ok(Secret::from_origin(text.to_owned(), format!("env:{var}"))),
    }
}

/// The conventional variable for a secret, used in hints.
fn suggested_var(path: &str) -> &'static str {
    match path {
        "database.url" => "DATABASE_URL",
        "discord.token" => "DISCORD_TOKEN",
        _ if path.ends_with(".backend.token") => "GITHUB_TOKEN",
        _ if path.ends_with(".backend.secret") => "DEPLOY_WEBHOOK_SECRET",
        _ => "NAME",
    }
}
