//! **Declare incident** under an alert message, through the emulator: the form opens
//! pre-filled from the group, its submit declares the incident and links the group (the
//! timeline starts with it, the alert message names the incident and loses the button); a
//! member without `incident:declare` is refused before the form opens, and a group already
//! declared is refused too.

mod support;

use serde_json::{Value, json};
use sqlx::PgPool;
use support::TestBot;
use support::alertmanager::{embed_text, labels_of_components};

const ALERTS: u64 = 333_000_000_000_000_333;
const INCIDENTS: u64 = 222_000_000_000_000_222;
const HOOK: &str = "declare-from-alert-webhook-token";

fn config(token_file: &std::path::Path) -> String {
    format!(
        r#"
[roles]
ops = ["incident:*", "alerts:*"]
watcher = ["alerts:*"]
[http]
listen = "127.0.0.1:0"
[channels]
alerts = {ALERTS}
incidents = {INCIDENTS}
[alerts]
webhook_token = "file:{}"
[[alerts.routes]]
channel = {ALERTS}
[incidents.severities.sev1]
description = "customer-facing outage"
[incidents.severities.critical]
description = "what Alertmanager calls critical"
[[services]]
name = "api"
environments = ["staging"]
backend = {{ kind = "command", program = "true", args = [], timeout = "30s" }}
"#,
        token_file.display()
    )
}

fn payload() -> Value {
    let alerts: Vec<Value> = (0..3)
        .map(|i| {
            json!({
                "status": "firing",
                "labels": {"alertname": "HighErrorRate", "instance": format!("api-{i}:8080"), "service": "api", "severity": "critical"},
                "annotations": {},
                "startsAt": "2026-12-01T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "", "fingerprint": format!("fp-{i}"),
            })
        })
        .collect();
    json!({
        "version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "status": "firing",
        "receiver": "opsbot", "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {"alertname": "HighErrorRate", "service": "api", "severity": "critical"},
        "commonAnnotations": {"summary": "5xx above 5% on api"},
        "externalURL": "http://am:9093", "truncatedAlerts": 0, "alerts": alerts,
    })
}

/// The value the form opened with for input `custom_id`.
fn prefilled(modal: &Value, custom_id: &str) -> String {
    modal["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().into_iter().flatten())
        .find(|c| c["custom_id"] == custom_id)
        .and_then(|c| c["value"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn declare_incident_on_an_alert_opens_the_form_pre_filled_and_links_the_group(pool: PgPool) {
    let token = tempfile::NamedTempFile::new().expect("token file");
    std::fs::write(token.path(), HOOK).expect("token");
    let mut bot = TestBot::with_config(pool.clone(), &config(token.path())).await;
    let http = bot
        .services
        .as_ref()
        .and_then(|s| s.http_addr)
        .expect("http");
    let response = reqwest::Client::new()
        .post(format!("http://{http}/webhooks/alertmanager"))
        .bearer_auth(HOOK)
        .json(&payload())
        .send()
        .await
        .expect("webhook");
    assert_eq!(response.status(), 200);
    let posted = bot
        .next_event("the alert message", |e| {
            e.event == "post" && e.channel_id == ALERTS
        })
        .await;
    assert!(
        labels_of_components(&posted).contains(&"Declare incident".to_owned()),
        "{:?}",
        labels_of_components(&posted)
    );

    // Without incident:declare the form does not open; the denial is audited.
    let watcher = bot.emulator.member("wes", Some(&["watcher".to_owned()]));
    let denied = bot
        .emulator
        .click(watcher, "Declare incident")
        .expect("pressed");
    let answer = bot.answer_to(denied).await;
    assert!(answer.ephemeral, "{answer:?}");
    assert!(
        answer.content.contains("incident:declare"),
        "{}",
        answer.content
    );
    assert!(bot.emulator.modal(denied).is_none());

    let ana = bot.emulator.member("ana", Some(&["ops".to_owned()]));
    let press = bot
        .emulator
        .click(ana, "Declare incident")
        .expect("pressed");
    bot.next_event("the form", |e| {
        e.event == "modal" && e.interaction_id == Some(press)
    })
    .await;
    let modal = bot.emulator.modal(press).expect("the form is open");
    assert_eq!(
        prefilled(&modal, "title"),
        "HighErrorRate: 5xx above 5% on api"
    );
    assert_eq!(prefilled(&modal, "severity"), "critical");
    assert_eq!(prefilled(&modal, "services"), "api");
    let description = prefilled(&modal, "description");
    assert!(
        description.starts_with(
            "Declared from alert group 1 (3 firing).\n- api-0:8080 since 2026-12-01 10:00 UTC"
        ),
        "{description}"
    );

    bot.emulator
        .submit_modal(ana, &[("severity".to_owned(), "sev1".to_owned())])
        .expect("submitted");
    let declared = bot.answer_to(press).await;
    assert!(
        declared
            .content
            .contains("#inc-1-higherrorrate-5xx-above-5-on-api"),
        "{}",
        declared.content
    );

    // The alert message is edited: it names the incident and no longer offers the button.
    let edited = bot
        .next_event("the alert message naming the incident", |e| {
            e.event == "edit" && e.channel_id == ALERTS && embed_text(e).contains("inc-1-")
        })
        .await;
    assert!(
        !labels_of_components(&edited).contains(&"Declare incident".to_owned()),
        "{:?}",
        labels_of_components(&edited)
    );
    let (linked, severity): (Option<i64>, String) = sqlx::query_as(
        "SELECT g.incident_id, i.severity FROM alert_groups g JOIN incidents i ON i.id = g.incident_id WHERE g.id = 1",
    )
    .fetch_one(&pool)
    .await
    .expect("linked");
    assert_eq!((linked, severity.as_str()), (Some(1), "sev1"));
    let timeline: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, text FROM incident_events WHERE incident_id = 1 ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("timeline");
    assert!(
        timeline.iter().any(|(kind, text)| kind == "alert"
            && text == "declared from alert group 1: HighErrorRate (3 firing)"),
        "{timeline:?}"
    );
    let audited: Vec<(String, Value)> = sqlx::query_as(
        "SELECT outcome, args FROM audit_events WHERE command = 'incident declare' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("audit");
    let outcomes: Vec<&str> = audited.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(outcomes, ["denied", "ok"]);
    assert_eq!(audited[1].1["alert_group"], 1);

    // The button is gone from the message.
    assert!(bot.emulator.click(ana, "Declare incident").is_err());
}
