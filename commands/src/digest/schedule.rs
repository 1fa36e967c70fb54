//! When a digest fires: a six-field cron expression (seconds first, as `0 0 9 * * Mon-Fri`)
//! read in an IANA time zone.
//!
//! The expression is matched against the zone's wall clock, and each wall-clock time is then
//! placed on the real timeline, so daylight-saving changes neither skip nor double a fire:
//! - a time that does not exist (the spring-forward gap, e.g. 02:30 in Europe/Berlin on the
//!   last Sunday of March) fires once, as late as the gap pushed it (03:30 local);
//! - a time that exists twice (the fall-back fold) fires once, at its first occurrence.
//!
//! Fire times are strictly increasing, so several wall-clock times that land on the same
//! instant (an hourly schedule inside a gap) fire once.

use std::str::FromStr;

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// How many fields a digest's cron expression has: seconds, minutes, hours, day of month,
/// month, day of week.
pub const CRON_FIELDS: usize = 6;

/// A digest's schedule: a cron expression in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: cron::Schedule,
    zone: Tz,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Schedule) -> bool {
        self.cron.source() == other.cron.source() && self.zone == other.zone
    }
}

impl Schedule {
    /// Parses `expression` (exactly six fields, seconds first) and `zone` (an IANA name such
    /// as `Europe/Berlin`, or `UTC`). Errors say what is wrong, for a config problem.
    pub fn parse(expression: &str, zone: &str) -> Result<Schedule, String> {
        let fields = expression.split_whitespace().count();
        if fields != CRON_FIELDS {
            return Err(format!(
                "cron \"{expression}\" has {fields} fields; write six, seconds first: sec min hour day-of-month month day-of-week, e.g. \"0 0 9 * * Mon-Fri\""
            ));
        }
        let cron = cron::Schedule::from_str(expression)
            .map_err(|e| format!("cron \"{expression}\" is not a cron expression: {e}"))?;
        let zone = parse_zone(zone)?;
        if cron.upcoming(Utc).next().is_none() {
            return Err(format!("cron \"{expression}\" never fires"));
        }
        Ok(Schedule { cron, zone })
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    pub fn expression(&self) -> &str {
        self.cron.source()
    }

    /// The first fire time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Wall-clock candidates start a little before `after`'s wall-clock time: inside a fold
        // the wall clock goes back, and a candidate placed at its first occurrence may still
        // lie after `after`.
        let margin = self.transition_margin(after) + Duration::seconds(1);
        let local = after.with_timezone(&self.zone).naive_local() - margin;
        self.cron
            .after(&Utc.from_utc_datetime(&local))
            .take(10_000)
            .map(|wall| self.place(wall.naive_utc()))
            .find(|at| *at > after)
    }

    /// The last fire time at or before `at`.
    pub fn last_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let margin = self.transition_margin(at) + Duration::seconds(1);
        let local = at.with_timezone(&self.zone).naive_local() + margin;
        self.cron
            .after(&Utc.from_utc_datetime(&local))
            .rev()
            .take(10_000)
            .map(|wall| self.place(wall.naive_utc()))
            .find(|fire| *fire <= at)
    }

    /// The fire times in `(from, to]`, oldest first, at most `limit` of them.
    pub fn between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut at = from;
        while out.len() < limit {
            match self.next_after(at) {
                Some(next) if next <= to => {
                    out.push(next);
                    at = next;
                }
                _ => break,
            }
        }
        out
    }

    /// The real instant of wall-clock time `wall` in the zone (see the module doc).
    fn place(&self, wall: NaiveDateTime) -> DateTime<Utc> {
        match self.zone.from_local_datetime(&wall) {
            LocalResult::Single(at) => at.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
            LocalResult::None => {
                // In a gap: read the wall clock with the offset in force before the gap, which
                // moves it forward by the gap's length.
                let before = self
                    .zone
                    .offset_from_utc_datetime(&(wall - Duration::days(1)))
                    .fix();
                Utc.from_utc_datetime(
                    &(wall - Duration::seconds(i64::from(before.local_minus_utc()))),
                )
            }
        }
    }

    /// How far the zone's offset moves within a day of `at` (zero most of the year).
    fn transition_margin(&self, at: DateTime<Utc>) -> Duration {
        let offset = |t: DateTime<Utc>| {
            i64::from(
                self.zone
                    .offset_from_utc_datetime(&t.naive_utc())
                    .fix()
                    .local_minus_utc(),
            )
        };
        let (before, after) = (
            offset(at - Duration::days(1)),
            offset(at + Duration::days(1)),
        );
        Duration::seconds((before - after).abs())
    }
}

