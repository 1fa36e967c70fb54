//! Alertmanager's webhook payload, version 4 (`webhook_configs`), as Alertmanager sends it.
//! Parsing never guesses: a body that is not version 4 or lacks what opsbot needs is refused
//! with the reason, naming the field.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// Label (or annotation) name → value.
pub type Labels = BTreeMap<String, String>;

/// The one payload version opsbot reads.
pub const VERSION: &str = "4";

/// One delivery: a group of alerts as Alertmanager sees it now.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    pub version: String,
    pub group_key: String,
    #[serde(default)]
    pub truncated_alerts: u64,
    pub status: Status,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub group_labels: Labels,
    #[serde(default)]
    pub common_labels: Labels,
    #[serde(default)]
    pub common_annotations: Labels,
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        match text {
            "firing" => Some(Status::Firing),
            "resolved" => Some(Status::Resolved),
            _ => None,
        }
    }
}

/// One alert of the group, with its own status (a group can stay `firing` while one of its
/// alerts is `resolved`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: Status,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
    pub starts_at: DateTime<Utc>,
    /// Alertmanager writes `0001-01-01T00:00:00Z` for "not ended": read as `None`.
    #[serde(default, deserialize_with = "ends_at")]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

fn ends_at<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let at: Option<DateTime<Utc>> = Option::deserialize(de)?;
    Ok(at.filter(|t| t.timestamp() > 0))
}

impl Alert {
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("alert", String::as_str)
    }
}

/// Why a body is not a delivery opsbot can take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the body is not valid JSON: {0}")]
    NotJson(String),
    #[error(
        "payload version {0:?} is not supported; opsbot reads Alertmanager's webhook payload version 4"
    )]
    Version(String),
    #[error("the body is not an Alertmanager webhook payload: {0}")]
    Shape(String),
}

/// Parses a delivery body.
pub fn parse(body: &[u8]) -> Result<Payload, PayloadError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    match value.get("version") {
        Some(serde_json::Value::String(v)) if v == VERSION => {}
        Some(serde_json::Value::String(v)) => return Err(PayloadError::Version(v.clone())),
        Some(other) => return Err(PayloadError::Version(other.to_string())),
        None => return Err(PayloadError::Shape("missing field `version`".to_owned())),
    }
    let payload: Payload =
        serde_json::from_value(value).map_err(|e| PayloadError::Shape(e.to_string()))?;
    if payload.group_key.is_empty() {
        return Err(PayloadError::Shape("`groupKey` is empty".to_owned()));
    }
    if let Some(i) = payload.alerts.iter().position(|a| a.fingerprint.is_empty()) {
        return Err(PayloadError::Shape(format!(
            "alerts[{i}]: `fingerprint` is empty"
        )));
    }
    if let Some(field) = nul_field(&payload) {
        return Err(PayloadError::Shape(format!(
            "`{field}` contains a NUL character (\\u0000), which opsbot cannot store; remove it from the alert rule"
        )));
    }
    Ok(payload)
}

