//! The Prometheus HTTP API client (`/api/v1/query`, `/api/v1/query_range`,
//! `/api/v1/label/__name__/values`), and each way a query can fail, in words for the person
//! who asked.

use std::collections::BTreeMap;
use std::time::Duration;

pub use crate::http_client::Auth as PrometheusAuth;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::error::CommandError;

/// The largest answer opsbot reads from Prometheus; a bigger one is "too large".
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Most series a range query may return (only 10 are drawn; the rest are summarised).
pub const MAX_RANGE_SERIES: usize = 500;
/// Prometheus refuses more than 11,000 points per series; opsbot stays below.
pub const MAX_POINTS: i64 = 11_000;

/// `[prometheus]`, as the domain needs it.
#[derive(Debug, Clone)]
pub struct PrometheusSettings {
    /// Base URL without a trailing `/`, e.g. `http://127.0.0.1:9090`.
    pub url: String,
    pub timeout: Duration,
    /// The longest `range` a query may ask for.
    pub max_range: Duration,
    pub auth: PrometheusAuth,
}

/// One series: its labels (`__name__` included when Prometheus gives it) and samples
/// (unix seconds, value).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub samples: Vec<(f64, f64)>,
}

impl Series {
    pub fn metric_name(&self) -> Option<&str> {
        self.labels.get("__name__").map(String::as_str)
    }

    /// The last sample's value that is a number (NaN otherwise).
    pub fn last_value(&self) -> f64 {
        self.samples
            .iter()
            .rev()
            .map(|(_, v)| *v)
            .find(|v| v.is_finite())
            .unwrap_or(f64::NAN)
    }
}

/// What went wrong talking to Prometheus.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    /// Prometheus refused the query (bad PromQL, too many points, ...): its own words.
    #[error("Prometheus refused the query: {0}")]
    Refused(String),
    #[error(
        "Prometheus did not answer within {}; try a shorter range or a simpler query",
        humantime::format_duration(*.0)
    )]
    Timeout(Duration),
    #[error("Prometheus at {url} cannot be reached ({reason}); is it running?")]
    Unreachable { url: String, reason: String },
    #[error("the result is too large ({0}); narrow the query with label matchers or topk()")]
    TooLarge(String),
    #[error(
        "Prometheus rejected opsbot's credentials (HTTP {0}); check [prometheus] in the config"
    )]
    Unauthorized(u16),
    #[error("Prometheus answered something opsbot does not understand: {0}")]
    Unexpected(String),
}

