//! Claims against a real database: exactly once across racing replicas, catch-up within the
//! grace, skips beyond it, and the access check of the preview.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::commands::Fired;
use super::*;
use crate::access::RoleMap;
use crate::actor::{Actor, Source};
use crate::desk::Invocation;
use crate::error::CommandError;

const CHANNEL: i64 = 111;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("rfc3339")
        .with_timezone(&Utc)
}

fn spec(name: &str, cron: &str, when_empty: WhenEmpty) -> DigestSpec {
    DigestSpec {
        name: name.to_owned(),
        schedule: Schedule::parse(cron, "UTC").expect("schedule"),
        channel: CHANNEL,
        include: Section::ALL.to_vec(),
        when_empty,
        grace: DEFAULT_GRACE,
    }
}

fn desk(pool: PgPool, digests: Vec<DigestSpec>) -> Desk {
    let roles = RoleMap::new(BTreeMap::from([(
        "ops".to_owned(),
        vec!["digest:preview".to_owned()],
    )]))
    .expect("roles");
    Desk::new(pool, roles).with_digests(DigestCatalog {
        digests,
        public_url: Some("https://ops.example.com".to_owned()),
    })
}

async fn outbox_rows(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE channel_id = $1")
        .bind(CHANNEL)
        .fetch_one(pool)
        .await
        .expect("count")
}

