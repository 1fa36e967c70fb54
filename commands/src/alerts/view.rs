//! What people read about an alert group: its one living message (edited as alerts join and
//! resolve) and its buttons. Platform-neutral ([`Message`]); front doors only translate.
//!
//! Other features add to the message through [`buttons`] (e.g. "Declare incident") and by
//! queueing an outbox edit of the group's post (`alert_groups.post_outbox_id`).

use crate::chat::{
    Button, ButtonStyle, Embed, Field, Message, Notify, Select, SelectOption, Text, TimeStyle,
};

use super::payload::Labels;
use super::store::{AlertGroup, AlertInstance};

/// Prefix of the Ack button's custom id: `alerts-ack:<group id>`.
pub const ACK_BUTTON: &str = "alerts-ack:";
/// Prefix of the "Ack + silence until resolved" button: `alerts-acksilence:<group id>`.
pub const ACK_SILENCE_BUTTON: &str = "alerts-acksilence:";
/// Prefix of the Silence picker (a select menu): `alerts-silence:<group id>`.
pub const SILENCE_PICKER: &str = "alerts-silence:";
/// Prefix of the Unsilence button: `alerts-unsilence:<group id>`.
pub const UNSILENCE_BUTTON: &str = "alerts-unsilence:";
/// Prefix of the Rollback button of a group correlated with a deploy: `alerts-rollback:<id>`.
pub const ROLLBACK_BUTTON: &str = "alerts-rollback:";
/// Prefix of the Declare incident button (a form pre-filled from the group; the incident
/// then links the group): `alerts-declare:<group id>`.
pub const DECLARE_INCIDENT_BUTTON: &str = "alerts-declare:";
/// Prefix of an Expire button under `/alerts silences`: `alerts-expire:<silence id>`.
pub const EXPIRE_BUTTON: &str = "alerts-expire:";
/// The Silence picker's placeholder (the shell picks with `:select Silence 4h`).
pub const SILENCE_PLACEHOLDER: &str = "Silence for…";
/// The Silence picker's lengths: (label = value, seconds); `until resolved` is the last.
pub const SILENCE_CHOICES: &[(&str, u64)] = &[
    ("30m", 30 * 60),
    ("1h", 3600),
    ("4h", 4 * 3600),
    ("24h", 24 * 3600),
];
/// The picker's value for "until the group resolves".
pub const UNTIL_RESOLVED: &str = "until resolved";

/// Characters of the embed description spent on alert lines; the rest of Discord's 4096 is
/// headroom for the summary and "+N more".
const LINES_BUDGET: usize = 3000;
/// Characters of one alert line at most.
const LINE_MAX: usize = 200;
/// Characters of a summary or description at most.
const TEXT_MAX: usize = 600;

const GREEN: u32 = 0x2e_a0_43;
const RED: u32 = 0xd0_36_36;
const AMBER: u32 = 0xd9_8e_04;
const BLUE: u32 = 0x1f_6f_eb;

