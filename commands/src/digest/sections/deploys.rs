//! Deploys: finished ones by service and environment, counts by outcome, the failed and
//! rolled-back ones named, lead time from request to success.

use std::collections::BTreeMap;

use super::{DeployRow, Window, cut, human, in_window, plural};
use crate::chat::Text;

pub(super) fn section(rows: &[DeployRow], window: Window) -> (Text, Vec<Text>, bool) {
    let title = Text::new().strong("Deploys");
    let finished: Vec<&DeployRow> = rows
        .iter()
        .filter(|d| d.finished_at.is_some_and(|at| in_window(at, window)))
        .collect();
    if finished.is_empty() {
        return (title.plain(": none finished"), Vec::new(), true);
    }
    let mut by_outcome: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &finished {
        *by_outcome.entry(outcome_word(d)).or_default() += 1;
    }
    let counts: Vec<String> = by_outcome
        .iter()
        .map(|(outcome, n)| format!("{n} {outcome}"))
        .collect();
    let heading = title.plain(format!(
        ": {} ({})",
        plural(finished.len(), "finished", "finished"),
        counts.join(", ")
    ));
    let mut groups: BTreeMap<(&str, &str), Vec<&DeployRow>> = BTreeMap::new();
    for d in &finished {
        groups
            .entry((d.service.as_str(), d.environment.as_str()))
            .or_default()
            .push(d);
    }
    let mut items = Vec::new();
    for ((service, environment), deploys) in &groups {
        let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
        for d in deploys {
            *outcomes.entry(outcome_word(d)).or_default() += 1;
        }
        let counts: Vec<String> = outcomes.iter().map(|(o, n)| format!("{n} {o}")).collect();
        let mut leads: Vec<chrono::Duration> = deploys
            .iter()
            .filter(|d| d.state == "succeeded")
            .filter_map(|d| d.finished_at.map(|at| at - d.requested_at))
            .collect();
        leads.sort();
        let mut line = Text::new()
            .code(service.to_string())
            .plain(format!(" {environment}: {}", counts.join(", ")));
        if let (Some(median), Some(max)) = (leads.get(leads.len() / 2), leads.last()) {
            line = line.plain(format!(
                "; lead time median {}, max {}",
                human(*median),
                human(*max)
            ));
        }
        items.push(line);
    }
    for d in finished
        .iter()
        .filter(|d| d.state == "failed" || d.is_rollback)
    {
        let what = if d.is_rollback {
            "rolled back"
        } else {
            "failed"
        };
        let verb = if d.is_rollback && d.state == "succeeded" {
            format!("{what} to")
        } else if d.is_rollback {
            format!("rollback {} to", d.state)
        } else {
            what.to_owned()
        };
        items.push(
            Text::new()
                .code(d.service.clone())
                .plain(format!(" {} {verb} ", d.environment))
                .code(cut(&d.version))
                .plain(format!(" (#{}, by {})", d.id, cut(&d.requested_by_name))),
        );
    }
    (heading, items, false)
}

fn outcome_word(d: &DeployRow) -> &'static str {
    match (d.is_rollback, d.state.as_str()) {
        (true, _) => "rolled back",
        (_, "succeeded") => "succeeded",
        (_, "failed") => "failed",
        (_, "cancelled") => "cancelled",
        (_, "rejected") => "rejected",
        (_, "expired") => "expired",
        _ => "other",
    }
}