async fn events(pool: &PgPool, outcome: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT source, detail FROM audit_events WHERE command = 'digest post' AND outcome = $1 ORDER BY id",
    )
    .bind(outcome)
    .fetch_all(pool)
    .await
    .expect("events")
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn two_replicas_claiming_one_fire_time_post_once(pool: PgPool) {
    let digests = vec![spec("daily", "0 0 9 * * *", WhenEmpty::Post)];
    let (a, b) = (
        desk(pool.clone(), digests.clone()),
        desk(pool.clone(), digests),
    );
    let now = at("2026-12-01T09:00:03Z");
    let (ra, rb) = tokio::join!(a.digest_tick(now), b.digest_tick(now));
    let mut fired: Vec<Fired> = ra.expect("a").into_iter().chain(rb.expect("b")).collect();
    assert_eq!(fired.len(), 1, "exactly one replica won: {fired:?}");
    let Some(Fired::Posted { fire_at, .. }) = fired.pop() else {
        panic!("posted");
    };
    assert_eq!(fire_at, at("2026-12-01T09:00:00Z"));
    assert_eq!(outbox_rows(&pool).await, 1);
    // The next rounds find nothing new to do.
    assert_eq!(a.digest_tick(now).await.expect("again"), vec![]);
    assert_eq!(
        b.digest_tick(at("2026-12-01T12:00:00Z"))
            .await
            .expect("later"),
        vec![]
    );
    assert_eq!(outbox_rows(&pool).await, 1);
    let ok = events(&pool, "ok").await;
    assert_eq!(ok.len(), 1, "{ok:?}");
    assert_eq!(ok[0].0, "scheduler");
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn missed_fire_times_within_the_grace_are_caught_up_once(pool: PgPool) {
    let hourly = spec("hourly", "0 0 * * * *", WhenEmpty::Post);
    let desk = desk(pool.clone(), vec![hourly]);
    // Posted 08:00; then every replica was down until 10:30: 09:00 (90 min ago) is beyond
    // the grace, 10:00 within it.
    let first = desk
        .digest_tick(at("2026-12-01T08:00:01Z"))
        .await
        .expect("08:00");
    assert!(
        matches!(first.as_slice(), [Fired::Posted { .. }]),
        "{first:?}"
    );
    let back = desk
        .digest_tick(at("2026-12-01T10:30:00Z"))
        .await
        .expect("10:30");
    let [Fired::Posted { fire_at, outbox_id }] = back.as_slice() else {
        panic!("one catch-up post: {back:?}");
    };
    assert_eq!(*fire_at, at("2026-12-01T10:00:00Z"));
    assert_eq!(outbox_rows(&pool).await, 2);
    let skipped = events(&pool, "expired").await;
    assert_eq!(skipped.len(), 1, "the stale 09:00 is audited: {skipped:?}");
    assert!(skipped[0].1.contains("1 fire time(s) up to 2026-12-01T09:00:00+00:00 missed by more than the grace (1h): skipped"), "{}", skipped[0].1);
    // The catch-up's window starts at the last fire before the one it covers.
    let window_start: DateTime<Utc> =
        sqlx::query_scalar("SELECT window_start FROM digest_runs WHERE outbox_id = $1")
            .bind(outbox_id)
            .fetch_one(&pool)
            .await
            .expect("run");
    assert_eq!(window_start, at("2026-12-01T09:00:00Z"));
    // Once only.
    assert_eq!(
        desk.digest_tick(at("2026-12-01T10:30:05Z"))
            .await
            .expect("again"),
        vec![]
    );
    assert_eq!(outbox_rows(&pool).await, 2);
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn fire_times_all_beyond_the_grace_are_skipped_and_audited(pool: PgPool) {
    let desk = desk(
        pool.clone(),
        vec![spec("daily", "0 0 9 * * *", WhenEmpty::Post)],
    );
    desk.digest_tick(at("2026-11-29T09:00:01Z"))
        .await
        .expect("posted");
    // Down from then until 2026-12-01 12:00: 30 Nov and 1 Dec 09:00 are both > 1h ago.
    let late = desk
        .digest_tick(at("2026-12-01T12:00:00Z"))
        .await
        .expect("late");
    assert_eq!(
        late,
        vec![Fired::Skipped {
            fire_at: at("2026-12-01T09:00:00Z"),
            missed: 2
        }]
    );
    assert_eq!(
        outbox_rows(&pool).await,
        1,
        "nothing posted for the skipped ones"
    );
    let skipped = events(&pool, "expired").await;
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].1.contains("2 fire time(s)"), "{}", skipped[0].1);
    let runs = store::runs(&pool, "daily").await.expect("runs");
    let statuses: Vec<&str> = runs.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["posted", "skipped"]);
    assert_eq!(
        desk.digest_tick(at("2026-12-01T12:00:05Z"))
            .await
            .expect("again"),
        vec![]
    );
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn an_empty_digest_is_skipped_when_asked_and_posted_otherwise(pool: PgPool) {
    let desk = desk(
        pool.clone(),
        vec![
            spec("quiet", "0 0 9 * * *", WhenEmpty::Skip),
            spec("loud", "0 0 9 * * *", WhenEmpty::Post),
        ],
    );
    let fired = desk
        .digest_tick(at("2026-12-01T09:00:01Z"))
        .await
        .expect("tick");
    assert!(matches!(fired[0], Fired::Empty { .. }), "{fired:?}");
    assert!(matches!(fired[1], Fired::Posted { .. }), "{fired:?}");
    assert_eq!(outbox_rows(&pool).await, 1);
    let payload: serde_json::Value = sqlx::query_scalar("SELECT payload FROM outbox")
        .fetch_one(&pool)
        .await
        .expect("payload");
    let message: crate::chat::Message = serde_json::from_value(payload).expect("message");
    assert!(
        message.embeds[0]
            .description
            .plain_text()
            .contains("All quiet"),
        "{message:?}"
    );
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn preview_needs_its_permission_and_shows_the_window_rows(pool: PgPool) {
    let desk = desk(
        pool.clone(),
        vec![spec("daily", "0 0 9 * * *", WhenEmpty::Post)],
    );
    let actor = |roles: &[&str]| Actor {
        id: 5,
        name: "ana".to_owned(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        source: Source::Discord,
    };
    let now = Utc::now();
    let denied = desk
        .digest_preview(
            &Invocation::new(actor(&[]), "digest preview", serde_json::json!({})),
            "daily",
            now,
        )
        .await;
    assert!(
        matches!(denied, Err(CommandError::Denied { .. })),
        "{denied:?}"
    );
    // The denial itself shows up in the audit section.
    let inv = Invocation::new(actor(&["ops"]), "digest preview", serde_json::json!({}));
    let message = desk
        .digest_preview(&inv, "daily", Utc::now())
        .await
        .expect("preview");
    let text = message.embeds[0].description.plain_text();
    assert!(
        text.contains("ana tried digest preview without digest:preview"),
        "{text}"
    );
    let unknown = desk.digest_preview(&inv, "weekly", Utc::now()).await;
    let Err(CommandError::NotFound(why)) = unknown else {
        panic!("{unknown:?}");
    };
    assert_eq!(why, "no digest \"weekly\"; configured: daily");
    assert_eq!(outbox_rows(&pool).await, 0, "a preview posts nothing");
    let _ = Duration::ZERO;
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn alerts_routed_to_digests_are_not_posted_but_summarised(pool: PgPool) {
    use crate::alerts::{AlertsCatalog, Mode, Route, payload};
    let desk = desk(
        pool.clone(),
        vec![spec("often", "* * * * * *", WhenEmpty::Post)],
    )
    .with_alerts(AlertsCatalog {
        routes: vec![Route {
            matchers: vec![],
            channel: 999,
            mode: Mode::Digest,
            mention: vec![],
            send_resolved: true,
        }],
        ..AlertsCatalog::default()
    });
    let body = serde_json::json!({
        "version": "4", "groupKey": "{}:{alertname=\"DiskFilling\"}", "status": "firing",
        "receiver": "opsbot", "groupLabels": {"alertname": "DiskFilling"},
        "commonLabels": {"alertname": "DiskFilling", "service": "db"},
        "commonAnnotations": {}, "externalURL": "http://am:9093", "truncatedAlerts": 0,
        "alerts": [{
            "status": "firing", "labels": {"alertname": "DiskFilling", "service": "db"},
            "annotations": {}, "startsAt": "2026-12-01T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "f1",
        }],
    });
    let payload = payload::parse(&serde_json::to_vec(&body).expect("json")).expect("payload");
    desk.store_delivery(&payload).await.expect("stored");
    let posted: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(posted, 0, "a digest route posts nothing on its own");
    let fired = desk
        .digest_tick(Utc::now() + chrono::Duration::seconds(2))
        .await
        .expect("tick");
    assert!(
        matches!(fired.as_slice(), [Fired::Posted { .. }]),
        "{fired:?}"
    );
    let payload: serde_json::Value = sqlx::query_scalar("SELECT payload FROM outbox")
        .fetch_one(&pool)
        .await
        .expect("the digest");
    let message: crate::chat::Message = serde_json::from_value(payload).expect("message");
    let text = message.embeds[0].description.plain_text();
    assert!(
        text.contains("Alerts: 1 fired (1 held for digests), 0 resolved"),
        "{text}"
    );
    assert!(text.contains("DiskFilling · db: fired 1×"), "{text}");
}
