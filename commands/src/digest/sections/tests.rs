//! Each section's text from fixed rows, as snapshots (the words people read), and the
//! message's limits.

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::digest::Section;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("rfc3339")
        .with_timezone(&Utc)
}

fn window() -> Window {
    Window {
        start: at("2026-11-30T08:00:00Z"),
        end: at("2026-12-01T08:00:00Z"),
    }
}

fn deploy(id: i64, service: &str, env: &str, state: &str, minutes: i64) -> DeployRow {
    let requested_at = at("2026-11-30T10:00:00Z") + Duration::hours(id);
    DeployRow {
        id,
        service: service.to_owned(),
        environment: env.to_owned(),
        version: format!("v1.{id}.0"),
        state: state.to_owned(),
        is_rollback: false,
        freeze_overridden: false,
        requested_by_name: "ana".to_owned(),
        requested_at,
        finished_at: Some(requested_at + Duration::minutes(minutes)),
    }
}

fn data() -> DigestData {
    let mut rollback = deploy(5, "api", "production", "succeeded", 3);
    rollback.is_rollback = true;
    rollback.version = "v1.2.0".to_owned();
    rollback.requested_by_name = "bob".to_owned();
    let mut frozen = deploy(6, "worker", "staging", "succeeded", 4);
    frozen.freeze_overridden = true;
    let mut unfinished = deploy(7, "worker", "staging", "running", 0);
    unfinished.finished_at = None;
    let incident =
        |id: i64, title: &str, status: &str, started: &str, resolved: Option<&str>| IncidentRow {
            id,
            title: title.to_owned(),
            severity: "sev2".to_owned(),
            status: status.to_owned(),
            started_at: at(started),
            resolved_at: resolved.map(at),
            commander: (id % 2 == 0).then(|| "carla".to_owned()),
        };
    let alert = |name: &str, service: &str, first: &str, resolved: Option<&str>| AlertRow {
        alertname: name.to_owned(),
        service: service.to_owned(),
        status: if resolved.is_some() {
            "resolved"
        } else {
            "firing"
        }
        .to_owned(),
        first_seen_at: at(first),
        resolved_at: resolved.map(at),
        acked_by_name: None,
        silenced_by_name: None,
        route_index: 0,
        held: false,
    };
    let mut acked = alert(
        "HighErrorRate",
        "api",
        "2026-11-30T12:00:00Z",
        Some("2026-11-30T12:20:00Z"),
    );
    acked.acked_by_name = Some("dave".to_owned());
    let mut held = alert("DiskFilling", "db", "2026-11-30T09:00:00Z", None);
    held.held = true;
    held.silenced_by_name = Some("erin".to_owned());
    let denial = |who: &str, command: &str, detail: &str, count: i64, when: &str| DenialRow {
        actor_name: who.to_owned(),
        command: command.to_owned(),
        detail: detail.to_owned(),
        count,
        last_at: at(when),
    };
    DigestData {
        deploys: vec![
            deploy(1, "api", "production", "succeeded", 12),
            deploy(2, "api", "production", "succeeded", 30),
            deploy(3, "api", "production", "failed", 8),
            deploy(4, "api", "staging", "succeeded", 5),
            rollback,
            frozen,
            unfinished,
        ],
        incidents: vec![
            incident(
                11,
                "Checkout errors",
                "resolved",
                "2026-11-30T09:00:00Z",
                Some("2026-11-30T10:20:00Z"),
            ),
            incident(
                12,
                "Database failover",
                "identified",
                "2026-11-30T20:00:00Z",
                None,
            ),
            incident(9, "Slow search", "monitoring", "2026-11-28T08:00:00Z", None),
        ],
        alerts: vec![
            acked,
            alert(
                "HighErrorRate",
                "api",
                "2026-11-30T14:00:00Z",
                Some("2026-11-30T14:05:00Z"),
            ),
            alert("HighErrorRate", "api", "2026-11-30T18:00:00Z", None),
            alert(
                "HighLatency",
                "search",
                "2026-11-30T11:00:00Z",
                Some("2026-11-30T11:30:00Z"),
            ),
            held,
            alert(
                "TargetDown",
                "",
                "2026-11-30T16:00:00Z",
                Some("2026-11-30T16:01:00Z"),
            ),
        ],
        denials: vec![
            denial(
                "mallory",
                "deploy run",
                "you need the `deploy:production` permission to deploy to production",
                2,
                "2026-11-30T13:05:00Z",
            ),
            denial(
                "ana",
                "deploy approve",
                "you cannot approve your own deploy",
                1,
                "2026-11-30T15:00:00Z",
            ),
        ],
    }
}

