use std::net::{IpAddr, Ipv4Addr};

use sqlx::PgPool;

use super::*;
use crate::access::RoleMap;

pub(super) const TOKEN: &str = "alert-token-for-tests";
const CHANNEL: i64 = 333;

pub(super) fn desk(pool: PgPool) -> Desk {
    let routes = vec![
        Route {
            matchers: vec![Matcher::parse(r#"severity="info""#).expect("matcher")],
            channel: CHANNEL,
            mode: Mode::Drop,
            mention: vec![],
            send_resolved: true,
        },
        Route {
            matchers: vec![],
            channel: CHANNEL,
            mode: Mode::Immediate,
            mention: vec!["oncall".to_owned()],
            send_resolved: true,
        },
    ];
    Desk::new(pool, RoleMap::default()).with_alerts(AlertsCatalog {
        webhook_token: Some(TOKEN.to_owned().into()),
        routes,
        role_ids: [("oncall".to_owned(), 42)].into_iter().collect(),
        ..AlertsCatalog::default()
    })
}

pub(super) fn payload(status: &str, alerts: &[(&str, &str)]) -> Vec<u8> {
    let alerts: Vec<serde_json::Value> = alerts
        .iter()
        .map(|(fingerprint, status)| {
            serde_json::json!({
                "status": status,
                "labels": {"alertname": "HighErrorRate", "service": "api", "severity": "critical", "instance": fingerprint},
                "annotations": {"summary": format!("errors on {fingerprint}")},
                "startsAt": "2026-12-01T10:00:00Z",
                "endsAt": if *status == "resolved" { "2026-12-01T10:05:00Z" } else { "0001-01-01T00:00:00Z" },
                "generatorURL": "http://prometheus/graph",
                "fingerprint": fingerprint,
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "status": status,
        "receiver": "opsbot", "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {"alertname": "HighErrorRate", "service": "api", "severity": "critical"},
        "commonAnnotations": {}, "externalURL": "http://am:9093", "truncatedAlerts": 0,
        "alerts": alerts,
    }))
    .expect("json")
}

pub(super) fn delivery<'a>(auth: Option<&'a str>, body: &'a [u8]) -> Delivery<'a> {
    Delivery {
        authorization: auth,
        content_type: Some("application/json"),
        body: DeliveryBody::Complete(body),
        address: IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

pub(super) async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("count")
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn one_message_per_group_edited_on_resolve_never_reposted(pool: PgPool) {
    let desk = desk(pool.clone());
    let auth = format!("Bearer {TOKEN}");
    let firing = payload("firing", &[("a1", "firing"), ("a2", "firing")]);
    let first = desk
        .alertmanager_delivery(delivery(Some(&auth), &firing))
        .await
        .expect("stored");
    assert_eq!((first.changed, first.queued), (2, 1));
    let again = desk
        .alertmanager_delivery(delivery(Some(&auth), &firing))
        .await
        .expect("redelivery");
    assert_eq!(
        (again.changed, again.queued),
        (0, 0),
        "a redelivery posts nothing"
    );
    let half = payload("firing", &[("a1", "resolved"), ("a2", "firing")]);
    let edit = desk
        .alertmanager_delivery(delivery(Some(&auth), &half))
        .await
        .expect("one resolved");
    assert_eq!((edit.changed, edit.queued), (1, 1));
    let done = payload("resolved", &[("a1", "resolved"), ("a2", "resolved")]);
    desk.alertmanager_delivery(delivery(Some(&auth), &done))
        .await
        .expect("all resolved");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM outbox WHERE edit_outbox_id IS NULL"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM outbox WHERE edit_outbox_id IS NOT NULL"
        )
        .await,
        2
    );
    let status: String = sqlx::query_scalar("SELECT status FROM alert_groups")
        .fetch_one(&pool)
        .await
        .expect("group");
    assert_eq!(status, "resolved");
    let last: serde_json::Value =
        sqlx::query_scalar("SELECT payload FROM outbox ORDER BY id DESC LIMIT 1")
            .fetch_one(&pool)
            .await
            .expect("payload");
    let message: crate::chat::Message = serde_json::from_value(last).expect("message");
    assert!(
        message.embeds[0].title.contains("RESOLVED"),
        "{:?}",
        message.embeds[0].title
    );
    assert!(message.buttons.is_empty(), "no Ack on a resolved group");
    assert!(message.notify.is_empty(), "a resolution pings nobody");
    // A re-fire after resolution is a new message.
    desk.alertmanager_delivery(delivery(Some(&auth), &firing))
        .await
        .expect("re-fire");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM outbox WHERE edit_outbox_id IS NULL"
        )
        .await,
        2
    );
    let first_post: serde_json::Value =
        sqlx::query_scalar("SELECT payload FROM outbox ORDER BY id LIMIT 1")
            .fetch_one(&pool)
            .await
            .expect("payload");
    let first_post: crate::chat::Message = serde_json::from_value(first_post).expect("message");
    assert_eq!(
        first_post.notify.roles,
        vec![42],
        "the route's role, and only it, may ping"
    );
    assert_eq!(first_post.buttons[0].label, "Ack");
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn refusals_store_nothing(pool: PgPool) {
    let desk = desk(pool.clone());
    let auth = format!("Bearer {TOKEN}");
    let body = payload("firing", &[("a1", "firing")]);
    for bad in [None, Some("Bearer wrong"), Some(TOKEN)] {
        let e = desk
            .alertmanager_delivery(delivery(bad, &body))
            .await
            .expect_err("401");
        assert_eq!(e.refusal, Refusal::Unauthorized);
    }
    let mut not_json = delivery(Some(&auth), &body);
    not_json.content_type = Some("text/plain");
    let e = desk.alertmanager_delivery(not_json).await.expect_err("415");
    assert_eq!(e.refusal, Refusal::UnsupportedMediaType);
    let mut large = delivery(Some(&auth), &body);
    large.body = DeliveryBody::TooLarge;
    assert_eq!(
        desk.alertmanager_delivery(large)
            .await
            .expect_err("413")
            .refusal,
        Refusal::TooLarge
    );
    let v3 = br#"{"version":"3","groupKey":"g","status":"firing","alerts":[]}"#;
    let e = desk
        .alertmanager_delivery(delivery(Some(&auth), v3))
        .await
        .expect_err("400");
    assert_eq!(e.refusal, Refusal::BadRequest);
    assert!(e.to_string().contains("version"), "{e}");
    // Postgres cannot store a NUL: refused as malformed (400), not failed (500).
    let nul = String::from_utf8(body.clone())
        .expect("utf-8")
        .replace("errors on a1", "errors on \\u0000a1");
    let e = desk
        .alertmanager_delivery(delivery(Some(&auth), nul.as_bytes()))
        .await
        .expect_err("400");
    assert_eq!(e.refusal, Refusal::BadRequest);
    assert!(
        e.to_string().contains("alerts[0].annotations.summary"),
        "{e}"
    );
    let raw_nul = b"{\"version\":\"4\",\"groupKey\":\"g\0\"}";
    let e = desk
        .alertmanager_delivery(delivery(Some(&auth), raw_nul))
        .await
        .expect_err("400");
    assert_eq!(e.refusal, Refusal::BadRequest);
    assert_eq!(count(&pool, "SELECT count(*) FROM alert_groups").await, 0);
    assert_eq!(count(&pool, "SELECT count(*) FROM outbox").await, 0);
    // Authenticated refusals are audited one each; unauthenticated ones only sampled.
    assert_eq!(
        count(&pool, "SELECT count(*) FROM audit_events WHERE command = 'alerts webhook' AND outcome = 'invalid'").await,
        5
    );
    // A dropped route stores nothing.
    let mut info = serde_json::from_slice::<serde_json::Value>(&body).expect("json");
    info["commonLabels"]["severity"] = "info".into();
    let info = serde_json::to_vec(&info).expect("json");
    let dropped = desk
        .alertmanager_delivery(delivery(Some(&auth), &info))
        .await
        .expect("ok");
    assert_eq!(dropped.group_id, None);
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn ack_is_once_and_needs_the_permission(pool: PgPool) {
    use crate::actor::{Actor, Source};
    let roles = RoleMap::new(
        [("ops".to_owned(), vec!["alerts:*".to_owned()])]
            .into_iter()
            .collect(),
    )
    .expect("roles");
    let mut desk = desk(pool.clone());
    desk.roles = roles;
    let auth = format!("Bearer {TOKEN}");
    let body = payload("firing", &[("a1", "firing")]);
    let stored = desk
        .alertmanager_delivery(delivery(Some(&auth), &body))
        .await
        .expect("ok");
    let group = stored.group_id.expect("group");
    let member = |id: i64, name: &str, role: &str| {
        Invocation::new(
            Actor {
                id,
                name: name.to_owned(),
                roles: vec![role.to_owned()],
                source: Source::Discord,
            },
            "alerts ack",
            serde_json::json!({ "group_id": group }),
        )
    };
    let denied = desk.alert_ack(&member(2, "bo", "dev"), group).await;
    assert!(
        matches!(denied, Err(CommandError::Denied { .. })),
        "{denied:?}"
    );
    let acked = desk
        .alert_ack(&member(1, "ana", "ops"), group)
        .await
        .expect("acked");
    assert!(
        !acked
            .message
            .buttons
            .iter()
            .any(|b| b.label.starts_with("Ack")),
        "no Ack once acked: {:?}",
        acked.message.buttons
    );
    let field = acked.message.embeds[0]
        .fields
        .iter()
        .find(|f| f.name == "acked by")
        .expect("field");
    assert_eq!(field.value.spans[0], crate::chat::Span::User { id: 1 });
    let second = desk.alert_ack(&member(3, "cy", "ops"), group).await;
    let Err(CommandError::Conflict(text)) = second else {
        panic!("expected a conflict, got {second:?}");
    };
    assert!(text.contains("ana"), "{text}");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM audit_events WHERE command = 'alerts ack'"
        )
        .await,
        3
    );
}

use crate::desk::Invocation;
use crate::error::CommandError;

/// The message of a new group is built without reading its alerts back: what it is built
/// from must be what Postgres holds (times at microseconds, firing first, then by start).
#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn a_new_groups_alerts_as_built_are_the_alerts_as_stored(pool: PgPool) {
    let body = serde_json::json!({
        "version": "4", "groupKey": "g-order", "status": "firing", "receiver": "opsbot",
        "commonLabels": {"alertname": "Disk"},
        "alerts": [
            {"status": "resolved", "labels": {"i": "a"}, "startsAt": "2026-12-01T10:00:00.123456789Z",
             "endsAt": "2026-12-01T10:05:00.987654321Z", "fingerprint": "fa"},
            {"status": "firing", "labels": {"i": "b"}, "startsAt": "2026-12-01T10:00:02.5Z", "fingerprint": "fb"},
            {"status": "firing", "labels": {"i": "c"}, "startsAt": "2026-12-01T10:00:01.000000999Z", "fingerprint": "fc"},
            {"status": "firing", "labels": {"i": "d"}, "startsAt": "2026-12-01T10:00:01.000000999Z", "fingerprint": "fB"},
            {"status": "firing", "labels": {"i": "e"}, "startsAt": "2026-12-01T10:00:01.000000999Z", "fingerprint": "fa"},
        ],
    });
    let payload = payload::parse(&serde_json::to_vec(&body).expect("json")).expect("parses");
    let desk = desk(pool.clone());
    let outcome = desk.store_delivery(&payload).await.expect("stored");
    let group = outcome.group_id.expect("a group");
    let read_back = store::instances(&pool, group).await.expect("read");
    assert_eq!(store::instances_as_stored(&payload.alerts), read_back);
}
