//! Who asked: the same shape whichever front door (Discord, shell, web, scheduler,
//! webhook) an action came through.

use serde::Serialize;

/// The front door an action came through; stored in `audit_events.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Discord,
    Shell,
    Web,
    Scheduler,
    Webhook,
}

impl Source {
    pub const ALL: [Source; 5] = [
        Source::Discord,
        Source::Shell,
        Source::Web,
        Source::Scheduler,
        Source::Webhook,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Discord => "discord",
            Source::Shell => "shell",
            Source::Web => "web",
            Source::Scheduler => "scheduler",
            Source::Webhook => "webhook",
        }
    }

    pub fn parse(text: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The source named `text` (any case), or why not, naming the valid ones: the one check
    /// every door uses for a source filter.
    pub fn parse_filter(text: &str) -> Result<Source, String> {
        Source::parse(&text.to_ascii_lowercase()).ok_or_else(|| {
            let known: Vec<&str> = Source::ALL.iter().map(|s| s.as_str()).collect();
            format!(
                "source: \"{text}\" is not a source; one of {}",
                known.join(", ")
            )
        })
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person (or opsbot itself, for scheduled work) acting through a front door.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// The Discord user id (snowflake); 0 for opsbot's own actions.
    pub id: i64,
    pub name: String,
    /// Role names as the guild names them; `[roles]` in the config maps them to permissions.
    pub roles: Vec<String>,
    pub source: Source,
}

impl Actor {
    /// opsbot acting on its own behalf (scheduled digests, webhook-driven steps).
    pub fn system(source: Source) -> Actor {
        Actor {
            id: 0,
            name: "opsbot".to_owned(),
            roles: Vec::new(),
            source,
        }
    }
}