/// The group's message. `mention`: role ids mentioned in the content (and allowed to ping)
/// while the group fires.
pub fn group_message(group: &AlertGroup, alerts: &[AlertInstance], mention: &[i64]) -> Message {
    let firing: Vec<&AlertInstance> = alerts.iter().filter(|a| a.is_firing()).collect();
    let common = &group.common_labels.0;
    let name = common
        .get("alertname")
        .or_else(|| alerts.first().and_then(|a| a.labels.0.get("alertname")))
        .map_or("alert", String::as_str);
    let severity = common.get("severity").map(String::as_str);
    let (title, color) = if group.is_firing() {
        let color = match severity {
            Some("critical" | "page") => RED,
            Some("warning") => AMBER,
            _ => BLUE,
        };
        (format!("🔥 FIRING ({}) {name}", firing.len()), color)
    } else {
        (format!("✅ RESOLVED {name}"), GREEN)
    };

    let mut description = Text::new();
    let annotation = |key: &str| {
        group
            .common_annotations
            .0
            .get(key)
            .or_else(|| {
                if alerts.len() == 1 {
                    alerts[0].annotations.0.get(key)
                } else {
                    None
                }
            })
            .map(|s| cut(s, TEXT_MAX))
    };
    if let Some(summary) = annotation("summary") {
        description = description.strong(summary).plain("\n");
    }
    if let Some(text) = annotation("description") {
        description = description.plain(text).plain("\n");
    }
    if alerts.len() > 1 || (alerts.len() == 1 && annotation("summary").is_none()) {
        let lines = fitting_lines(alerts, common);
        let shown = lines.len();
        for line in lines {
            description = description.append(line).plain("\n");
        }
        if shown < alerts.len() {
            description = description.strong(format!(
                "+{} more{}",
                alerts.len() - shown,
                if group.is_firing() {
                    " (every alert is listed in the thread)"
                } else {
                    ""
                }
            ));
        }
    }

    let mut fields = Vec::new();
    let labels: Vec<String> = common
        .iter()
        .filter(|(k, _)| k.as_str() != "alertname")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !labels.is_empty() {
        fields.push(Field {
            name: "labels".to_owned(),
            value: Text::new().code(cut(&labels.join(" "), 1000)),
            inline: false,
        });
    }
    if let Some(started) = alerts.iter().map(|a| a.starts_at).min() {
        fields.push(Field {
            name: "started".to_owned(),
            value: Text::new()
                .time(started, TimeStyle::DateTime)
                .plain(" (")
                .time(started, TimeStyle::Relative)
                .plain(")"),
            inline: true,
        });
        if let Some(resolved) = group.resolved_at.filter(|_| !group.is_firing()) {
            let minutes = (resolved - started).num_minutes().max(0);
            fields.push(Field {
                name: "resolved".to_owned(),
                value: Text::new()
                    .time(resolved, TimeStyle::DateTime)
                    .plain(format!(" after {}", duration_words(minutes))),
                inline: true,
            });
        }
    }
    let mut links = Text::new();
    if let Some(url) = annotation("runbook_url").filter(|u| is_http(u)) {
        links = links.link("runbook", url).plain("  ");
    }
    if let Some(url) = alerts
        .iter()
        .map(|a| a.generator_url.as_str())
        .find(|u| is_http(u))
    {
        links = links.link("source", url).plain("  ");
    }
    if is_http(&group.external_url) {
        links = links.link("Alertmanager", group.external_url.clone());
    }
    if !links.is_empty() {
        fields.push(Field {
            name: "links".to_owned(),
            value: links,
            inline: false,
        });
    }
    if let Some(who) = &group.acked_by_name {
        let mut value = Text::new();
        value = match group.acked_by_id {
            Some(id) if id > 0 => value.user(id),
            _ => value.strong(who.clone()),
        };
        if let Some(at) = group.acked_at {
            value = value.plain(" ").time(at, TimeStyle::Relative);
        }
        fields.push(Field {
            name: "acked by".to_owned(),
            value,
            inline: true,
        });
    }

    if let Some(incident) = &group.incident {
        let incident = &incident.0;
        let label = crate::incident::channel_name(incident.id, &incident.slug);
        let value = match (incident.guild_id, incident.channel_id) {
            (Some(guild), Some(channel)) => Text::new().link(
                format!("#{label}"),
                format!("https://discord.com/channels/{guild}/{channel}"),
            ),
            _ => Text::new().strong(format!("#{label}")),
        };
        fields.push(Field {
            name: "incident".to_owned(),
            value: value.plain(format!(" {}", cut(&incident.title, 200))),
            inline: false,
        });
    }
    if let Some(deploy) = &group.correlated {
        fields.push(Field {
            name: "after deploy".to_owned(),
            value: super::correlation::deploy_field(&deploy.0),
            inline: false,
        });
    }
    if group.is_firing()
        && let Some(who) = &group.silenced_by_name
    {
        let mut value = match group.silenced_by_id {
            Some(id) if id > 0 => Text::new().user(id),
            _ => Text::new().strong(who.clone()),
        };
        value = match group.silenced_until {
            Some(until) => value
                .plain(" until ")
                .time(until, TimeStyle::DateTime)
                .plain(" (")
                .time(until, TimeStyle::Relative)
                .plain(")"),
            None => value.plain(" until it resolves"),
        };
        fields.push(Field {
            name: "silenced by".to_owned(),
            value,
            inline: true,
        });
    }

    let mut content = Text::new();
    let mut notify = Notify::default();
    if group.is_firing() && !mention.is_empty() {
        for id in mention {
            content = content.role(*id).plain(" ");
        }
        notify.roles = mention.to_vec();
    }
    Message {
        content,
        embeds: vec![Embed {
            title: cut(&title, 250),
            description,
            url: None,
            color: Some(color),
            fields,
            footer: Some(format!(
                "alert group {} · {}",
                group.id,
                cut(&group.group_key, 200)
            )),
        }],
        buttons: buttons(group),
        selects: selects(group),
        notify,
    }
}

/// The buttons under a group's message: Ack while it fires and nobody has it. Other features
/// extend this list (e.g. "Declare incident").
pub fn buttons(group: &AlertGroup) -> Vec<Button> {
    let mut buttons = Vec::new();
    if group.is_firing() && group.acked_by_id.is_none() {
        buttons.push(Button {
            label: "Ack".to_owned(),
            custom_id: format!("{ACK_BUTTON}{}", group.id),
            style: ButtonStyle::Primary,
        });
        if group.silence_id.is_none() {
            buttons.push(Button {
                label: "Ack + silence until resolved".to_owned(),
                custom_id: format!("{ACK_SILENCE_BUTTON}{}", group.id),
                style: ButtonStyle::Secondary,
            });
        }
    }
    if let (true, Some(deploy)) = (group.is_firing(), &group.correlated) {
        buttons.push(Button {
            label: format!("Rollback {} in {}", deploy.0.service, deploy.0.environment),
            custom_id: format!("{ROLLBACK_BUTTON}{}", group.id),
            style: ButtonStyle::Danger,
        });
    }
    if group.is_firing() && group.incident.is_none() {
        buttons.push(Button {
            label: "Declare incident".to_owned(),
            custom_id: format!("{DECLARE_INCIDENT_BUTTON}{}", group.id),
            style: ButtonStyle::Danger,
        });
    }
    if group.is_firing() && group.silence_id.is_some() {
        buttons.push(Button {
            label: "Unsilence".to_owned(),
            custom_id: format!("{UNSILENCE_BUTTON}{}", group.id),
            style: ButtonStyle::Secondary,
        });
    }
    buttons
}

