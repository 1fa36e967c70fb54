//! Group commit ([`super::batch`]): concurrent deliveries share one transaction, each gets
//! its own answer, and one that fails alone fails alone.

use sqlx::PgPool;

use super::tests::{TOKEN, count, delivery, desk};

fn group_payload(group: &str, service: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "version": "4", "groupKey": format!("{{}}:{{alertname=\"{group}\"}}"), "status": "firing",
        "receiver": "opsbot", "groupLabels": {"alertname": group},
        "commonLabels": {"alertname": group, "service": service, "severity": "critical"},
        "commonAnnotations": {}, "externalURL": "http://am:9093", "truncatedAlerts": 0,
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": group, "service": service, "severity": "critical"},
            "annotations": {"summary": format!("{group} fires")},
            "startsAt": "2026-12-01T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "", "fingerprint": format!("fp-{group}"),
        }],
    }))
    .expect("json")
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn concurrent_deliveries_share_a_commit_and_fail_alone(pool: PgPool) {
    let desk = desk(pool.clone());
    let auth = format!("Bearer {TOKEN}");
    let bodies: Vec<Vec<u8>> = (0..8)
        .map(|i| group_payload(&format!("A{i}"), "api"))
        .collect();
    let answers = futures_util::future::join_all(
        bodies
            .iter()
            .map(|b| desk.alertmanager_delivery(delivery(Some(&auth), b))),
    )
    .await;
    for answer in &answers {
        let outcome = answer.as_ref().expect("stored");
        assert_eq!((outcome.changed, outcome.queued), (1, 1), "{outcome:?}");
    }
    let ids: std::collections::BTreeSet<_> = answers
        .iter()
        .map(|a| a.as_ref().expect("stored").group_id)
        .collect();
    assert_eq!(ids.len(), 8, "each delivery gets its own group back");
    // Rows written by one transaction carry its id: fewer transactions than deliveries.
    let transactions = count(&pool, "SELECT count(DISTINCT xmin::text) FROM alert_groups").await;
    assert!(transactions < 8, "{transactions} commits for 8 deliveries");

    // Redelivered together with new groups, one of which Postgres refuses (a NUL in a
    // label): that one fails, the others are stored once, the redeliveries change nothing.
    let mut bodies = bodies;
    bodies.push(group_payload("B0", "web"));
    bodies.push(group_payload("B1", "bad\u{0}label"));
    bodies.push(group_payload("B2", "web"));
    let answers = futures_util::future::join_all(
        bodies
            .iter()
            .map(|b| desk.alertmanager_delivery(delivery(Some(&auth), b))),
    )
    .await;
    for (i, answer) in answers.iter().enumerate() {
        match i {
            0..=7 => assert_eq!(answer.as_ref().expect("redelivery").queued, 0),
            9 => assert!(answer.is_err(), "{answer:?}"),
            _ => assert_eq!(answer.as_ref().expect("stored").queued, 1),
        }
    }
    assert_eq!(count(&pool, "SELECT count(*) FROM alert_groups").await, 10);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM outbox").await,
        10,
        "one message per stored group, none for redeliveries"
    );
}

/// New groups stored together (`super::fresh`) are stored as one at a time would store
/// them: each message is the one its stored rows render, posted once, recorded once.
#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn new_groups_stored_together_are_stored_as_alone(pool: PgPool) {
    let desk = desk(pool.clone());
    let auth = format!("Bearer {TOKEN}");
    let mut bodies: Vec<Vec<u8>> = (0..12)
        .map(|i| group_payload(&format!("N{i}"), ["api", "web"][i % 2]))
        .collect();
    // The same group again in the same burst: stored after its creation, changing nothing.
    bodies.push(group_payload("N3", "web"));
    let answers = futures_util::future::join_all(
        bodies
            .iter()
            .map(|b| desk.alertmanager_delivery(delivery(Some(&auth), b))),
    )
    .await;
    for (i, answer) in answers.iter().enumerate() {
        let outcome = answer.as_ref().expect("stored");
        let expected = if i == 12 { (0, 0) } else { (1, 1) };
        assert_eq!((outcome.changed, outcome.queued), expected, "delivery {i}");
    }
    let transactions = count(&pool, "SELECT count(DISTINCT xmin::text) FROM alert_groups").await;
    assert!(
        transactions < 12,
        "{transactions} commits: not stored together"
    );
    let groups: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT g.id, g.post_outbox_id, o.audit_event_id FROM alert_groups g
         JOIN outbox o ON o.id = g.post_outbox_id ORDER BY g.id",
    )
    .fetch_all(&pool)
    .await
    .expect("groups");
    assert_eq!(groups.len(), 12, "every group has its message");
    for (group_id, post, event) in groups {
        let group = super::store::group(&pool, group_id)
            .await
            .expect("group")
            .expect("exists");
        let alerts = super::store::instances(&pool, group_id)
            .await
            .expect("alerts");
        assert_eq!(alerts.len(), 1);
        let rendered =
            serde_json::to_value(super::view::group_message(&group, &alerts, &[42])).expect("json");
        let queued: serde_json::Value =
            sqlx::query_scalar("SELECT payload FROM outbox WHERE id = $1")
                .bind(post)
                .fetch_one(&pool)
                .await
                .expect("payload");
        assert_eq!(queued, rendered, "group {group_id}'s message");
        let (args, detail): (serde_json::Value, String) = sqlx::query_as(
            "SELECT args, detail FROM audit_events e JOIN audit_unsealed u ON u.event_id = e.id WHERE e.id = $1",
        )
        .bind(event)
        .fetch_one(&pool)
        .await
        .expect("its audit event, queued for sealing");
        assert_eq!(args["group_id"], group_id, "{args}");
        assert_eq!(
            detail,
            format!("alert group {group_id} firing: 1 new, 0 resolved, 1 firing")
        );
    }
    assert_eq!(count(&pool, "SELECT count(*) FROM outbox").await, 12);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM audit_events WHERE command = 'alerts webhook'"
        )
        .await,
        12,
        "one event per stored delivery; the redelivery changed nothing and records nothing"
    );
}

/// The batch path itself: every new group of a batch is taken by `fresh`, a group already
/// firing or repeated in the batch is left to `store_in`.
#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn fresh_takes_the_new_groups_and_leaves_the_rest(pool: PgPool) {
    let desk = desk(pool.clone());
    let auth = format!("Bearer {TOKEN}");
    let existing = group_payload("E0", "api");
    desk.alertmanager_delivery(delivery(Some(&auth), &existing))
        .await
        .expect("stored alone");
    let bodies = [
        group_payload("F0", "api"),
        existing.clone(),
        group_payload("F1", "web"),
        group_payload("F0", "api"),
    ];
    let payloads: Vec<_> = bodies
        .iter()
        .map(|b| super::payload::parse(b).expect("parses"))
        .collect();
    let mut prepared = Vec::new();
    for payload in &payloads {
        prepared.push(desk.prepare(payload).await.expect("routed"));
    }
    let jobs: Vec<_> = payloads.iter().zip(&prepared).collect();
    let mut tx = pool.begin().await.expect("tx");
    let stored = super::fresh::store_fresh(&desk, &mut tx, &jobs)
        .await
        .expect("stored");
    tx.commit().await.expect("commit");
    let taken: Vec<bool> = stored.iter().map(Option::is_some).collect();
    assert_eq!(taken, [true, false, true, false]);
    assert_eq!(count(&pool, "SELECT count(*) FROM alert_groups").await, 3);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM alert_groups WHERE post_outbox_id IS NOT NULL"
        )
        .await,
        3
    );
}
