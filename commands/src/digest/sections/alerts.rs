//! Alerts: fired and resolved groups by alert name and service, the noisiest, the longest
//! firing, who acked and who silenced.

use std::collections::BTreeMap;

use super::{AlertRow, Window, cut, human, in_window};
use crate::chat::Text;

/// An alert's name and service, the section's grouping.
type AlertKey<'a> = (&'a str, &'a str);

/// How many of the noisiest alert names the section lists.
pub const NOISIEST: usize = 5;

pub(super) fn section(rows: &[AlertRow], window: Window) -> (Text, Vec<Text>, bool) {
    let title = Text::new().strong("Alerts");
    let fired: Vec<&AlertRow> = rows
        .iter()
        .filter(|a| in_window(a.first_seen_at, window))
        .collect();
    let resolved: Vec<&AlertRow> = rows
        .iter()
        .filter(|a| a.resolved_at.is_some_and(|at| in_window(at, window)))
        .collect();
    if fired.is_empty() && resolved.is_empty() {
        return (title.plain(": none fired or resolved"), Vec::new(), true);
    }
    let held = fired.iter().filter(|a| a.held).count();
    let held = if held > 0 {
        format!(" ({held} held for digests)")
    } else {
        String::new()
    };
    let heading = title.plain(format!(
        ": {} fired{held}, {} resolved",
        fired.len(),
        resolved.len()
    ));
    // (alertname, service) → (fired, resolved)
    let mut groups: BTreeMap<AlertKey<'_>, (usize, usize)> = BTreeMap::new();
    for a in &fired {
        groups.entry((&a.alertname, &a.service)).or_default().0 += 1;
    }
    for a in &resolved {
        groups.entry((&a.alertname, &a.service)).or_default().1 += 1;
    }
    let mut noisiest: Vec<(AlertKey<'_>, (usize, usize))> = groups.into_iter().collect();
    noisiest.sort_by(|a, b| (b.1.0 + b.1.1).cmp(&(a.1.0 + a.1.1)).then(a.0.cmp(&b.0)));
    let mut items = Vec::new();
    for ((alertname, service), (f, r)) in noisiest.iter().take(NOISIEST) {
        items.push(
            Text::new()
                .code(cut(alertname))
                .plain(format!(" · {}: fired {f}×, resolved {r}×", label(service))),
        );
    }
    if noisiest.len() > NOISIEST {
        items.push(Text::from(format!(
            "{} more alert names",
            noisiest.len() - NOISIEST
        )));
    }
    let longest = rows
        .iter()
        .filter(|a| a.first_seen_at <= window.end)
        .max_by_key(|a| a.resolved_at.unwrap_or(window.end) - a.first_seen_at);
    if let Some(a) = longest {
        let still = if a.resolved_at.is_none() {
            ", still firing"
        } else {
            ""
        };
        items.push(
            Text::new()
                .plain("longest firing: ")
                .code(cut(&a.alertname))
                .plain(format!(
                    " · {}, {}{still}",
                    label(&a.service),
                    human(a.resolved_at.unwrap_or(window.end) - a.first_seen_at)
                )),
        );
    }
    let mut acked: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut silenced: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for a in rows {
        if let Some(who) = a.acked_by_name.as_deref() {
            acked.entry(who).or_default().push(&a.alertname);
        }
        if let Some(who) = a.silenced_by_name.as_deref() {
            silenced.entry(who).or_default().push(&a.alertname);
        }
    }
    for (what, people) in [("acked", acked), ("silenced", silenced)] {
        for (who, mut names) in people {
            names.sort_unstable();
            names.dedup();
            items.push(Text::from(cut(&format!(
                "{what} by {who}: {}",
                names.join(", ")
            ))));
        }
    }
    (heading, items, false)
}

fn label(service: &str) -> &str {
    if service.is_empty() {
        "no service"
    } else {
        service
    }
}
