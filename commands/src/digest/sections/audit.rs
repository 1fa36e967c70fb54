//! Audit: denials (who tried what without the right) and freeze overrides.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{DenialRow, DeployRow, Window, cut, in_window, plural};
use crate::chat::{Text, TimeStyle};

pub(super) fn section(
    denials: &[DenialRow],
    deploys: &[DeployRow],
    window: Window,
) -> (Text, Vec<Text>, bool) {
    let title = Text::new().strong("Audit");
    let denials: Vec<&DenialRow> = denials
        .iter()
        .filter(|d| in_window(d.last_at, window))
        .collect();
    let denied: i64 = denials.iter().map(|d| d.count).sum();
    let overrides: Vec<&DeployRow> = deploys
        .iter()
        .filter(|d| d.freeze_overridden && in_window(d.requested_at, window))
        .collect();
    if denials.is_empty() && overrides.is_empty() {
        return (title.plain(": no denials, no overrides"), Vec::new(), true);
    }
    let heading = title.plain(format!(
        ": {}, {}",
        plural(usize::try_from(denied).unwrap_or(0), "denial", "denials"),
        plural(overrides.len(), "freeze override", "freeze overrides")
    ));
    // (actor, command, what was missing) → (count, last at)
    let mut tried: BTreeMap<(&str, &str, String), (i64, DateTime<Utc>)> = BTreeMap::new();
    for d in &denials {
        let entry = tried
            .entry((&d.actor_name, &d.command, missing(&d.detail)))
            .or_insert((0, d.last_at));
        entry.0 += d.count;
        entry.1 = entry.1.max(d.last_at);
    }
    let mut tried: Vec<_> = tried.into_iter().collect();
    tried.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
    let mut items = Vec::new();
    for ((actor, command, why), (count, last)) in tried {
        let times = if count > 1 {
            format!(" {count}×, last at ")
        } else {
            " at ".to_owned()
        };
        items.push(
            Text::new()
                .plain(format!("{} tried ", cut(actor)))
                .code(cut(command))
                .plain(format!(" {why}{times}"))
                .time(last, TimeStyle::DateTime),
        );
    }
    for d in overrides {
        items.push(
            Text::new()
                .plain(format!("{} overrode a freeze: ", cut(&d.requested_by_name)))
                .code(d.service.clone())
                .plain(format!(" {} ", d.environment))
                .code(cut(&d.version))
                .plain(format!(" (#{})", d.id)),
        );
    }
    (heading, items, false)
}

/// "without `deploy:production`" from a denial's detail ("you need the `P` permission to …"),
/// else the detail itself.
fn missing(detail: &str) -> String {
    let permission = detail
        .strip_prefix("you need the `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(permission, _)| permission);
    match permission {
        Some(p) => format!("without {p}"),
        None => format!("({})", cut(detail)),
    }
}
