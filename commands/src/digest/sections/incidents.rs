//! Incidents: opened, resolved (with durations), still open (with commander and age).

use super::{IncidentRow, Window, cut, human, in_window};
use crate::chat::{Text, TimeStyle};

pub(super) fn section(rows: &[IncidentRow], window: Window) -> (Text, Vec<Text>, bool) {
    let title = Text::new().strong("Incidents");
    let opened: Vec<&IncidentRow> = rows
        .iter()
        .filter(|i| in_window(i.started_at, window))
        .collect();
    let resolved: Vec<&IncidentRow> = rows
        .iter()
        .filter(|i| i.status == "resolved" && i.resolved_at.is_some_and(|at| in_window(at, window)))
        .collect();
    let open: Vec<&IncidentRow> = rows
        .iter()
        .filter(|i| i.status != "resolved" && i.started_at <= window.end)
        .collect();
    if opened.is_empty() && resolved.is_empty() && open.is_empty() {
        return (title.plain(": none"), Vec::new(), true);
    }
    let heading = title.plain(format!(
        ": {} opened, {} resolved, {} still open",
        opened.len(),
        resolved.len(),
        open.len()
    ));
    let name = |i: &IncidentRow| {
        Text::new().strong(format!("#{}", i.id)).plain(format!(
            " {} ({})",
            cut(&i.title),
            i.severity
        ))
    };
    let mut items = Vec::new();
    for i in &opened {
        items.push(
            Text::new()
                .plain("opened ")
                .append(name(i))
                .plain(" at ")
                .time(i.started_at, TimeStyle::DateTime),
        );
    }
    for i in &resolved {
        let took = i
            .resolved_at
            .map(|at| at - i.started_at)
            .unwrap_or_default();
        items.push(
            Text::new()
                .plain("resolved ")
                .append(name(i))
                .plain(format!(" after {}", human(took))),
        );
    }
    for i in &open {
        let commander = i.commander.as_deref().map_or_else(
            || "no commander".to_owned(),
            |c| format!("commander {}", cut(c)),
        );
        items.push(
            Text::new()
                .plain("still open ")
                .append(name(i))
                .plain(format!(
                    ": {}, {commander}, open {}",
                    i.status,
                    human(window.end - i.started_at)
                )),
        );
    }
    (heading, items, false)
}
