//! Freeze windows: times in which deploys to an environment are refused unless overridden.
//!
//! Configured per environment as text, in one of two forms:
//!
//! ```text
//! freeze = [
//!     "Fri 16:00 - Mon 08:00 America/Los_Angeles",          # every week, may wrap over Sunday
//!     "2026-12-24 00:00 - 2026-12-27 08:00 Europe/Berlin",  # once
//! ]
//! ```
//!
//! Times are wall-clock times in the window's zone, so "Fri 16:00" is 16:00 in Los Angeles in
//! winter and in summer alike. A wall-clock time that a DST change skips begins at the change
//! (02:30 on the spring-forward day starts at 03:00); one that happens twice is its first
//! occurrence.

use std::fmt;

use chrono::{
    DateTime, Datelike as _, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta,
    TimeZone as _, Utc, Weekday,
};
use chrono_tz::Tz;

/// The two accepted forms, ending every parse error.
const FORMS: &str = "write \"Fri 16:00 - Mon 08:00 America/Los_Angeles\" (every week) or \"2026-12-24 00:00 - 2026-12-27 08:00 Europe/Berlin\" (once)";

/// How far past a skipped wall-clock time the DST change may lie. Real changes skip at most
/// two hours; a day leaves room for any zone's history.
const GAP_SEARCH_MINUTES: u32 = 24 * 60;

/// A window in which deploys to an environment are refused unless overridden.
#[derive(Debug, Clone, PartialEq)]
pub struct FreezeWindow {
    zone: Tz,
    span: Span,
}

#[derive(Debug, Clone, PartialEq)]
enum Span {
    /// Every week from `start` to the next `end` (wrapping over Sunday when `end` comes first).
    Weekly { start: WeekTime, end: WeekTime },
    /// Once, from `start` to `end`, both wall-clock times in the zone.
    Once {
        start: NaiveDateTime,
        end: NaiveDateTime,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct WeekTime {
    day: Weekday,
    time: NaiveTime,
}

impl FreezeWindow {
    /// Parses "Fri 16:00 - Mon 08:00 America/Los_Angeles" (weekly, may wrap over the weekend;
    /// days Mon..Sun, case-insensitive, 3-letter or full names) and
    /// "2026-12-24 00:00 - 2026-12-27 08:00 Europe/Berlin" (one-off). The zone is an IANA name
    /// (or UTC). Errors say what is wrong and show the two accepted forms.
    pub fn parse(text: &str) -> Result<FreezeWindow, String> {
        parse(text).map_err(|problem| format!("{problem}; {FORMS}"))
    }

    /// Whether deploys are frozen at `at`: from the start (inclusive) to the end (exclusive),
    /// evaluated in the window's zone.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.ends_after(at).is_some()
    }

    /// When the window containing `at` ends (None if `at` is outside).
    pub fn ends_after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.occurrences_around(at)
            .into_iter()
            .find(|(start, end)| *start <= at && at < *end)
            .map(|(_, end)| end)
    }

    /// The text as configured, normalised, e.g. "Fri 16:00 - Mon 08:00 America/Los_Angeles".
    pub fn describe(&self) -> String {
        let zone = self.zone.name();
        match &self.span {
            Span::Weekly { start, end } => format!(
                "{} {} - {} {} {zone}",
                start.day,
                start.time.format("%H:%M"),
                end.day,
                end.time.format("%H:%M"),
            ),
            Span::Once { start, end } => format!(
                "{} - {} {zone}",
                start.format("%Y-%m-%d %H:%M"),
                end.format("%Y-%m-%d %H:%M"),
            ),
        }
    }

    /// The occurrences that could contain `at`, as instants `(start, end)`.
    fn occurrences_around(&self, at: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        match &self.span {
            Span::Once { start, end } => {
                vec![(resolve(self.zone, *start), resolve(self.zone, *end))]
            }
            Span::Weekly { start, end } => {
                let today = at.with_timezone(&self.zone).date_naive();
                let monday = today - Days::new(u64::from(today.weekday().num_days_from_monday()));
                // An occurrence lasts under a week, so one containing `at` starts this week or
                // the last; next week is included for a zone whose DST change moves midnight.
                [-7, 0, 7]
                    .into_iter()
                    .filter_map(|offset| {
                        let week = monday.checked_add_signed(TimeDelta::days(offset))?;
                        let (start_at, end_at) = weekly_occurrence(week, *start, *end)?;
                        Some((resolve(self.zone, start_at), resolve(self.zone, end_at)))
                    })
                    .collect()
            }
        }
    }
}

