//! What an incident is, as stored.

use chrono::{DateTime, Utc};

/// `investigating` → `identified` → `monitoring` → `resolved` (and `reopened`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Investigating,
    Identified,
    Monitoring,
    Resolved,
    Reopened,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Investigating,
        Status::Identified,
        Status::Monitoring,
        Status::Resolved,
        Status::Reopened,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Investigating => "investigating",
            Status::Identified => "identified",
            Status::Monitoring => "monitoring",
            Status::Resolved => "resolved",
            Status::Reopened => "reopened",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_open(self) -> bool {
        self != Status::Resolved
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who holds a role in an incident.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct IncidentRole {
    pub role: String,
    pub user_id: i64,
    pub user_name: String,
    pub assigned_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub id: i64,
    pub correlation_id: uuid::Uuid,
    pub title: String,
    pub slug: String,
    pub severity: String,
    pub status: Status,
    pub services: Vec<String>,
    pub description: String,
    pub declared_by_id: i64,
    pub declared_by_name: String,
    pub guild_id: Option<i64>,
    pub declared_in_channel: Option<i64>,
    pub declared_interaction: Option<i64>,
    pub started_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution: Option<String>,
    pub last_update_at: DateTime<Utc>,
    pub channel_id: Option<i64>,
    pub summary_outbox_id: Option<i64>,
    pub summary_pinned: bool,
    pub topic_set: Option<String>,
    pub archived: bool,
    /// By role name; views order them as configured.
    pub roles: Vec<IncidentRole>,
}

impl Incident {
    /// `inc-<n>-<slug>`.
    pub fn channel_name(&self) -> Option<String> {
        Some(channel_name(self.id, &self.slug))
    }

    pub fn holder(&self, role: &str) -> Option<&IncidentRole> {
        self.roles.iter().find(|r| r.role == role)
    }

    pub fn commander(&self) -> Option<&IncidentRole> {
        self.holder("commander")
    }

    /// How long it has been going on (until resolved).
    pub fn duration(&self, now: DateTime<Utc>) -> chrono::Duration {
        self.resolved_at.unwrap_or(now) - self.started_at
    }
}

/// `inc-<n>-<slug>`: at most 100 characters (Discord's limit on channel names).
pub fn channel_name(id: i64, slug: &str) -> String {
    let name = format!("inc-{id}-{slug}");
    name.chars()
        .take(100)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
}

/// The prefix every channel of incident `id` starts with (`inc-<n>-`).
pub fn channel_prefix(id: i64) -> String {
    format!("inc-{id}-")
}

/// Lowercase ASCII letters and digits joined by single dashes, at most 40 characters:
/// `"API 5xx on checkout!"` → `api-5xx-on-checkout`.
pub fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 40 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() {
        "incident".to_owned()
    } else {
        out
    }
}
