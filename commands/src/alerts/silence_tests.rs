//! Silences against a stand-in Alertmanager (wiremock, shaped like its v2 API): what is
//! stored, audited and retried when Alertmanager refuses or is down. The real Alertmanager
//! runs in `bot/tests/alertmanager.rs`.

use std::time::Duration;

use sqlx::PgPool;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::silence::{Alertmanager, AlertmanagerAuth, AlertmanagerSettings};
use super::silencing::SilenceLength;
use super::tests::{TOKEN, count, delivery, desk, payload};
use crate::access::RoleMap;
use crate::actor::{Actor, Source};
use crate::desk::{Desk, Invocation};
use crate::error::CommandError;

fn with_alertmanager(pool: PgPool, url: &str) -> Desk {
    let mut desk = desk(pool);
    desk.roles = RoleMap::new(
        [("ops".to_owned(), vec!["alerts:*".to_owned()])]
            .into_iter()
            .collect(),
    )
    .expect("roles");
    let mut catalog = desk.alerts().clone();
    catalog.alertmanager = Some(
        Alertmanager::new(AlertmanagerSettings {
            url: url.to_owned(),
            timeout: Duration::from_secs(3),
            auth: AlertmanagerAuth::Bearer("am-api-token".to_owned().into()),
        })
        .expect("client"),
    );
    desk.with_alerts(catalog)
}

fn member(id: i64, name: &str, role: &str) -> Invocation {
    Invocation::new(
        Actor {
            id,
            name: name.to_owned(),
            roles: vec![role.to_owned()],
            source: Source::Discord,
        },
        "alerts silence",
        serde_json::json!({}),
    )
}

async fn firing_group(desk: &Desk) -> i64 {
    let auth = format!("Bearer {TOKEN}");
    let body = payload("firing", &[("a1", "firing")]);
    desk.alertmanager_delivery(delivery(Some(&auth), &body))
        .await
        .expect("stored")
        .group_id
        .expect("group")
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn until_resolved_is_expired_on_resolve_and_retried_while_alertmanager_is_down(pool: PgPool) {
    let am = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/silences"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({ "silenceID": "s-1" })),
        )
        .expect(1)
        .mount(&am)
        .await;
    let desk = with_alertmanager(pool.clone(), &am.uri());
    let group = firing_group(&desk).await;

    let outcome = desk
        .alert_ack_and_silence(&member(1, "ana", "ops"), group)
        .await
        .expect("silenced");
    assert_eq!(outcome.silence_id, "s-1");
    let fields: Vec<&str> = outcome.message.embeds[0]
        .fields
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert!(
        fields.contains(&"acked by") && fields.contains(&"silenced by"),
        "{fields:?}"
    );
    assert!(
        outcome.message.selects.is_empty(),
        "no picker while silenced"
    );
    assert!(
        outcome
            .message
            .buttons
            .iter()
            .any(|b| b.label == "Unsilence"),
        "{:?}",
        outcome.message.buttons
    );
    let sent = &am.received_requests().await.expect("requests")[0];
    let body: serde_json::Value = serde_json::from_slice(&sent.body).expect("json");
    assert_eq!(body["createdBy"], "ana");
    assert_eq!(
        body["matchers"],
        serde_json::json!([{ "name": "alertname", "value": "HighErrorRate", "isRegex": false, "isEqual": true }])
    );
    assert!(
        body["comment"]
            .as_str()
            .expect("comment")
            .contains("opsbot")
    );
    assert_eq!(
        sent.headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer am-api-token")
    );

    // Nothing is due while the group fires.
    assert_eq!(desk.expire_due_silences().await.expect("round"), 0);

    // The resolve makes it due in the same transaction; Alertmanager is down at first.
    let auth = format!("Bearer {TOKEN}");
    let resolved = payload("resolved", &[("a1", "resolved")]);
    desk.alertmanager_delivery(delivery(Some(&auth), &resolved))
        .await
        .expect("stored");
    Mock::given(method("DELETE"))
        .and(path("/api/v2/silence/s-1"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&am)
        .await;
    assert_eq!(desk.expire_due_silences().await.expect("round"), 0);
    let (attempts, error): (i32, Option<String>) =
        sqlx::query_as("SELECT expire_attempts, expire_error FROM alert_silences")
            .fetch_one(&pool)
            .await
            .expect("row");
    assert_eq!(attempts, 1);
    assert!(error.expect("error").contains("cannot be reached"));
    // Not due again before its backoff.
    assert_eq!(desk.expire_due_silences().await.expect("round"), 0);

    Mock::given(method("DELETE"))
        .and(path("/api/v2/silence/s-1"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&am)
        .await;
    sqlx::query("UPDATE alert_silences SET expire_due_at = now()")
        .execute(&pool)
        .await
        .expect("backoff over");
    assert_eq!(desk.expire_due_silences().await.expect("round"), 1);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM alert_silences WHERE expired_at IS NOT NULL"
        )
        .await,
        1
    );
    assert_eq!(desk.expire_due_silences().await.expect("round"), 0, "once");
    for (outcome, expected) in [("ok", 1), ("error", 1)] {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit_events WHERE command = 'alerts expire silence' AND outcome = $1",
        )
        .bind(outcome)
        .fetch_one(&pool)
        .await
        .expect("count");
        assert_eq!(n, expected, "{outcome}");
    }
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn an_unreachable_alertmanager_or_a_denial_changes_nothing(pool: PgPool) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let desk = with_alertmanager(pool.clone(), &closed);
    let group = firing_group(&desk).await;

    let denied = desk
        .alert_silence(
            &member(2, "bo", "dev"),
            group,
            SilenceLength::For(Duration::from_secs(3600)),
        )
        .await;
    assert!(
        matches!(denied, Err(CommandError::Denied { .. })),
        "{denied:?}"
    );
    let down = desk
        .alert_silence(
            &member(1, "ana", "ops"),
            group,
            SilenceLength::For(Duration::from_secs(3600)),
        )
        .await;
    let Err(CommandError::Unavailable(text)) = down else {
        panic!("expected unavailable, got {down:?}");
    };
    assert!(
        text.contains("cannot be reached") && text.contains("nothing was changed"),
        "{text}"
    );
    let bad = desk
        .alerts_silence_matchers(&member(1, "ana", "ops"), r#"team=~"(""#, "1h", "x")
        .await;
    assert!(matches!(bad, Err(CommandError::Invalid(_))), "{bad:?}");
    let everything = desk
        .alerts_silence_matchers(&member(1, "ana", "ops"), r#"team!="x""#, "1h", "x")
        .await;
    assert!(
        matches!(everything, Err(CommandError::Invalid(_))),
        "{everything:?}"
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM alert_silences").await, 0);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM alert_groups WHERE silence_id IS NOT NULL"
        )
        .await,
        0
    );
    for (outcome, expected) in [("denied", 1), ("error", 1), ("invalid", 2)] {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit_events WHERE command = 'alerts silence' AND outcome = $1",
        )
        .bind(outcome)
        .fetch_one(&pool)
        .await
        .expect("count");
        assert_eq!(n, expected, "{outcome}");
    }
}