impl fmt::Display for FreezeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The wall-clock start and end of the occurrence starting in the week of `monday`.
fn weekly_occurrence(
    monday: NaiveDate,
    start: WeekTime,
    end: WeekTime,
) -> Option<(NaiveDateTime, NaiveDateTime)> {
    let start_day = monday + Days::new(u64::from(start.day.num_days_from_monday()));
    let mut days = (7 + end.day.num_days_from_monday() - start.day.num_days_from_monday()) % 7;
    if days == 0 && end.time <= start.time {
        days = 7;
    }
    let end_day = start_day.checked_add_days(Days::new(u64::from(days)))?;
    Some((start_day.and_time(start.time), end_day.and_time(end.time)))
}

/// The instant a wall-clock time in `zone` first shows; a time skipped by a DST change
/// resolves to the change itself, when the clock first reads later than it.
fn resolve(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => at.to_utc(),
        LocalResult::None => (1..=GAP_SEARCH_MINUTES)
            .find_map(|minutes| {
                let later = local + TimeDelta::minutes(i64::from(minutes));
                zone.from_local_datetime(&later).earliest()
            })
            .map_or_else(|| local.and_utc(), |at| at.to_utc()),
    }
}

fn parse(text: &str) -> Result<FreezeWindow, String> {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    if tokens.is_empty() {
        return Err("the freeze window is empty".to_owned());
    }
    let Some(dash) = tokens.iter().position(|token| *token == "-") else {
        return Err(format!(
            "`{}` has no ` - ` between the start and the end",
            text.trim()
        ));
    };
    let (start, rest) = tokens.split_at(dash);
    let rest = &rest[1..];
    if start.len() != 2 {
        return Err(format!(
            "the start `{}` should be a day or date and a time",
            start.join(" ")
        ));
    }
    let (end, zone) = match rest {
        [day, time, zone] => ([*day, *time], *zone),
        [_, _] => return Err("no time zone after the end".to_owned()),
        _ => {
            return Err(format!(
                "`{}` should be the end (a day or date and a time) and a time zone",
                rest.join(" ")
            ));
        }
    };
    let zone = parse_zone(zone)?;
    let span = match (
        parse_point(start[0], start[1])?,
        parse_point(end[0], end[1])?,
    ) {
        (Point::Week(start), Point::Week(end)) => {
            if start == end {
                return Err(format!(
                    "starts and ends at {} {}, so it is empty",
                    start.day,
                    start.time.format("%H:%M")
                ));
            }
            Span::Weekly { start, end }
        }
        (Point::Date(start), Point::Date(end)) => {
            if resolve(zone, end) <= resolve(zone, start) {
                let what = if start == end {
                    "starts and ends at the same time, so it is empty"
                } else {
                    "ends before it starts"
                };
                return Err(what.to_owned());
            }
            Span::Once { start, end }
        }
        _ => return Err("mixes a day of the week with a date".to_owned()),
    };
    Ok(FreezeWindow { zone, span })
}

enum Point {
    Week(WeekTime),
    Date(NaiveDateTime),
}

fn parse_point(day: &str, time: &str) -> Result<Point, String> {
    let time = parse_time(time)?;
    if day.starts_with(|c: char| c.is_ascii_digit()) {
        let date = NaiveDate::parse_from_str(day, "%Y-%m-%d")
            .map_err(|_| format!("`{day}` is not a date (YYYY-MM-DD)"))?;
        return Ok(Point::Date(date.and_time(time)));
    }
    Ok(Point::Week(WeekTime {
        day: parse_day(day)?,
        time,
    }))
}

