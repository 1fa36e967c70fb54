//! The overview's arithmetic, apart from its SQL: a figure beside the previous window's, and
//! which way is better for each key.

use serde::Serialize;

use super::Keys;

/// Whether a figure moved the good way since the previous window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trend {
    Better,
    Worse,
    Same,
    /// One of the two windows has no value (no deploys, no incidents).
    Unknown,
}

impl Trend {
    pub fn as_str(self) -> &'static str {
        match self {
            Trend::Better => "better",
            Trend::Worse => "worse",
            Trend::Same => "same",
            Trend::Unknown => "unknown",
        }
    }
}

/// One key in this window and the one before, `None` where it has no value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Figure {
    pub current: Option<f64>,
    pub previous: Option<f64>,
    /// `current - previous`, when both are known.
    pub change: Option<f64>,
    pub trend: Trend,
}

/// Which direction of a key is good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Good {
    Higher,
    Lower,
}

/// Rounded to 3 decimals, so that JSON shows `0.333`, not `0.33333333333333331`.
fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

impl Figure {
    pub fn new(current: Option<f64>, previous: Option<f64>, good: Good) -> Figure {
        let current = current.filter(|v| v.is_finite()).map(round3);
        let previous = previous.filter(|v| v.is_finite()).map(round3);
        let change = current.zip(previous).map(|(c, p)| round3(c - p));
        let trend = match change {
            None => Trend::Unknown,
            Some(d) if d.abs() < 0.0005 => Trend::Same,
            Some(d) if (d > 0.0) == (good == Good::Higher) => Trend::Better,
            Some(_) => Trend::Worse,
        };
        Figure {
            current,
            previous,
            change,
            trend,
        }
    }
}

/// What the SQL counts for one service (or all) in one window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WindowStats {
    pub changes: i64,
    pub succeeded: i64,
    pub failed_changes: i64,
    pub lead_time_secs: Option<f64>,
    pub restored: i64,
    pub restore_secs: Option<f64>,
}

impl WindowStats {
    fn frequency(&self, days: u32) -> Option<f64> {
        Some(self.succeeded as f64 / f64::from(days.max(1)))
    }

    fn failure_rate(&self) -> Option<f64> {
        (self.changes > 0).then(|| self.failed_changes as f64 / self.changes as f64)
    }
}

/// The keys of `current` beside `previous`, both windows `days` long.
pub fn keys(current: &WindowStats, previous: &WindowStats, days: u32) -> Keys {
    Keys {
        changes: current.changes,
        succeeded: current.succeeded,
        failed_changes: current.failed_changes,
        restored: current.restored,
        deployment_frequency: Figure::new(
            current.frequency(days),
            previous.frequency(days),
            Good::Higher,
        ),
        lead_time_secs: Figure::new(current.lead_time_secs, previous.lead_time_secs, Good::Lower),
        change_failure_rate: Figure::new(
            current.failure_rate(),
            previous.failure_rate(),
            Good::Lower,
        ),
        time_to_restore_secs: Figure::new(current.restore_secs, previous.restore_secs, Good::Lower),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trends_follow_the_good_direction() {
        let more = Figure::new(Some(2.0), Some(1.0), Good::Higher);
        assert_eq!((more.trend, more.change), (Trend::Better, Some(1.0)));
        let slower = Figure::new(Some(120.0), Some(60.0), Good::Lower);
        assert_eq!(slower.trend, Trend::Worse);
        let faster = Figure::new(Some(30.0), Some(60.0), Good::Lower);
        assert_eq!(faster.trend, Trend::Better);
        assert_eq!(
            Figure::new(Some(0.5), Some(0.5), Good::Lower).trend,
            Trend::Same
        );
        let unknown = Figure::new(Some(0.5), None, Good::Lower);
        assert_eq!((unknown.trend, unknown.change), (Trend::Unknown, None));
        assert_eq!(
            Figure::new(Some(1.0 / 3.0), None, Good::Lower).current,
            Some(0.333)
        );
    }

    #[test]
    fn no_changes_means_no_failure_rate_but_a_zero_frequency() {
        let k = keys(&WindowStats::default(), &WindowStats::default(), 7);
        assert_eq!(k.change_failure_rate.current, None);
        assert_eq!(k.deployment_frequency.current, Some(0.0));
        assert_eq!(k.deployment_frequency.trend, Trend::Same);
    }
}