impl From<PrometheusError> for CommandError {
    fn from(error: PrometheusError) -> CommandError {
        match error {
            PrometheusError::Refused(_) | PrometheusError::TooLarge(_) => {
                CommandError::Invalid(error.to_string())
            }
            _ => CommandError::Unavailable(error.to_string()),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<serde_json::Value>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum QueryData {
    Vector(Vec<VectorSample>),
    Matrix(Vec<MatrixSeries>),
    Scalar((f64, String)),
    String((f64, String)),
}

#[derive(Debug, Deserialize)]
struct VectorSample {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

#[derive(Debug, Deserialize)]
struct MatrixSeries {
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

fn number(text: &str) -> f64 {
    match text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().unwrap_or(f64::NAN),
    }
}

/// A client for one Prometheus.
#[derive(Debug, Clone)]
pub struct Prometheus {
    settings: PrometheusSettings,
    http: reqwest::Client,
}

impl Prometheus {
    pub fn new(settings: PrometheusSettings) -> Result<Prometheus, CommandError> {
        let http = crate::http_client::client(settings.timeout)?;
        Ok(Prometheus { settings, http })
    }

    pub fn settings(&self) -> &PrometheusSettings {
        &self.settings
    }

    /// An instant query at `at` (now when `None`).
    pub async fn instant(
        &self,
        query: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Series>, PrometheusError> {
        let mut params = vec![
            ("query", query.to_owned()),
            ("timeout", self.timeout_param()),
        ];
        if let Some(at) = at {
            params.push(("time", at.timestamp().to_string()));
        }
        let data = self.get("/api/v1/query", &params).await?;
        match data {
            QueryData::Vector(samples) => Ok(samples
                .into_iter()
                .map(|s| Series {
                    labels: s.metric,
                    samples: vec![(s.value.0, number(&s.value.1))],
                })
                .collect()),
            QueryData::Scalar((t, v)) => Ok(vec![Series {
                labels: BTreeMap::new(),
                samples: vec![(t, number(&v))],
            }]),
            QueryData::Matrix(series) => Ok(matrix(series)),
            QueryData::String((_, text)) => Err(PrometheusError::Refused(format!(
                "the query returns the string {text:?}, not numbers"
            ))),
        }
    }

    /// A range query from `start` to `end` every `step` seconds.
    pub async fn range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: i64,
    ) -> Result<Vec<Series>, PrometheusError> {
        let params = [
            ("query", query.to_owned()),
            ("start", start.timestamp().to_string()),
            ("end", end.timestamp().to_string()),
            ("step", step.to_string()),
            ("timeout", self.timeout_param()),
        ];
        match self.get("/api/v1/query_range", &params).await? {
            QueryData::Matrix(series) if series.len() > MAX_RANGE_SERIES => {
                Err(PrometheusError::TooLarge(format!(
                    "{} series, opsbot charts at most {MAX_RANGE_SERIES}",
                    series.len()
                )))
            }
            QueryData::Matrix(series) => Ok(matrix(series)),
            _ => Err(PrometheusError::Unexpected(
                "a range query that did not return a matrix".to_owned(),
            )),
        }
    }

    /// Every metric name Prometheus knows.
    pub async fn metric_names(&self) -> Result<Vec<String>, PrometheusError> {
        // Label values are GET only (queries take POST too).
        let value = self
            .get_raw(reqwest::Method::GET, "/api/v1/label/__name__/values", &[])
            .await?;
        serde_json::from_value(value).map_err(|e| PrometheusError::Unexpected(e.to_string()))
    }

    fn timeout_param(&self) -> String {
        format!("{}ms", self.settings.timeout.as_millis())
    }

    async fn get(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<QueryData, PrometheusError> {
        let value = self.get_raw(reqwest::Method::POST, path, params).await?;
        serde_json::from_value(value).map_err(|e| PrometheusError::Unexpected(e.to_string()))
    }

    async fn get_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<serde_json::Value, PrometheusError> {
        let url = format!("{}{path}", self.settings.url);
        // Queries POST a form body: long PromQL does not fit a URL, and Prometheus takes both.
        let mut request = if method == reqwest::Method::GET {
            self.http.get(&url).query(params)
        } else {
            self.http.post(&url).form(params)
        };
        request = self.settings.auth.apply(request);
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        if matches!(status.as_u16(), 401 | 403) {
            return Err(PrometheusError::Unauthorized(status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(PrometheusError::TooLarge(
                "more than 16 MiB of samples".to_owned(),
            ));
        }
        let body = read_limited(response)
            .await
            .map_err(|e| self.transport(e))?;
        let Some(body) = body else {
            return Err(PrometheusError::TooLarge(
                "more than 16 MiB of samples".to_owned(),
            ));
        };
        let envelope: Envelope = serde_json::from_slice(&body).map_err(|_| {
            PrometheusError::Unexpected(format!(
                "HTTP {status} without Prometheus's JSON (is {} a Prometheus?)",
                self.settings.url
            ))
        })?;
        if envelope.status != "success" {
            let text = envelope
                .error
                .unwrap_or_else(|| "no reason given".to_owned());
            return Err(match envelope.error_type.as_deref() {
                Some("timeout") | Some("canceled") => {
                    PrometheusError::Timeout(self.settings.timeout)
                }
                _ if text.contains("exceeded maximum resolution")
                    || text.contains("query processing would load too many samples") =>
                {
                    PrometheusError::TooLarge(text)
                }
                _ => PrometheusError::Refused(text),
            });
        }
        envelope
            .data
            .ok_or_else(|| PrometheusError::Unexpected("no data in a successful answer".to_owned()))
    }

    fn transport(&self, error: reqwest::Error) -> PrometheusError {
        if error.is_timeout() {
            return PrometheusError::Timeout(self.settings.timeout);
        }
        let reason = if error.is_connect() {
            "connection refused or no route".to_owned()
        } else {
            crate::error::causes(&error).unwrap_or_else(|| "the connection failed".to_owned())
        };
        PrometheusError::Unreachable {
            url: self.settings.url.clone(),
            reason,
        }
    }
}

/// The body, or `None` when it exceeds [`MAX_BODY_BYTES`].
async fn read_limited(mut response: reqwest::Response) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

fn matrix(series: Vec<MatrixSeries>) -> Vec<Series> {
    series
        .into_iter()
        .map(|s| Series {
            labels: s.metric,
            samples: s.values.iter().map(|(t, v)| (*t, number(v))).collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_numbers_include_infinities_and_nan() {
        assert_eq!(number("1.5"), 1.5);
        assert_eq!(number("+Inf"), f64::INFINITY);
        assert!(number("NaN").is_nan());
    }

    #[test]
    fn vector_and_matrix_answers_decode() {
        let vector: QueryData = serde_json::from_str(
            r#"{"resultType":"vector","result":[{"metric":{"job":"a"},"value":[1.5,"2"]}]}"#,
        )
        .expect("vector");
        assert!(matches!(vector, QueryData::Vector(v) if v[0].value.1 == "2"));
        let scalar: QueryData =
            serde_json::from_str(r#"{"resultType":"scalar","result":[1.5,"3"]}"#).expect("scalar");
        assert!(matches!(scalar, QueryData::Scalar((_, v)) if v == "3"));
    }

    fn client(url: &str, auth: PrometheusAuth) -> Prometheus {
        Prometheus::new(PrometheusSettings {
            url: url.to_owned(),
            timeout: Duration::from_secs(5),
            max_range: Duration::from_secs(86400),
            auth,
        })
        .expect("client")
    }

    #[tokio::test]
    async fn credentials_are_sent_and_a_refusal_names_them() {
        use wiremock::matchers::{header, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        let empty = serde_json::json!({
            "status": "success",
            "data": { "resultType": "vector", "result": [] },
        });
        Mock::given(method("POST"))
            .and(path("/api/v1/query"))
            .and(header("authorization", "Bearer t0k3n"))
            .respond_with(ResponseTemplate::new(200).set_body_json(&empty))
            .mount(&server)
            .await;
        // "opsbot:s3cret" in base64.
        Mock::given(method("POST"))
            .and(path("/api/v1/query"))
            .and(header("authorization", "Basic b3BzYm90OnMzY3JldA=="))
            .respond_with(ResponseTemplate::new(200).set_body_json(&empty))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/v1/query"))
            .respond_with(ResponseTemplate::new(401))
            .mount(&server)
            .await;
        let bearer = client(&server.uri(), PrometheusAuth::Bearer("t0k3n".into()));
        assert_eq!(bearer.instant("up", None).await.expect("bearer"), vec![]);
        let basic = client(
            &server.uri(),
            PrometheusAuth::Basic {
                username: "opsbot".to_owned(),
                password: "s3cret".into(),
            },
        );
        assert_eq!(basic.instant("up", None).await.expect("basic"), vec![]);
        let wrong = client(&server.uri(), PrometheusAuth::Bearer("wrong".into()));
        let refused = wrong.instant("up", None).await.expect_err("401");
        assert!(
            matches!(refused, PrometheusError::Unauthorized(401)),
            "{refused}"
        );
        assert!(refused.to_string().contains("credentials"), "{refused}");
        assert!(
            !format!("{wrong:?}").contains("wrong"),
            "the token is not in Debug"
        );
    }
}
