//! `range` and `step` as people type them (`15m`, `6h`, `2d`; `30s`), checked against
//! `[prometheus] max_range` and Prometheus's 11,000 points per series.

use std::time::Duration;

use super::prometheus::MAX_POINTS;
use crate::error::CommandError;

/// About this many points per series when no `step` is given.
pub const TARGET_POINTS: i64 = 250;
/// The shortest range worth a chart.
const MIN_RANGE: Duration = Duration::from_secs(60);
/// Steps a default is rounded up to, in seconds: ticks and samples line up with them.
const NICE_STEPS: &[i64] = &[
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
];

fn parse(what: &str, text: &str, example: &str) -> Result<Duration, CommandError> {
    let trimmed = text.trim();
    humantime::parse_duration(trimmed).map_err(|_| {
        CommandError::Invalid(format!(
            "`{}` is not a {what}; write a number and a unit, e.g. {example}",
            super::table::cut(trimmed, 50)
        ))
    })
}

/// The window a `range` covers, in whole seconds.
pub fn parse_range(text: &str, max: Duration) -> Result<i64, CommandError> {
    let range = parse("range", text, "`15m`, `6h` or `2d`")?;
    if range < MIN_RANGE {
        return Err(CommandError::Invalid(format!(
            "a range of `{}` is too short to chart; ask for at least 1m, or leave range out for the current values",
            text.trim()
        )));
    }
    if range > max {
        return Err(CommandError::Invalid(format!(
            "a range of `{}` is longer than the {} opsbot allows ([prometheus] max_range)",
            text.trim(),
            humantime::format_duration(max)
        )));
    }
    Ok(range.as_secs() as i64)
}

/// The step for `range` seconds: the one given (at least 1s, at most 11,000 points), or a
/// round one giving about [`TARGET_POINTS`] points.
pub fn step_for(range: i64, given: Option<&str>) -> Result<i64, CommandError> {
    match given {
        Some(text) => {
            let step = parse("step", text, "`15s` or `1m`")?.as_secs() as i64;
            if step < 1 {
                return Err(CommandError::Invalid(
                    "the step must be at least 1s".to_owned(),
                ));
            }
            if range / step > MAX_POINTS {
                return Err(CommandError::Invalid(format!(
                    "a step of `{}` gives {} points per series, more than Prometheus's {MAX_POINTS}; use a longer step or leave it out",
                    text.trim(),
                    range / step
                )));
            }
            Ok(step)
        }
        None => {
            let raw = (range + TARGET_POINTS - 1) / TARGET_POINTS;
            Ok(NICE_STEPS
                .iter()
                .copied()
                .find(|s| *s >= raw)
                .unwrap_or(raw))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY30: Duration = Duration::from_secs(30 * 86400);

    #[test]
    fn ranges_read_as_typed_and_are_bounded() {
        assert_eq!(parse_range("15m", DAY30).ok(), Some(900));
        assert_eq!(parse_range("2d", DAY30).ok(), Some(172_800));
        assert!(parse_range("10s", DAY30).is_err());
        assert!(parse_range("60d", DAY30).is_err());
        assert!(parse_range("soon", DAY30).is_err_and(|e| e.to_string().contains("not a range")));
    }

    #[test]
    fn steps_default_to_about_250_round_points() {
        assert_eq!(step_for(3600, None).ok(), Some(15));
        assert_eq!(step_for(6 * 3600, None).ok(), Some(120));
        assert_eq!(step_for(900, Some("5s")).ok(), Some(5));
        assert!(step_for(86400 * 2, Some("1s")).is_err());
    }
}