/// An IANA time zone name (`Europe/Berlin`, `America/Los_Angeles`, `UTC`).
pub fn parse_zone(zone: &str) -> Result<Tz, String> {
    zone.parse::<Tz>().map_err(|_| {
        format!("timezone \"{zone}\" is not an IANA time zone name; write e.g. \"Europe/Berlin\" or \"UTC\"")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("rfc3339")
            .with_timezone(&Utc)
    }

    fn fires(schedule: &Schedule, from: &str, to: &str) -> Vec<String> {
        schedule
            .between(utc(from), utc(to), 100)
            .iter()
            .map(|at| {
                at.with_timezone(&schedule.zone())
                    .format("%Y-%m-%d %H:%M:%S %Z")
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn spring_forward_fires_once_after_the_gap() {
        let daily = Schedule::parse("0 30 2 * * *", "Europe/Berlin").expect("valid");
        // 2026-03-29: at 02:00 CET the clocks jump to 03:00 CEST; 02:30 does not exist.
        assert_eq!(
            fires(&daily, "2026-03-27T12:00:00Z", "2026-03-31T12:00:00Z"),
            [
                "2026-03-28 02:30:00 CET",
                "2026-03-29 03:30:00 CEST",
                "2026-03-30 02:30:00 CEST",
                "2026-03-31 02:30:00 CEST",
            ]
        );
    }

    #[test]
    fn fall_back_fires_once_at_the_first_occurrence() {
        let daily = Schedule::parse("0 30 2 * * *", "Europe/Berlin").expect("valid");
        // 2026-10-25: at 03:00 CEST the clocks go back to 02:00 CET; 02:30 happens twice.
        assert_eq!(
            fires(&daily, "2026-10-23T12:00:00Z", "2026-10-26T12:00:00Z"),
            [
                "2026-10-24 02:30:00 CEST",
                "2026-10-25 02:30:00 CEST",
                "2026-10-26 02:30:00 CET",
            ]
        );
        // Looking from inside the fold (after the first 02:30, before the second) finds the
        // next day, not the second 02:30.
        let inside = utc("2026-10-25T01:15:00Z"); // 02:15 CET, the second pass
        assert_eq!(daily.next_after(inside), Some(utc("2026-10-26T01:30:00Z")));
    }

    #[test]
    fn hourly_in_a_gap_does_not_double() {
        let hourly = Schedule::parse("0 0 * * * *", "Europe/Berlin").expect("valid");
        let got = fires(&hourly, "2026-03-29T00:30:00Z", "2026-03-29T02:30:00Z");
        // 01:00 CET is 00:00 UTC (before the window); then 02:00 (gap → 03:00 CEST) and
        // 03:00 CEST are the same instant: one fire; then 04:00.
        assert_eq!(
            got,
            ["2026-03-29 03:00:00 CEST", "2026-03-29 04:00:00 CEST"]
        );
    }

    #[test]
    fn last_fire_and_weekdays() {
        let weekdays = Schedule::parse("0 0 9 * * Mon-Fri", "Europe/Berlin").expect("valid");
        // Sunday 2026-11-29 12:00 UTC: the last fire was Friday 09:00 CET.
        assert_eq!(
            weekdays.last_at_or_before(utc("2026-11-29T12:00:00Z")),
            Some(utc("2026-11-27T08:00:00Z"))
        );
        assert_eq!(
            weekdays.last_at_or_before(utc("2026-11-27T08:00:00Z")),
            Some(utc("2026-11-27T08:00:00Z")),
            "at the fire time itself"
        );
        assert_eq!(
            weekdays.next_after(utc("2026-11-27T08:00:00Z")),
            Some(utc("2026-11-30T08:00:00Z"))
        );
    }

    #[test]
    fn bad_expressions_and_zones_say_what_is_wrong() {
        let five = Schedule::parse("0 9 * * *", "UTC").expect_err("five fields");
        assert!(five.contains("has 5 fields; write six"), "{five}");
        let seven = Schedule::parse("0 0 9 * * * 2026", "UTC").expect_err("seven fields");
        assert!(seven.contains("has 7 fields"), "{seven}");
        let bad = Schedule::parse("0 0 25 * * *", "UTC").expect_err("hour 25");
        assert!(bad.contains("is not a cron expression"), "{bad}");
        let zone = Schedule::parse("0 0 9 * * *", "Europe/Berlinn").expect_err("zone");
        assert!(zone.contains("not an IANA time zone"), "{zone}");
    }
}