#[sqlx::test(migrator = "crate::MIGRATOR")]
async fn a_silence_that_ended_by_itself_leaves_the_message_and_a_resolve_while_silenced_is_found(
    pool: PgPool,
) {
    let am = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/silences"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({ "silenceID": "s-9" })),
        )
        .up_to_n_times(1)
        .mount(&am)
        .await;
    // Alertmanager still has the group's alert firing (silenced).
    Mock::given(method("GET"))
        .and(path("/api/v2/alerts"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([
            { "labels": { "alertname": "HighErrorRate" }, "endsAt": "2999-01-01T00:00:00Z" }
        ])))
        .mount(&am)
        .await;
    let desk = with_alertmanager(pool.clone(), &am.uri());
    let group = firing_group(&desk).await;
    desk.alert_silence(
        &member(1, "ana", "ops"),
        group,
        SilenceLength::For(Duration::from_secs(1800)),
    )
    .await
    .expect("silenced");
    let again = desk
        .alert_silence(
            &member(3, "cy", "ops"),
            group,
            SilenceLength::For(Duration::from_secs(1800)),
        )
        .await;
    assert!(
        matches!(&again, Err(CommandError::Conflict(t)) if t.contains("ana")),
        "{again:?}"
    );

    // The silence ends by itself: the next round forgets it and edits the message.
    sqlx::query("UPDATE alert_groups SET silenced_until = now() - interval '1 minute'")
        .execute(&pool)
        .await
        .expect("ended");
    desk.alert_silence_upkeep().await.expect("round");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM alert_groups WHERE silence_id IS NOT NULL"
        )
        .await,
        0
    );
    let last: serde_json::Value =
        sqlx::query_scalar("SELECT payload FROM outbox ORDER BY id DESC LIMIT 1")
            .fetch_one(&pool)
            .await
            .expect("edit");
    assert!(!last.to_string().contains("silenced by"), "{last}");
    assert!(last.to_string().contains("Silence for"), "{last}");

    // Silenced again, and Alertmanager no longer has the alert (resolved while silenced,
    // so no resolve was delivered): opsbot resolves the group itself.
    am.reset().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/silences"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({ "silenceID": "s-10" })),
        )
        .mount(&am)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/alerts"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([
            { "labels": { "alertname": "HighErrorRate" }, "endsAt": "2999-01-01T00:00:00Z" }
        ])))
        .up_to_n_times(1)
        .mount(&am)
        .await;
    desk.alert_silence(
        &member(1, "ana", "ops"),
        group,
        SilenceLength::For(Duration::from_secs(1800)),
    )
    .await
    .expect("silenced again");
    desk.alert_silence_upkeep().await.expect("round");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM alert_groups WHERE status = 'resolved'"
        )
        .await,
        0,
        "Alertmanager still has the alert"
    );
    Mock::given(method("GET"))
        .and(path("/api/v2/alerts"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([])))
        .mount(&am)
        .await;
    desk.alert_silence_upkeep().await.expect("round");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM alert_groups WHERE status = 'resolved'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM audit_events WHERE command = 'alerts resolved while silenced' AND source = 'scheduler'"
        )
        .await,
        1
    );
}
