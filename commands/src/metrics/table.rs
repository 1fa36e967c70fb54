//! The answer to an instant query: a compact table of the top series by value, with the
//! labels that tell them apart and values in their unit. Also names series for legends.

use std::collections::BTreeSet;

use super::prometheus::Series;
use super::units::Unit;

/// Rows shown in a table; the rest are counted.
pub const TABLE_ROWS: usize = 15;
/// Longest label value shown (longer ones are cut with `…`).
const CELL_MAX: usize = 40;
/// The table's budget in characters, well inside a message's 2000.
const TABLE_MAX: usize = 1500;

/// The labels whose values differ between `series` (all of them for a single series, minus
/// `__name__` unless the names differ).
pub fn distinguishing_labels(series: &[Series]) -> Vec<String> {
    let keys: BTreeSet<&String> = series.iter().flat_map(|s| s.labels.keys()).collect();
    let differing: Vec<String> = keys
        .into_iter()
        .filter(|key| {
            let first = series.first().and_then(|s| s.labels.get(*key));
            series.iter().any(|s| s.labels.get(*key) != first)
        })
        .cloned()
        .collect();
    if series.len() == 1 {
        return series[0]
            .labels
            .keys()
            .filter(|k| k.as_str() != "__name__")
            .cloned()
            .collect();
    }
    differing
}

/// A short name for each series: `job=api, instance=a:9090` over the labels that differ
/// (`{}` when none do).
pub fn series_names(series: &[Series]) -> Vec<String> {
    let labels = distinguishing_labels(series);
    series
        .iter()
        .map(|s| {
            let parts: Vec<String> = labels
                .iter()
                .filter_map(|k| s.labels.get(k).map(|v| format!("{k}={}", cut(v, CELL_MAX))))
                .collect();
            if parts.is_empty() {
                s.metric_name().unwrap_or("{}").to_owned()
            } else {
                parts.join(", ")
            }
        })
        .collect()
}

/// Series sorted by their last value, largest first (NaN last).
pub fn by_value_desc(series: &mut [Series]) {
    series.sort_by(|a, b| {
        let (a, b) = (a.last_value(), b.last_value());
        b.partial_cmp(&a)
            .unwrap_or_else(|| a.is_nan().cmp(&b.is_nan()))
    });
}

/// The table of an instant query's series (sorted by value, largest first): at most
/// [`TABLE_ROWS`] rows and [`TABLE_MAX`] characters; the second value is how many rows
/// were left out.
pub fn table(series: &[Series], unit: &Unit) -> (String, usize) {
    let mut sorted = series.to_vec();
    by_value_desc(&mut sorted);
    let labels = distinguishing_labels(&sorted);
    let mut header = vec!["value".to_owned()];
    header.extend(labels.iter().cloned());
    let mut rows: Vec<Vec<String>> = sorted
        .iter()
        .take(TABLE_ROWS)
        .map(|s| {
            let mut row = vec![unit.format(s.last_value())];
            row.extend(
                labels
                    .iter()
                    .map(|k| cut(s.labels.get(k).map_or("", String::as_str), CELL_MAX)),
            );
            row
        })
        .collect();
    loop {
        let text = layout(&header, &rows);
        if text.chars().count() <= TABLE_MAX || rows.len() <= 1 {
            let shown = rows.len();
            return (text, sorted.len() - shown);
        }
        rows.pop();
    }
}

fn layout(header: &[String], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            std::iter::once(&header[i])
                .chain(rows.iter().map(|r| &r[i]))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 0 {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(header)];
    out.extend(rows.iter().map(|r| line(r)));
    out.join("\n")
}

/// `text` cut to `max` characters, with `…` when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: &[(&str, &str)], value: f64) -> Series {
        Series {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            samples: vec![(0.0, value)],
        }
    }

    #[test]
    fn the_table_shows_labels_that_differ_largest_first() {
        let all = vec![
            series(&[("__name__", "up"), ("job", "a"), ("env", "prod")], 0.5),
            series(&[("__name__", "up"), ("job", "b"), ("env", "prod")], 2.0),
            series(
                &[("__name__", "up"), ("job", "c"), ("env", "prod")],
                f64::NAN,
            ),
        ];
        let (text, hidden) = table(&all, &Unit::Seconds);
        assert_eq!(hidden, 0);
        assert_eq!(text, " value  job\n   2 s  b\n500 ms  a\n   NaN  c");
    }

    #[test]
    fn many_series_are_counted_not_shown() {
        let all: Vec<Series> = (0..40)
            .map(|i| series(&[("i", &i.to_string())], i as f64))
            .collect();
        let (text, hidden) = table(&all, &Unit::None);
        assert_eq!(hidden, 40 - TABLE_ROWS);
        assert!(text.lines().nth(1).is_some_and(|l| l.contains("39")));
    }
}
