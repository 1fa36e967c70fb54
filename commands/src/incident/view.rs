//! What people read about an incident: the pinned summary, the channel topic, the
//! announcement, updates and reminders. Typed [`Text`], never platform markup.

use chrono::{DateTime, Utc};

use super::model::Incident;
use super::{IncidentCatalog, RoleSpec};
use crate::chat::{Embed, Field, Message, Notify, Text, TimeStyle};

/// `#3 API 5xx on checkout`.
pub fn headline(incident: &Incident) -> String {
    format!("#{} {}", incident.id, incident.title)
}

/// `1h 5m`, `12m`, `40s`.
pub fn duration_text(duration: chrono::Duration) -> String {
    let secs = duration.num_seconds().max(0);
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h {m}m"),
    }
}

/// The channel topic: severity, status, commander (Discord: at most 1024 characters).
pub fn topic(incident: &Incident) -> String {
    let commander = incident
        .commander()
        .map(|c| c.user_name.clone())
        .unwrap_or_else(|| "none yet".to_owned());
    let topic = format!(
        "{} · {} · commander: {} · {}",
        incident.severity, incident.status, commander, incident.title
    );
    topic.chars().take(1024).collect()
}

fn dashboard_link(incident: &Incident, public_url: Option<&str>) -> Option<String> {
    public_url.map(|base| format!("{base}/incidents/{}", incident.id))
}

/// The pinned summary: title, severity, status, roles, services, started at, links.
pub fn summary(incident: &Incident, catalog: &IncidentCatalog, now: DateTime<Utc>) -> Message {
    let severity = catalog.severities.get(&incident.severity);
    let mut status = Text::new().strong(incident.status.as_str());
    if let Some(resolved) = incident.resolved_at {
        status = status
            .plain(" at ")
            .time(resolved, TimeStyle::DateTime)
            .plain(format!(", after {}", duration_text(incident.duration(now))));
    }
    let mut roles = Text::new();
    for (i, spec) in ordered_roles(catalog).iter().enumerate() {
        if i > 0 {
            roles = roles.plain("\n");
        }
        roles = roles.plain(format!("{}: ", spec.name));
        roles = match incident.holder(&spec.name) {
            Some(holder) => roles.user(holder.user_id),
            None => roles.plain("—"),
        };
    }
    let services = if incident.services.is_empty() {
        Text::from("—")
    } else {
        incident
            .services
            .iter()
            .enumerate()
            .fold(Text::new(), |t, (i, s)| {
                let t = if i > 0 { t.plain(", ") } else { t };
                t.code(s)
            })
    };
    let mut fields = vec![
        Field {
            name: "Severity".to_owned(),
            value: Text::from(match severity {
                Some(s) if !s.description.is_empty() => {
                    format!("{} ({})", incident.severity, s.description)
                }
                _ => incident.severity.clone(),
            }),
            inline: true,
        },
        Field {
            name: "Status".to_owned(),
            value: status,
            inline: true,
        },
        Field {
            name: "Roles".to_owned(),
            value: roles,
            inline: false,
        },
        Field {
            name: "Services".to_owned(),
            value: services,
            inline: true,
        },
        Field {
            name: "Started".to_owned(),
            value: Text::new()
                .time(incident.started_at, TimeStyle::DateTime)
                .plain(format!(" by {}", incident.declared_by_name)),
            inline: true,
        },
    ];
    if let Some(resolution) = &incident.resolution {
        fields.push(Field {
            name: "Resolution".to_owned(),
            value: Text::from(resolution.as_str()),
            inline: false,
        });
    }
    let mut links = Text::new();
    if let Some(url) = dashboard_link(incident, catalog.public_url.as_deref()) {
        links = links.link("dashboard", url);
    }
    if let (Some(guild), Some(channel), Some(_)) = (
        incident.guild_id,
        incident.declared_in_channel,
        incident.declared_interaction,
    ) {
        if !links.is_empty() {
            links = links.plain(" · ");
        }
        links = links.link(
            "where it was declared",
            format!("https://discord.com/channels/{guild}/{channel}"),
        );
    }
    if !links.is_empty() {
        fields.push(Field {
            name: "Links".to_owned(),
            value: links,
            inline: false,
        });
    }
    Message {
        embeds: vec![Embed {
            title: format!("Incident {}", headline(incident)),
            description: Text::from(incident.description.as_str()),
            url: dashboard_link(incident, catalog.public_url.as_deref()),
            color: severity.and_then(|s| s.color),
            fields,
            footer: Some(format!("inc-{} · opsbot", incident.id)),
        }],
        ..Message::default()
    }
}

/// The configured roles, commander first.
fn ordered_roles(catalog: &IncidentCatalog) -> Vec<RoleSpec> {
    if catalog.roles.is_empty() {
        super::default_roles()
    } else {
        catalog.roles.clone()
    }
}