/// The first field (as a path) holding a NUL character: Postgres text cannot store one.
fn nul_field(payload: &Payload) -> Option<String> {
    fn in_labels(labels: &Labels, path: &str) -> Option<String> {
        labels
            .iter()
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
            .map(|(k, _)| format!("{path}.{}", k.replace('\0', "\\u0000")))
    }
    let top = [
        ("groupKey", &payload.group_key),
        ("receiver", &payload.receiver),
        ("externalURL", &payload.external_url),
    ];
    if let Some((name, _)) = top.iter().find(|(_, v)| v.contains('\0')) {
        return Some((*name).to_owned());
    }
    in_labels(&payload.group_labels, "groupLabels")
        .or_else(|| in_labels(&payload.common_labels, "commonLabels"))
        .or_else(|| in_labels(&payload.common_annotations, "commonAnnotations"))
        .or_else(|| {
            payload.alerts.iter().enumerate().find_map(|(i, a)| {
                if a.fingerprint.contains('\0') {
                    return Some(format!("alerts[{i}].fingerprint"));
                }
                if a.generator_url.contains('\0') {
                    return Some(format!("alerts[{i}].generatorURL"));
                }
                in_labels(&a.labels, &format!("alerts[{i}].labels"))
                    .or_else(|| in_labels(&a.annotations, &format!("alerts[{i}].annotations")))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real Alertmanager capture from the shared fixtures (beside the checkout, or at the
    /// machine's `/work/shared`, so a clone anywhere finds them).
    fn fixture(name: &str) -> Vec<u8> {
        let candidates = [
            format!(
                "{}/../../shared/fixtures/alertmanager/{name}",
                env!("CARGO_MANIFEST_DIR")
            ),
            format!("/work/shared/fixtures/alertmanager/{name}"),
        ];
        candidates
            .iter()
            .find_map(|path| std::fs::read(path).ok())
            .unwrap_or_else(|| panic!("fixture {name} not found; looked at {candidates:?}"))
    }

    #[test]
    fn real_captures_parse_with_each_alerts_own_status() {
        let payload = parse(&fixture("02-firing-2x-HighErrorRate.json")).expect("parses");
        assert_eq!(payload.status, Status::Firing);
        assert_eq!(payload.alerts.len(), 2);
        assert_eq!(payload.alerts[0].ends_at, None, "0001-01-01 is not an end");
        assert_eq!(payload.alerts[0].name(), "HighErrorRate");
        assert_eq!(payload.group_key, "{}:{alertname=\"HighErrorRate\"}");
        for name in [
            "01-firing-1x-HighErrorRate.json",
            "03-firing-1x-AlwaysFiring.json",
            "06-firing-1x-ReceiverDown.json",
        ] {
            parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn bad_bodies_are_refused_naming_the_problem() {
        assert!(matches!(parse(b"{"), Err(PayloadError::NotJson(_))));
        let v3 = br#"{"version":"3","groupKey":"g","status":"firing","alerts":[]}"#;
        assert_eq!(parse(v3), Err(PayloadError::Version("3".to_owned())));
        let no_status = br#"{"version":"4","groupKey":"g","alerts":[]}"#;
        let Err(PayloadError::Shape(why)) = parse(no_status) else {
            panic!("expected a shape error");
        };
        assert!(why.contains("status"), "{why}");
        let no_key = br#"{"version":"4","groupKey":"","status":"firing","alerts":[]}"#;
        assert!(matches!(parse(no_key), Err(PayloadError::Shape(_))));
    }

    #[test]
    fn a_nul_anywhere_is_refused_naming_the_field() {
        let alert = |labels: &str, annotations: &str| {
            format!(
                r#"{{"version":"4","groupKey":"g","status":"firing","commonLabels":{{"a":"b"}},"alerts":[{{"status":"firing","labels":{labels},"annotations":{annotations},"startsAt":"2026-12-01T00:00:00Z","fingerprint":"f1"}}]}}"#
            )
        };
        let cases = [
            (
                alert(r#"{"instance":"web\u00001"}"#, "{}"),
                "alerts[0].labels.instance",
            ),
            (
                alert("{}", r#"{"sum\u0000":"x"}"#),
                "alerts[0].annotations.sum\\u0000",
            ),
        ];
        for (body, field) in cases {
            let Err(PayloadError::Shape(why)) = parse(body.as_bytes()) else {
                panic!("expected a refusal of {body}");
            };
            assert!(why.contains(field), "{why} should name {field}");
            assert!(why.contains("NUL"), "{why}");
        }
        let key = br#"{"version":"4","groupKey":"g\u0000","status":"firing","alerts":[]}"#;
        let Err(PayloadError::Shape(why)) = parse(key) else {
            panic!("expected a refusal");
        };
        assert!(why.contains("`groupKey`"), "{why}");
        assert!(parse(alert(r#"{"instance":"web1"}"#, "{}").as_bytes()).is_ok());
    }
}
