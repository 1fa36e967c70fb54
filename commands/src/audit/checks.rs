//! Plausibility of an event's id and time, judged the same way by the sealer (which refuses
//! to chain an implausible event) and by `verify` (which reports one already chained).
//!
//! A role that may INSERT can write any actor, command and time into `audit_events`; what it
//! cannot choose are the values the database assigns itself: the identity sequence's ids and
//! the queue time stamped by a trigger (`audit_unsealed.queued_at`, copied into the chain).

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How much older than its queue time an event may be dated. `append` inserts the event and
/// queues it in one statement, so a genuine event is dated microseconds before it was queued;
/// a minute leaves room for a clock stepped by NTP and still catches any useful backdating.
pub const BACKDATE_LIMIT: Duration = Duration::from_secs(60);

/// How much later than its queue time an event may be dated: the same statement again, so
/// only a stepped clock explains any of it.
pub const FUTURE_SLACK: Duration = Duration::from_secs(1);

/// How far back in time an event may be from the one before it in the chain. Chain order is
/// commit order: an event whose transaction commits after later events were sealed lands
/// after them, dated earlier by how long its transaction stayed open (milliseconds for every
/// appending transaction in opsbot) plus up to one seal interval. Ten seal intervals.
pub const REORDER_TOLERANCE: Duration = Duration::from_secs(5);

/// The ids the identity sequence of `audit_events` has issued: `1..=last`, none when unused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuedIds {
    pub last: Option<i64>,
}

impl IssuedIds {
    pub fn contains(self, id: i64) -> bool {
        self.last.is_some_and(|last| (1..=last).contains(&id))
    }

    fn describe(self) -> String {
        match self.last {
            Some(last) => format!("1..={last}"),
            None => "none yet".to_owned(),
        }
    }
}

/// The time stamps the sealer and `verify` judge one event by.
#[derive(Debug, Clone, Copy)]
pub struct EventTimes {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// When the database queued it for sealing; `None` for events queued before queue times
    /// were recorded.
    pub queued_at: Option<DateTime<Utc>>,
}

/// Why an event is implausible, as a sentence about it (the caller names the event).
pub fn implausible(event: EventTimes, issued: IssuedIds) -> Option<String> {
    if !issued.contains(event.id) {
        return Some(format!(
            "its id {} was never issued by the identity sequence of audit_events (issued: {}): it was inserted with a chosen id, not appended by opsbot",
            event.id,
            issued.describe()
        ));
    }
    let queued_at = event.queued_at?;
    if event.at > queued_at + to_chrono(FUTURE_SLACK) {
        return Some(format!(
            "it is dated {} but was queued for sealing at {}, earlier: its time was forged",
            stamp(event.at),
            stamp(queued_at)
        ));
    }
    let age = queued_at - event.at;
    if age > to_chrono(BACKDATE_LIMIT) {
        return Some(format!(
            "it is dated {}, {} before it was queued for sealing at {} (at most {}s is genuine): it was backdated",
            stamp(event.at),
            human(age),
            stamp(queued_at),
            BACKDATE_LIMIT.as_secs()
        ));
    }
    None
}

/// Why `event` cannot follow `previous` (the event before it in the chain), if it cannot.
pub fn out_of_order(
    previous_id: i64,
    previous_at: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Option<String> {
    let back = previous_at - at;
    (back > to_chrono(REORDER_TOLERANCE)).then(|| {
        format!(
            "it is dated {}, {} before event {previous_id} at the chain position before it (commit order explains at most {}s): it was backdated or the chain was re-ordered",
            stamp(at),
            human(back),
            REORDER_TOLERANCE.as_secs()
        )
    })
}

pub(super) fn to_chrono(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `3d 4h`, `12m 5s`, `1.250s`: enough to judge, short enough to read.
fn human(duration: chrono::Duration) -> String {
    let std = duration.to_std().unwrap_or_default();
    let secs = std.as_secs();
    match secs {
        0..60 => format!("{:.3}s", std.as_secs_f64()),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("valid time")
            .with_timezone(&Utc)
    }

    const ISSUED: IssuedIds = IssuedIds { last: Some(10) };

    fn times(id: i64, event_at: &str, queued: Option<&str>) -> EventTimes {
        EventTimes {
            id,
            at: at(event_at),
            queued_at: queued.map(at),
        }
    }

    #[test]
    fn a_genuine_event_is_plausible() {
        let event = times(
            3,
            "2026-12-01T10:00:00.000100Z",
            Some("2026-12-01T10:00:00.000150Z"),
        );
        assert_eq!(implausible(event, ISSUED), None);
        assert_eq!(
            implausible(times(3, "2026-12-01T10:00:00Z", None), ISSUED),
            None
        );
    }

    #[test]
    fn ids_the_sequence_never_issued_are_named() {
        for id in [-1, 0, 11] {
            let reason =
                implausible(times(id, "2026-12-01T10:00:00Z", None), ISSUED).expect("implausible");
            assert!(reason.contains("never issued"), "{reason}");
            assert!(reason.contains("1..=10"), "{reason}");
        }
        let reason = implausible(
            times(1, "2026-12-01T10:00:00Z", None),
            IssuedIds { last: None },
        )
        .expect("nothing issued yet");
        assert!(reason.contains("none yet"), "{reason}");
    }

    #[test]
    fn backdated_and_future_dated_events_are_named() {
        let backdated = times(2, "2026-11-30T10:00:00Z", Some("2026-12-01T10:00:00Z"));
        insta::assert_snapshot!(implausible(backdated, ISSUED).expect("backdated"), @"it is dated 2026-11-30T10:00:00.000Z, 1d 0h before it was queued for sealing at 2026-12-01T10:00:00.000Z (at most 60s is genuine): it was backdated");
        let just_within = times(2, "2026-12-01T09:59:01Z", Some("2026-12-01T10:00:00Z"));
        assert_eq!(implausible(just_within, ISSUED), None);
        let future = times(2, "2026-12-01T10:00:05Z", Some("2026-12-01T10:00:00Z"));
        assert!(
            implausible(future, ISSUED)
                .expect("future")
                .contains("forged")
        );
    }

    #[test]
    fn time_may_go_back_by_commit_order_only() {
        let previous = at("2026-12-01T10:00:10Z");
        assert_eq!(out_of_order(7, previous, at("2026-12-01T10:00:06Z")), None);
        insta::assert_snapshot!(out_of_order(7, previous, at("2026-12-01T09:58:00Z")).expect("backwards"), @"it is dated 2026-12-01T09:58:00.000Z, 2m 10s before event 7 at the chain position before it (commit order explains at most 5s): it was backdated or the chain was re-ordered");
    }
}