fn section(section: Section) -> String {
    let text = section_text(section, &data(), window(), MAX_ITEMS);
    let mut out = text.heading.plain_text();
    for item in text.items {
        out.push_str("\n• ");
        out.push_str(&item.plain_text());
    }
    out
}

#[test]
fn deploys_section() {
    insta::assert_snapshot!("deploys", section(Section::Deploys));
}

#[test]
fn incidents_section() {
    insta::assert_snapshot!("incidents", section(Section::Incidents));
}

#[test]
fn alerts_section() {
    insta::assert_snapshot!("alerts", section(Section::Alerts));
}

#[test]
fn audit_section() {
    insta::assert_snapshot!("audit", section(Section::Audit));
}

fn heading(public_url: Option<&'static str>) -> Heading<'static> {
    Heading {
        digest: "daily",
        zone: "Europe/Berlin",
        window: window(),
        public_url,
    }
}

#[test]
fn the_whole_message_links_the_dashboard_for_the_window() {
    let message = digest_message(
        &heading(Some("https://ops.example.com/")),
        &Section::ALL,
        &data(),
    );
    let embed = &message.embeds[0];
    assert_eq!(
        embed.url.as_deref(),
        Some("https://ops.example.com/?since=2026-11-30T08:00:00Z&until=2026-12-01T08:00:00Z")
    );
    insta::assert_snapshot!("message", embed.description.plain_text());
}

#[test]
fn a_quiet_window_says_all_quiet() {
    let quiet = DigestData::default();
    assert!(is_quiet(&Section::ALL, &quiet, window()));
    assert!(!is_quiet(&[Section::Deploys], &data(), window()));
    let message = digest_message(&heading(None), &[Section::Deploys, Section::Audit], &quiet);
    insta::assert_snapshot!(message.embeds[0].description.plain_text(), @"
    From 2026-11-30 08:00 UTC to 2026-12-01 08:00 UTC

    All quiet: nothing to report.
    ");
    assert_eq!(message.embeds[0].url, None);
}

#[test]
fn a_huge_window_is_shortened_to_fit_with_more_counts() {
    let mut big = data();
    for id in 100..2100 {
        let mut d = deploy(
            id % 20 + 100,
            &format!("svc-{}", id % 300),
            "production",
            "failed",
            1,
        );
        d.version = "v".repeat(200);
        d.requested_at = at("2026-11-30T09:00:00Z");
        d.finished_at = Some(at("2026-11-30T09:10:00Z"));
        big.deploys.push(d);
    }
    let message = digest_message(
        &heading(Some("https://ops.example.com")),
        &Section::ALL,
        &big,
    );
    let description = &message.embeds[0].description;
    assert!(
        rendered_len(description) <= DESCRIPTION_BUDGET,
        "{}",
        rendered_len(description)
    );
    let text = description.plain_text();
    assert!(text.contains("more"), "{text}");
    assert!(
        text.contains("**") || text.contains("Incidents"),
        "every section still present"
    );
    assert!(
        text.contains("Audit log for this window"),
        "the link survives"
    );
}

#[test]
fn durations_read_like_people_write_them() {
    assert_eq!(human(Duration::seconds(40)), "40s");
    assert_eq!(human(Duration::minutes(12)), "12m");
    assert_eq!(human(Duration::minutes(80)), "1h 20m");
    assert_eq!(human(Duration::hours(2)), "2h");
    assert_eq!(human(Duration::hours(76)), "3d 4h");
}