/// The announcement in `[channels] incidents`, pinging the severity's responders.
pub fn announcement(incident: &Incident, responders: &[i64]) -> Message {
    let mut content = Text::new()
        .plain("🚨 Incident ")
        .strong(headline(incident))
        .plain(format!(
            " declared ({}) by {}",
            incident.severity, incident.declared_by_name
        ));
    if let Some(channel) = incident.channel_name() {
        content = content.plain(format!(" · #{channel}"));
    }
    if !responders.is_empty() {
        content = content.plain("\nResponders: ");
        for (i, role) in responders.iter().enumerate() {
            if i > 0 {
                content = content.plain(" ");
            }
            content = content.role(*role);
        }
    }
    Message {
        content,
        notify: Notify {
            roles: responders.to_vec(),
            users: Vec::new(),
        },
        ..Message::default()
    }
}

/// A status update, posted in the channel and the announcement channel.
pub fn status_update(incident: &Incident, by: &str, text: Option<&str>) -> Message {
    let mut content = Text::new()
        .plain(format!("Incident #{} is now ", incident.id))
        .strong(incident.status.as_str())
        .plain(format!(" ({}, by {by})", incident.severity));
    if let Some(text) = text.filter(|t| !t.is_empty()) {
        content = content.plain(format!(": {text}"));
    }
    Message::text(content)
}

/// A plain notice in the channel (`severity changed`, a note, ...).
pub fn notice(text: impl Into<String>) -> Message {
    Message::text(Text::from(text.into()))
}

/// Tells a member their role and what it means (it notifies them).
pub fn role_assigned(incident: &Incident, spec: &RoleSpec, user_id: i64, by: &str) -> Message {
    Message {
        content: Text::new()
            .user(user_id)
            .plain(" is now ")
            .strong(&spec.name)
            .plain(format!(
                " of incident #{} (assigned by {by}): {}.",
                incident.id, spec.duty
            )),
        notify: Notify {
            roles: Vec::new(),
            users: vec![user_id],
        },
        ..Message::default()
    }
}

/// A resolve, for the channel and the announcement channel.
pub fn resolved(incident: &Incident, by: &str, now: DateTime<Utc>) -> Message {
    Message::text(
        Text::new()
            .plain("✅ Incident ")
            .strong(headline(incident))
            .plain(format!(
                " resolved by {by} after {}: {}",
                duration_text(incident.duration(now)),
                incident.resolution.as_deref().unwrap_or_default()
            )),
    )
}

/// No status update within the severity's interval: reminds the commander (or, with none, the
/// responders).
pub fn update_reminder(
    incident: &Incident,
    since: chrono::Duration,
    responders: &[i64],
) -> Message {
    let mut content = Text::new();
    let mut notify = Notify::default();
    match incident.commander() {
        Some(c) => {
            content = content.user(c.user_id).plain(" ");
            notify.users.push(c.user_id);
        }
        None => {
            for r in responders {
                content = content.role(*r).plain(" ");
            }
            notify.roles = responders.to_vec();
        }
    }
    content = content.plain(format!(
        "⏰ no status update on incident #{} for {}; post one with /incident status.",
        incident.id,
        duration_text(since)
    ));
    Message {
        content,
        notify,
        ..Message::default()
    }
}

/// No commander 10 minutes after declare: reminds the responders.
pub fn commander_reminder(incident: &Incident, responders: &[i64]) -> Message {
    let mut content = Text::new();
    for r in responders {
        content = content.role(*r).plain(" ");
    }
    content = content.plain(format!(
        "⏰ incident #{} has no commander yet; take it with /incident role role:commander.",
        incident.id
    ));
    Message {
        content,
        notify: Notify {
            roles: responders.to_vec(),
            users: Vec::new(),
        },
        ..Message::default()
    }
}

/// A deploy went ahead with an override despite the incident's freeze.
pub fn override_notice(incident: &Incident, deploy: &str, by: &str) -> Message {
    Message::text(
        Text::new()
            .plain("⚠️ ")
            .strong(format!("{by} overrode the deploy freeze"))
            .plain(format!(" of incident #{}: ", incident.id))
            .code(deploy),
    )
}

/// `/incident list`: one line per incident.
pub fn list(incidents: &[Incident], now: DateTime<Utc>) -> Message {
    if incidents.is_empty() {
        return Message::text("No open incidents.");
    }
    let mut text = Text::new();
    for (i, incident) in incidents.iter().enumerate() {
        if i > 0 {
            text = text.plain("\n");
        }
        text = text.strong(headline(incident)).plain(format!(
            " · {} · {} · {}",
            incident.severity,
            incident.status,
            duration_text(incident.duration(now))
        ));
        if let Some(channel) = incident.channel_name() {
            text = text.plain(format!(" · #{channel}"));
        }
    }
    Message {
        embeds: vec![Embed {
            title: "Open incidents".to_owned(),
            description: text,
            ..Embed::default()
        }],
        ..Message::default()
    }
}
