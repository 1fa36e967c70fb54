//! Bar charts drawn on the server as SVG (`templates/chart.svg.html`): no chart framework and
//! no script, so the Content-Security-Policy stays strict. Colours come from CSS classes
//! (`bar-<series>`) so the stylesheet's dark mode applies; each bar has a `<title>` (the
//! tooltip and what a screen reader says), and every chart sits beside a table of its
//! numbers.

/// Drawing area, in SVG user units; the SVG scales to its container.
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 180.0;
/// Room for the y-axis labels and the x-axis dates.
const LEFT: f64 = 36.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 8.0;

/// One series of a chart: a CSS class suffix and what a person calls it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub class: &'static str,
    pub label: &'static str,
}

/// One column of a chart: its label (a day) and a value per series.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub label: String,
    pub values: Vec<i64>,
}

/// How a column's series are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One bar per column, series on top of each other (parts of a whole).
    Stacked,
    /// The series side by side (separate counts).
    Grouped,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub x: String,
    pub y: String,
    pub width: String,
    pub height: String,
    pub class: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub x: String,
    pub y: String,
    pub text: String,
}

/// A chart ready for the template.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub id: String,
    pub title: String,
    /// A sentence summing it up, for `<desc>`.
    pub summary: String,
    pub view_box: String,
    pub bars: Vec<Bar>,
    pub x_labels: Vec<Label>,
    pub y_labels: Vec<Label>,
    pub axis_y: String,
    pub axis_x1: String,
    pub axis_x2: String,
    pub legend: Vec<Series>,
}

fn n(value: f64) -> String {
    format!("{value:.1}")
}

/// A bar chart of `columns` (oldest first).
pub fn bars(id: &str, title: &str, series: &[Series], columns: &[Column], layout: Layout) -> Chart {
    let plot_w = WIDTH - LEFT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let height_of = |column: &Column| -> i64 {
        match layout {
            Layout::Stacked => column.values.iter().sum(),
            Layout::Grouped => column.values.iter().copied().max().unwrap_or(0),
        }
    };
    let max = columns.iter().map(height_of).max().unwrap_or(0).max(1);
    let slot = plot_w / columns.len().max(1) as f64;
    let gap = (slot * 0.2).min(6.0);
    let base = TOP + plot_h;
    let scale = |v: i64| v as f64 / max as f64 * plot_h;
    let mut out = Vec::new();
    for (i, column) in columns.iter().enumerate() {
        let x0 = LEFT + i as f64 * slot + gap / 2.0;
        let inner = slot - gap;
        let mut stacked = 0;
        for (s, (&value, spec)) in column.values.iter().zip(series).enumerate() {
            if value <= 0 {
                continue;
            }
            let (x, width, y, h) = match layout {
                Layout::Stacked => {
                    let y = base - scale(stacked + value);
                    stacked += value;
                    (x0, inner, y, scale(value))
                }
                Layout::Grouped => {
                    let width = inner / series.len().max(1) as f64;
                    let h = scale(value);
                    (x0 + s as f64 * width, width, base - h, h)
                }
            };
            out.push(Bar {
                x: n(x),
                y: n(y),
                width: n(width),
                height: n(h),
                class: format!("bar bar-{}", spec.class),
                title: format!("{}: {value} {}", column.label, spec.label),
            });
        }
    }
    // Dates under the first, the middle and the last column.
    let mut picks = vec![0, columns.len() / 2, columns.len().saturating_sub(1)];
    picks.dedup();
    let x_labels = picks
        .into_iter()
        .filter_map(|i| columns.get(i).map(|c| (i, c)))
        .map(|(i, c)| Label {
            x: n(LEFT + (i as f64 + 0.5) * slot),
            y: n(HEIGHT - 6.0),
            text: c.label.clone(),
        })
        .collect();
    let y_labels = [0, max]
        .into_iter()
        .map(|v| Label {
            x: n(LEFT - 6.0),
            y: n(base - scale(v) + 4.0),
            text: v.to_string(),
        })
        .collect();
    let totals: Vec<String> = series
        .iter()
        .enumerate()
        .map(|(s, spec)| {
            let sum: i64 = columns
                .iter()
                .map(|c| c.values.get(s).copied().unwrap_or(0))
                .sum();
            format!("{sum} {}", spec.label)
        })
        .collect();
    Chart {
        id: id.to_owned(),
        title: title.to_owned(),
        summary: format!(
            "{} days: {}; at most {max} a day.",
            columns.len(),
            totals.join(", ")
        ),
        view_box: format!("0 0 {WIDTH} {HEIGHT}"),
        bars: out,
        x_labels,
        y_labels,
        axis_y: n(base),
        axis_x1: n(LEFT),
        axis_x2: n(WIDTH),
        legend: series.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: [Series; 2] = [
        Series {
            class: "ok",
            label: "succeeded",
        },
        Series {
            class: "bad",
            label: "failed",
        },
    ];

    #[test]
    fn stacked_bars_rise_from_the_axis_and_say_what_they_are() {
        let columns = [
            Column {
                label: "2026-11-30".into(),
                values: vec![2, 1],
            },
            Column {
                label: "2026-12-01".into(),
                values: vec![0, 0],
            },
        ];
        let chart = bars("d", "Deploys", &TWO, &columns, Layout::Stacked);
        // The first column is the tallest (3): its two parts fill the plot's height.
        assert_eq!(chart.bars.len(), 2);
        assert_eq!(chart.bars[0].title, "2026-11-30: 2 succeeded");
        assert_eq!(chart.bars[0].y, "58.0");
        assert_eq!(chart.bars[0].height, "100.0");
        assert_eq!(chart.bars[1].y, "8.0");
        assert_eq!(chart.bars[1].class, "bar bar-bad");
        assert_eq!(
            chart.summary,
            "2 days: 2 succeeded, 1 failed; at most 3 a day."
        );
        let dates: Vec<&str> = chart.x_labels.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(dates, ["2026-11-30", "2026-12-01"]);
    }

    #[test]
    fn grouped_bars_sit_side_by_side_and_empty_charts_draw_nothing() {
        let columns = [Column {
            label: "d".into(),
            values: vec![4, 2],
        }];
        let chart = bars("r", "Refusals", &TWO, &columns, Layout::Grouped);
        assert_ne!(chart.bars[0].x, chart.bars[1].x);
        assert_eq!(chart.bars[0].height, "150.0");
        assert_eq!(chart.bars[1].height, "75.0");
        let empty = bars("e", "Nothing", &TWO, &[], Layout::Stacked);
        assert!(empty.bars.is_empty());
        assert_eq!(
            empty.summary,
            "0 days: 0 succeeded, 0 failed; at most 1 a day."
        );
    }
}
