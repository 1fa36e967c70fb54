//! PNG line charts of range queries, drawn with plotters and an embedded font (DejaVu Sans,
//! see `fonts/LICENSE-DejaVu.txt`), so no system font is needed: a title, a UTC time axis, a
//! value axis in the series' unit with SI prefixes, a legend below naming each series by
//! the labels that differ, at most [`MAX_DRAWN`] series, and gaps where Prometheus has no
//! samples. Colours are chosen for Discord's dark theme; 1200×600 reads on a phone.

use std::sync::Once;

use chrono::{DateTime, Utc};
use plotters::coord::Shift;
use plotters::coord::types::RangedDateTime;
use plotters::prelude::*;

use super::prometheus::Series;
use super::table::cut;
use super::units::Unit;

/// At most this many series are drawn; the message names the rest.
pub const MAX_DRAWN: usize = 10;
/// The size of a query chart.
pub const WIDTH: u32 = 1200;
pub const HEIGHT: u32 = 600;

const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");

/// Discord's dark theme background, a little lighter, and its text colours.
const BACKGROUND: RGBColor = RGBColor(0x2b, 0x2d, 0x31);
const FOREGROUND: RGBColor = RGBColor(0xdb, 0xde, 0xe1);
const GRID: RGBColor = RGBColor(0x40, 0x43, 0x49);

/// Ten colours distinct from each other and from the background (Grafana's classic palette,
/// brightened where it was too dark on the dark theme).
pub const PALETTE: [RGBColor; MAX_DRAWN] = [
    RGBColor(0x73, 0xbf, 0x69),
    RGBColor(0xf2, 0xcc, 0x0c),
    RGBColor(0x5e, 0xc8, 0xf2),
    RGBColor(0xff, 0x78, 0x3c),
    RGBColor(0xf2, 0x49, 0x5c),
    RGBColor(0x8a, 0xb8, 0xff),
    RGBColor(0xca, 0x95, 0xe5),
    RGBColor(0xff, 0xb3, 0x57),
    RGBColor(0x96, 0xd9, 0x8d),
    RGBColor(0xff, 0xa6, 0xb0),
];

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("drawing the chart failed: {0}")]
    Draw(String),
    #[error("encoding the chart failed: {0}")]
    Encode(#[from] png::EncodingError),
}

fn draw<E: std::fmt::Debug>(error: E) -> ChartError {
    ChartError::Draw(format!("{error:?}"))
}

/// One plot: a query's (or panel's) series over a time window.
#[derive(Debug, Clone)]
pub struct Plot<'a> {
    pub title: &'a str,
    pub unit: &'a Unit,
    /// At most [`MAX_DRAWN`] are drawn (the first ones).
    pub series: &'a [Series],
    /// A name for each series (see [`super::table::series_names`]).
    pub names: &'a [String],
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Seconds between samples: a longer silence is a gap.
    pub step: i64,
}

/// Text sizes and legend room of one plot.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    title: u32,
    label: u32,
    legend_columns: usize,
    legend_rows: usize,
}

const FULL: Sizes = Sizes {
    title: 22,
    label: 15,
    legend_columns: 2,
    legend_rows: 5,
};

const SMALL: Sizes = Sizes {
    title: 17,
    label: 12,
    legend_columns: 1,
    legend_rows: 3,
};

fn register_font() -> Result<(), ChartError> {
    static ONCE: Once = Once::new();
    let mut failed = false;
    ONCE.call_once(|| {
        failed = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_err();
    });
    if failed {
        return Err(ChartError::Draw("the embedded font is invalid".to_owned()));
    }
    Ok(())
}

/// One chart, `WIDTH`×`HEIGHT`, as PNG.
pub fn render(plot: &Plot<'_>) -> Result<Vec<u8>, ChartError> {
    render_grid(std::slice::from_ref(plot), WIDTH, HEIGHT)
}