fn parse_day(text: &str) -> Result<Weekday, String> {
    const DAYS: [(Weekday, &str); 7] = [
        (Weekday::Mon, "monday"),
        (Weekday::Tue, "tuesday"),
        (Weekday::Wed, "wednesday"),
        (Weekday::Thu, "thursday"),
        (Weekday::Fri, "friday"),
        (Weekday::Sat, "saturday"),
        (Weekday::Sun, "sunday"),
    ];
    let lower = text.to_lowercase();
    DAYS.iter()
        .find(|(_, name)| lower == *name || lower == name[..3])
        .map(|(day, _)| *day)
        .ok_or_else(|| {
            format!("`{text}` is not a day of the week (Mon, Tue, Wed, Thu, Fri, Sat, Sun)")
        })
}

/// `HH:MM`, 24-hour, `00:00` to `23:59`.
fn parse_time(text: &str) -> Result<NaiveTime, String> {
    let bad = || format!("`{text}` is not a time (HH:MM, 00:00 to 23:59)");
    let (hour, minute) = text.split_once(':').ok_or_else(bad)?;
    let digits = |s: &str, max_len: usize| {
        !s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(hour, 2) || minute.len() != 2 || !digits(minute, 2) {
        return Err(bad());
    }
    let (hour, minute) = (
        hour.parse().map_err(|_| bad())?,
        minute.parse().map_err(|_| bad())?,
    );
    NaiveTime::from_hms_opt(hour, minute, 0).ok_or_else(bad)
}

/// An IANA zone name, matched without regard to case, or `UTC`.
fn parse_zone(text: &str) -> Result<Tz, String> {
    if let Ok(zone) = text.parse::<Tz>() {
        return Ok(zone);
    }
    chrono_tz::TZ_VARIANTS
        .iter()
        .find(|zone| zone.name().eq_ignore_ascii_case(text))
        .copied()
        .ok_or_else(|| {
            format!("`{text}` is not a time zone; use an IANA name such as Europe/Berlin, or UTC")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(text: &str) -> FreezeWindow {
        FreezeWindow::parse(text).expect("valid window")
    }

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().expect("valid RFC 3339 instant")
    }

    fn error(text: &str) -> String {
        FreezeWindow::parse(text).expect_err("invalid window")
    }

    #[test]
    fn weekly_window_inside_and_outside() {
        let w = window("Tue 09:00 - Tue 17:00 UTC");
        // 2026-03-03 is a Tuesday.
        assert!(!w.contains(utc("2026-03-03T08:59:59Z")));
        assert!(
            w.contains(utc("2026-03-03T09:00:00Z")),
            "start is inclusive"
        );
        assert!(w.contains(utc("2026-03-03T16:59:59Z")));
        assert!(!w.contains(utc("2026-03-03T17:00:00Z")), "end is exclusive");
        assert!(!w.contains(utc("2026-03-04T12:00:00Z")));
        assert_eq!(
            w.ends_after(utc("2026-03-03T10:00:00Z")),
            Some(utc("2026-03-03T17:00:00Z"))
        );
        assert_eq!(w.ends_after(utc("2026-03-04T10:00:00Z")), None);
    }

    #[test]
    fn weekly_window_wraps_over_the_weekend() {
        // In February Los Angeles is UTC-8: Fri 16:00 is Sat 00:00 UTC.
        let w = window("fri 16:00 - MONDAY 08:00 America/Los_Angeles");
        assert_eq!(w.describe(), "Fri 16:00 - Mon 08:00 America/Los_Angeles");
        assert!(!w.contains(utc("2026-02-06T23:59:59Z")), "Fri 15:59 local");
        assert!(w.contains(utc("2026-02-07T00:00:00Z")), "Fri 16:00 local");
        assert!(w.contains(utc("2026-02-08T12:00:00Z")), "Sunday");
        assert!(w.contains(utc("2026-02-09T15:59:00Z")), "Mon 07:59 local");
        assert!(!w.contains(utc("2026-02-09T16:00:00Z")), "Mon 08:00 local");
        assert!(!w.contains(utc("2026-02-11T12:00:00Z")), "Wednesday");
        assert_eq!(
            w.ends_after(utc("2026-02-08T12:00:00Z")),
            Some(utc("2026-02-09T16:00:00Z"))
        );
        // In summer (UTC-7) the same wall-clock window is an hour earlier in UTC.
        assert!(w.contains(utc("2026-07-10T23:00:00Z")), "Fri 16:00 PDT");
        assert!(!w.contains(utc("2026-07-10T22:59:00Z")));
    }

    #[test]
    fn a_window_starting_and_ending_on_the_same_day_before_its_start_lasts_almost_a_week() {
        let w = window("Mon 10:00 - Mon 08:00 UTC");
        // 2026-03-02 is a Monday.
        assert!(!w.contains(utc("2026-03-02T09:00:00Z")));
        assert!(w.contains(utc("2026-03-02T10:00:00Z")));
        assert!(w.contains(utc("2026-03-02T07:00:00Z")), "still last week's");
        assert_eq!(
            w.ends_after(utc("2026-03-02T11:00:00Z")),
            Some(utc("2026-03-09T08:00:00Z"))
        );
    }

    #[test]
    fn dst_spring_forward_in_los_angeles() {
        // 2026-03-08 (Sunday): 02:00 PST jumps to 03:00 PDT, at 10:00 UTC.
        let w = window("Sun 01:00 - Sun 04:00 America/Los_Angeles");
        assert!(!w.contains(utc("2026-03-08T08:59:59Z")), "00:59 PST");
        assert!(w.contains(utc("2026-03-08T09:00:00Z")), "01:00 PST");
        assert!(w.contains(utc("2026-03-08T10:30:00Z")), "03:30 PDT");
        assert!(!w.contains(utc("2026-03-08T11:00:00Z")), "04:00 PDT");
        assert_eq!(
            w.ends_after(utc("2026-03-08T09:30:00Z")),
            Some(utc("2026-03-08T11:00:00Z")),
            "two hours of real time on this day"
        );

        // 02:30 does not exist that day: the window starts when the clock jumps past it.
        let w = window("Sun 02:30 - Sun 05:00 America/Los_Angeles");
        assert!(!w.contains(utc("2026-03-08T09:59:59Z")), "01:59:59 PST");
        assert!(w.contains(utc("2026-03-08T10:00:00Z")), "03:00 PDT");
        // A normal Sunday: 02:30 PST is 10:30 UTC.
        assert!(!w.contains(utc("2026-03-01T10:29:00Z")));
        assert!(w.contains(utc("2026-03-01T10:30:00Z")));
    }

    #[test]
    fn dst_fall_back_in_los_angeles() {
        // 2026-11-01 (Sunday): 02:00 PDT falls back to 01:00 PST, at 09:00 UTC.
        let w = window("Sun 01:00 - Sun 04:00 America/Los_Angeles");
        assert!(!w.contains(utc("2026-11-01T07:59:59Z")), "00:59 PDT");
        assert!(
            w.contains(utc("2026-11-01T08:00:00Z")),
            "the first 01:00 (PDT)"
        );
        assert!(
            w.contains(utc("2026-11-01T09:30:00Z")),
            "the second 01:30 (PST)"
        );
        assert!(w.contains(utc("2026-11-01T11:59:59Z")), "03:59:59 PST");
        assert!(!w.contains(utc("2026-11-01T12:00:00Z")), "04:00 PST");
        assert_eq!(
            w.ends_after(utc("2026-11-01T08:00:00Z")),
            Some(utc("2026-11-01T12:00:00Z")),
            "four hours of real time on this day"
        );

        // Ending at a time that happens twice: the first time the clock shows it.
        let w = window("Sat 22:00 - Sun 01:30 America/Los_Angeles");
        assert_eq!(
            w.ends_after(utc("2026-11-01T06:00:00Z")),
            Some(utc("2026-11-01T08:30:00Z"))
        );
        assert!(
            !w.contains(utc("2026-11-01T09:10:00Z")),
            "01:10 PST, after the end"
        );
    }

    #[test]
    fn one_off_windows() {
        let w = window("2026-12-24 00:00 - 2026-12-27 08:00 Europe/Berlin");
        assert_eq!(
            w.describe(),
            "2026-12-24 00:00 - 2026-12-27 08:00 Europe/Berlin"
        );
        // Berlin is UTC+1 in December.
        assert!(!w.contains(utc("2026-12-23T22:59:59Z")));
        assert!(w.contains(utc("2026-12-23T23:00:00Z")));
        assert!(w.contains(utc("2026-12-25T12:00:00Z")));
        assert!(!w.contains(utc("2026-12-27T07:00:00Z")));
        assert!(!w.contains(utc("2027-12-25T12:00:00Z")), "once, not yearly");
        assert_eq!(
            w.ends_after(utc("2026-12-25T12:00:00Z")),
            Some(utc("2026-12-27T07:00:00Z"))
        );
    }

    #[test]
    fn zones_are_matched_without_regard_to_case() {
        assert_eq!(
            window("sat 00:00 - sun 00:00 europe/berlin").describe(),
            "Sat 00:00 - Sun 00:00 Europe/Berlin"
        );
        assert_eq!(
            window("Sat 0:00 - Sun 23:59 utc").describe(),
            "Sat 00:00 - Sun 23:59 UTC"
        );
        assert_eq!(
            window("Sat 00:00 - Sun 00:00 UTC").to_string(),
            "Sat 00:00 - Sun 00:00 UTC"
        );
    }

    #[test]
    fn empty_windows_are_refused() {
        insta::assert_snapshot!(error("Fri 16:00 - friday 16:00 UTC"), @r#"starts and ends at Fri 16:00, so it is empty; write "Fri 16:00 - Mon 08:00 America/Los_Angeles" (every week) or "2026-12-24 00:00 - 2026-12-27 08:00 Europe/Berlin" (once)"#);
        assert!(
            error("2026-12-24 00:00 - 2026-12-24 00:00 UTC")
                .starts_with("starts and ends at the same time, so it is empty;")
        );
        assert!(
            error("2026-12-24 00:00 - 2026-12-23 00:00 UTC").starts_with("ends before it starts;")
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let errors = [
            "Fry 16:00 - Mon 08:00 UTC",
            "Fri 25:00 - Mon 08:00 UTC",
            "Fri 16:00 - Mon 8 UTC",
            "Fri 16:00 - Mon 08:00 America/Los_Angels",
            "Fri 16:00 - Mon 08:00",
            "Fri 16:00 to Mon 08:00 UTC",
            "Fri - Mon 08:00 UTC",
            "2026-02-30 00:00 - 2026-03-02 00:00 UTC",
            "Fri 16:00 - 2026-03-02 00:00 UTC",
            "",
        ]
        .map(|text| {
            let message = error(text);
            let problem = message
                .strip_suffix(&format!("; {FORMS}"))
                .expect("every error shows the forms");
            format!("{text:?}: {problem}")
        })
        .join("\n");
        insta::assert_snapshot!(errors, @r#"
        "Fry 16:00 - Mon 08:00 UTC": `Fry` is not a day of the week (Mon, Tue, Wed, Thu, Fri, Sat, Sun)
        "Fri 25:00 - Mon 08:00 UTC": `25:00` is not a time (HH:MM, 00:00 to 23:59)
        "Fri 16:00 - Mon 8 UTC": `8` is not a time (HH:MM, 00:00 to 23:59)
        "Fri 16:00 - Mon 08:00 America/Los_Angels": `America/Los_Angels` is not a time zone; use an IANA name such as Europe/Berlin, or UTC
        "Fri 16:00 - Mon 08:00": no time zone after the end
        "Fri 16:00 to Mon 08:00 UTC": `Fri 16:00 to Mon 08:00 UTC` has no ` - ` between the start and the end
        "Fri - Mon 08:00 UTC": the start `Fri` should be a day or date and a time
        "2026-02-30 00:00 - 2026-03-02 00:00 UTC": `2026-02-30` is not a date (YYYY-MM-DD)
        "Fri 16:00 - 2026-03-02 00:00 UTC": mixes a day of the week with a date
        "": the freeze window is empty
        "#);
    }
}