/// The Silence picker, while the group fires and is not silenced.
pub fn selects(group: &AlertGroup) -> Vec<Select> {
    if !group.is_firing() || group.silence_id.is_some() {
        return Vec::new();
    }
    let mut options: Vec<SelectOption> = SILENCE_CHOICES
        .iter()
        .map(|(label, _)| SelectOption {
            label: (*label).to_owned(),
            value: (*label).to_owned(),
            description: None,
        })
        .collect();
    options.push(SelectOption {
        label: UNTIL_RESOLVED.to_owned(),
        value: UNTIL_RESOLVED.to_owned(),
        description: Some("opsbot expires the silence when the group resolves".to_owned()),
    });
    vec![Select {
        custom_id: format!("{SILENCE_PICKER}{}", group.id),
        placeholder: SILENCE_PLACEHOLDER.to_owned(),
        options,
    }]
}

/// The group id after `prefix` in a custom id.
pub fn parse_group(custom_id: &str, prefix: &str) -> Option<i64> {
    custom_id.strip_prefix(prefix)?.parse().ok()
}

/// The group id of an Ack button's custom id.
pub fn parse_ack(custom_id: &str) -> Option<i64> {
    custom_id.strip_prefix(ACK_BUTTON)?.parse().ok()
}

/// The alert lines that fit the message, first ones first.
fn fitting_lines(alerts: &[AlertInstance], common: &Labels) -> Vec<Text> {
    let mut used = 0;
    let mut lines = Vec::new();
    for alert in alerts {
        let line = alert_line(alert, common);
        let length = line.plain_text().chars().count() + 1;
        if used + length > LINES_BUDGET {
            break;
        }
        used += length;
        lines.push(line);
    }
    lines
}

/// Whether the group has more alerts than its message can list (they go to a thread).
pub fn overflows(group: &AlertGroup, alerts: &[AlertInstance]) -> bool {
    alerts.len() > 1 && fitting_lines(alerts, &group.common_labels.0).len() < alerts.len()
}

/// Every alert of the group, as messages for its thread (each well within 2000 characters).
pub fn thread_list(group: &AlertGroup, alerts: &[AlertInstance]) -> Vec<Message> {
    /// Characters of one thread message's lines (plain text; Discord's markup of times and
    /// code is no longer than the plain form).
    const CHUNK: usize = 1500;
    let mut messages = Vec::new();
    let mut text = Text::new().strong(format!("All {} alerts of this group:", alerts.len()));
    let mut used = text.plain_text().chars().count();
    for alert in alerts {
        let line = alert_line(alert, &group.common_labels.0);
        let length = line.plain_text().chars().count() + 1;
        if used + length > CHUNK {
            messages.push(Message::text(std::mem::take(&mut text)));
            used = 0;
        }
        if !text.is_empty() {
            text = text.plain("\n");
        }
        text = text.append(line);
        used += length;
    }
    messages.push(Message::text(text));
    messages
}

/// One alert: its status, the labels that differ from the group's, its summary, since when.
pub fn alert_line(alert: &AlertInstance, common: &Labels) -> Text {
    let distinct: Vec<String> = alert
        .labels
        .0
        .iter()
        .filter(|(k, v)| common.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut line = Text::new().plain(if alert.is_firing() { "🔥 " } else { "✅ " });
    let mut budget = LINE_MAX;
    if !distinct.is_empty() {
        let labels = cut(&distinct.join(" "), budget / 2);
        budget -= labels.chars().count();
        line = line.code(labels).plain(" ");
    }
    if let Some(summary) = alert.annotations.0.get("summary") {
        line = line.plain(cut(summary, budget.saturating_sub(40).max(20)));
        line = line.plain(" ");
    }
    line.plain("since ")
        .time(alert.starts_at, TimeStyle::ShortTime)
}

fn is_http(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

fn duration_words(minutes: i64) -> String {
    match minutes {
        0 => "under a minute".to_owned(),
        m if m < 60 => format!("{m} min"),
        m => format!("{} h {} min", m / 60, m % 60),
    }
}

/// `text` cut to `max` characters, with `…` when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