/// Small multiples: each plot in its own cell of a grid two plots wide, as one PNG.
pub fn render_panels(plots: &[Plot<'_>]) -> Result<Vec<u8>, ChartError> {
    let rows = plots.len().div_ceil(2).max(1) as u32;
    let height = (rows * 360).clamp(HEIGHT, 1800);
    render_grid(plots, WIDTH, height)
}

fn render_grid(plots: &[Plot<'_>], width: u32, height: u32) -> Result<Vec<u8>, ChartError> {
    register_font()?;
    let mut buffer = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        root.fill(&BACKGROUND).map_err(draw)?;
        if plots.len() == 1 {
            plot_on(&root, &plots[0], FULL)?;
        } else {
            let rows = plots.len().div_ceil(2);
            let cells = root.split_evenly((rows, 2));
            for (cell, plot) in cells.iter().zip(plots) {
                plot_on(cell, plot, SMALL)?;
            }
        }
        root.present().map_err(draw)?;
    }
    encode(&buffer, width, height)
}

fn encode(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, ChartError> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Fast);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(rgb)?;
        writer.finish()?;
    }
    Ok(out)
}

/// The value range to show: every finite sample, padded; a flat line gets room around it.
fn value_range(series: &[Series]) -> (f64, f64) {
    let values = series
        .iter()
        .flat_map(|s| s.samples.iter().map(|(_, v)| *v))
        .filter(|v| v.is_finite());
    let (min, max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !min.is_finite() {
        return (0.0, 1.0);
    }
    let span = max - min;
    if span == 0.0 {
        let pad = if min == 0.0 { 1.0 } else { min.abs() * 0.1 };
        return (min - pad, max + pad);
    }
    let low = if min >= 0.0 && min - span * 0.05 < 0.0 {
        0.0
    } else {
        min - span * 0.05
    };
    (low, max + span * 0.05)
}

/// The runs of a series without gaps: a silence longer than 1.5 steps, or a sample that is
/// not a number, ends a run.
pub fn segments(series: &Series, step: i64) -> Vec<Vec<(DateTime<Utc>, f64)>> {
    let limit = step.max(1) as f64 * 1.5;
    let mut runs: Vec<Vec<(DateTime<Utc>, f64)>> = Vec::new();
    let mut previous: Option<f64> = None;
    for (t, v) in &series.samples {
        let Some(at) = DateTime::from_timestamp_millis((t * 1000.0) as i64) else {
            continue;
        };
        if !v.is_finite() {
            previous = None;
            continue;
        }
        let continues = previous.is_some_and(|p| t - p <= limit);
        if !continues || runs.is_empty() {
            runs.push(Vec::new());
        }
        if let Some(run) = runs.last_mut() {
            run.push((at, *v));
        }
        previous = Some(*t);
    }
    runs
}

fn time_format(start: DateTime<Utc>, end: DateTime<Utc>) -> &'static str {
    if (end - start).num_hours() >= 24 {
        "%m-%d %H:%M"
    } else {
        "%H:%M"
    }
}

