//! `/alerts active [service] [severity]`: what is firing now, from opsbot's own store (the
//! groups Alertmanager delivered), newest first, one line per group. A read: audited, no
//! permission needed.

use super::payload::Labels;
use super::store::{self, AlertGroup};
use super::view;
use crate::chat::{Embed, Message, Text, TimeStyle};
use crate::desk::{Desk, Invocation};
use crate::error::CommandError;

/// Groups listed at most (the embed stays well within Discord's 4096 characters).
pub const ACTIVE_MAX: i64 = 20;
/// Characters of one group's line at most.
const LINE_MAX: usize = 180;
/// Longest filter value taken (label values are short; this bounds the echo).
const FILTER_MAX: usize = 100;

impl Desk {
    /// `/alerts active`, optionally only groups whose (common or firing alerts') labels
    /// carry `service` (as the configured service label) and `severity`.
    pub async fn alerts_active(
        &self,
        inv: &Invocation,
        service: Option<&str>,
        severity: Option<&str>,
    ) -> Result<Message, CommandError> {
        let result = async {
            let mut filter = Labels::new();
            for (label, value) in [
                (self.alerts().service_label.as_str(), service),
                ("severity", severity),
            ] {
                let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
                    continue;
                };
                if value.chars().count() > FILTER_MAX {
                    return Err(CommandError::Invalid(format!(
                        "`{label}` is longer than {FILTER_MAX} characters"
                    )));
                }
                filter.insert(label.to_owned(), value.to_owned());
            }
            let groups = store::firing_with_labels(&self.pool, &filter, ACTIVE_MAX + 1).await?;
            Ok(active_message(&groups, &filter))
        }
        .await;
        self.conclude(inv, result, |m| {
            m.embeds
                .first()
                .map_or_else(String::new, |e| e.title.clone())
        })
        .await
    }
}

/// The reply: one line per firing group (up to [`ACTIVE_MAX`], then "+ more").
pub fn active_message(groups: &[AlertGroup], filter: &Labels) -> Message {
    let shown = groups.len().min(usize::try_from(ACTIVE_MAX).unwrap_or(20));
    let mut description = Text::new();
    if groups.is_empty() {
        description = description.plain("Nothing is firing");
        if !filter.is_empty() {
            description = description
                .plain(" that matches ")
                .code(filter_text(filter));
        }
        description = description.plain(".");
    }
    for group in &groups[..shown] {
        let labels = &group.common_labels.0;
        let name = labels.get("alertname").map_or("alert", String::as_str);
        let rest: Vec<String> = labels
            .iter()
            .filter(|(k, _)| k.as_str() != "alertname")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        description = description
            .plain("🔥 ")
            .strong(view::cut(name, 60))
            .plain(" ")
            .code(view::cut(&rest.join(" "), LINE_MAX - 60))
            .plain(" since ")
            .time(group.first_seen_at, TimeStyle::Relative);
        if let Some(who) = &group.acked_by_name {
            description = description.plain(format!(" · acked by {}", view::cut(who, 40)));
        }
        if let Some(who) = &group.silenced_by_name {
            description = description.plain(format!(" · silenced by {}", view::cut(who, 40)));
        }
        description = description.plain(format!(" · group {}\n", group.id));
    }
    if groups.len() > shown {
        description = description.strong("+ more; narrow with service or severity");
    }
    let title = if filter.is_empty() {
        format!("Firing now: {}", count(groups.len(), shown))
    } else {
        format!(
            "Firing now ({}): {}",
            view::cut(&filter_text(filter), 150),
            count(groups.len(), shown)
        )
    };
    Message {
        embeds: vec![Embed {
            title,
            description,
            ..Embed::default()
        }],
        ..Message::default()
    }
}

fn count(total: usize, shown: usize) -> String {
    let noun = |n: usize| if n == 1 { "group" } else { "groups" };
    if total > shown {
        format!("more than {shown} {}", noun(shown))
    } else {
        format!("{total} {}", noun(total))
    }
}

fn filter_text(filter: &Labels) -> String {
    filter
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}