fn plot_on<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    plot: &Plot<'_>,
    sizes: Sizes,
) -> Result<(), ChartError> {
    let drawn = &plot.series[..plot.series.len().min(MAX_DRAWN)];
    let entries = drawn.len().min(sizes.legend_columns * sizes.legend_rows);
    let legend_rows = entries.div_ceil(sizes.legend_columns) as u32;
    let row_height = sizes.label + 8;
    let (_, height) = area.dim_in_pixel();
    let legend_height = legend_rows * row_height + if legend_rows > 0 { 8 } else { 0 };
    let (upper, lower) = area.split_vertically(height.saturating_sub(legend_height));
    let text = |size: u32| (FONT, size).into_font().color(&FOREGROUND);

    let (low, high) = value_range(drawn);
    let mut chart = ChartBuilder::on(&upper)
        .caption(cut(plot.title, 110), text(sizes.title))
        .margin(10)
        .x_label_area_size(sizes.label * 3)
        .y_label_area_size(sizes.label * 5)
        .build_cartesian_2d(RangedDateTime::from(plot.start..plot.end), low..high)
        .map_err(draw)?;
    let format = time_format(plot.start, plot.end);
    let x_label = |t: &DateTime<Utc>| t.format(format).to_string();
    let y_label = |v: &f64| plot.unit.format(*v);
    chart
        .configure_mesh()
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(FOREGROUND)
        .label_style(text(sizes.label))
        .x_labels(8)
        .y_labels(6)
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .x_desc("UTC")
        .axis_desc_style(text(sizes.label))
        .draw()
        .map_err(draw)?;
    for (index, series) in drawn.iter().enumerate() {
        let colour = PALETTE[index % PALETTE.len()];
        for run in segments(series, plot.step) {
            if run.len() == 1 {
                chart
                    .draw_series(std::iter::once(Circle::new(run[0], 2, colour.filled())))
                    .map_err(draw)?;
            } else {
                chart
                    .draw_series(LineSeries::new(run, colour.stroke_width(2)))
                    .map_err(draw)?;
            }
        }
    }

    let (width, _) = lower.dim_in_pixel();
    let column_width = width as i32 / sizes.legend_columns as i32;
    let max_chars = (column_width as usize / (sizes.label as usize * 6 / 10)).saturating_sub(6);
    for (index, name) in plot.names.iter().take(entries).enumerate() {
        let colour = PALETTE[index % PALETTE.len()];
        let column = (index / legend_rows.max(1) as usize) as i32;
        let row = (index % legend_rows.max(1) as usize) as i32;
        let x = 20 + column * column_width;
        let y = 4 + row * row_height as i32 + row_height as i32 / 2;
        lower
            .draw(&PathElement::new(
                vec![(x, y), (x + 22, y)],
                colour.stroke_width(3),
            ))
            .map_err(draw)?;
        lower
            .draw(&Text::new(
                cut(name, max_chars.max(10)),
                (x + 30, y - sizes.label as i32 / 2 + 1),
                text(sizes.label),
            ))
            .map_err(draw)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(samples: Vec<(f64, f64)>) -> Series {
        Series {
            labels: Default::default(),
            samples,
        }
    }

    #[test]
    fn silences_and_nan_split_a_series() {
        let s = series(vec![
            (0.0, 1.0),
            (15.0, 2.0),
            (30.0, f64::NAN),
            (45.0, 3.0),
            (60.0, 3.0),
            (120.0, 4.0),
        ]);
        let runs: Vec<usize> = segments(&s, 15).iter().map(Vec::len).collect();
        assert_eq!(runs, vec![2, 2, 1]);
    }

    #[test]
    fn flat_and_empty_series_get_a_range() {
        assert_eq!(value_range(&[series(vec![(0.0, 5.0)])]), (4.5, 5.5));
        assert_eq!(value_range(&[]), (0.0, 1.0));
        assert_eq!(
            value_range(&[series(vec![(0.0, 1.0), (1.0, 11.0)])]),
            (0.5, 11.5)
        );
    }

    #[test]
    fn a_chart_is_a_png_of_the_promised_size() {
        let start = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let end = start + chrono::Duration::hours(1);
        let all: Vec<Series> = (0..3)
            .map(|i| {
                series(
                    (0..240)
                        .map(|t| {
                            (
                                1_800_000_000.0 + t as f64 * 15.0,
                                if t % 60 > 50 && i == 1 {
                                    f64::NAN
                                } else {
                                    ((t * i) as f64 + 100.0).sqrt() * 0.01
                                },
                            )
                        })
                        .collect(),
                )
            })
            .collect();
        let names = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let png = render(&Plot {
            title: "test",
            unit: &Unit::Seconds,
            series: &all,
            names: &names,
            start,
            end,
            step: 15,
        })
        .expect("png");
        assert_eq!(&png[1..4], b"PNG");
        assert!(png.len() < 512 * 1024, "{} bytes", png.len());
    }
}
