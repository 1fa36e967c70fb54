//! Metrics from chat: PromQL answered as tables and charts, without leaving the channel.
//!
//! ```text
//! /metrics query promql:<PromQL> [range:15m|6h|2d] [step:30s]
//! /metrics service name:<service> [range:1h]
//! ```
//!
//! Both need `metrics:query`. Without `range`, `query` runs an instant query and answers with
//! a table of the top series by value ([`table`]); with `range`, a range query answered with
//! a PNG line chart ([`chart`]); `step` defaults to about 250 points. `service` draws the
//! panels configured for the service (`[[services]] panels = [{ title, promql, unit }]`) as
//! small multiples in one image. Prometheus is `[prometheus]` ([`prometheus`]); its errors
//! (bad PromQL, timeouts, an unreachable server, a result too large) each read on their own.
//! Every query is audited with its PromQL and how many series it returned.
//! [`Desk::chart_for_expression`] draws a chart for an alert's expression, and
//! [`alert_chart`] attaches one to every alert whose rule's expression is known.

pub mod alert_chart;
pub mod chart;
mod commands;
pub mod prometheus;
pub mod range;
pub mod table;
pub mod units;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use commands::{Image, MetricsAnswer, PROMQL_MAX};
pub use prometheus::{Prometheus, PrometheusAuth, PrometheusError, PrometheusSettings, Series};
pub use units::Unit;

use crate::desk::Desk;
use crate::error::CommandError;

/// How long the list of metric names (for autocomplete) is reused before it is asked again.
pub const NAMES_CACHE_TTL: Duration = Duration::from_secs(300);

/// One panel of a service: `{ title, promql, unit }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub title: String,
    pub promql: String,
    pub unit: Unit,
}

/// Everything the metrics feature knows from the config.
#[derive(Debug, Clone, Default)]
pub struct MetricsCatalog {
    /// `[prometheus]`; `None` when not configured (the commands say so).
    pub prometheus: Option<PrometheusSettings>,
    /// `[[services]] panels`, by service name (every configured service has an entry).
    pub panels: BTreeMap<String, Vec<Panel>>,
}

/// The metrics feature's state on the [`Desk`].
#[derive(Debug, Default)]
struct MetricsFeature {
    client: Option<Prometheus>,
    panels: BTreeMap<String, Vec<Panel>>,
    names: Mutex<Option<(Instant, std::sync::Arc<Vec<String>>)>>,
}

static NO_METRICS: std::sync::LazyLock<MetricsFeature> =
    std::sync::LazyLock::new(MetricsFeature::default);

impl Desk {
    /// Registers what the config says about metrics.
    pub fn with_metrics(self, catalog: MetricsCatalog) -> Result<Desk, CommandError> {
        let client = catalog.prometheus.map(Prometheus::new).transpose()?;
        Ok(self.with_feature(MetricsFeature {
            client,
            panels: catalog.panels,
            names: Mutex::new(None),
        }))
    }

    fn metrics_feature(&self) -> &MetricsFeature {
        self.feature::<MetricsFeature>().unwrap_or(&NO_METRICS)
    }

    /// Whether a Prometheus is configured.
    pub fn metrics_configured(&self) -> bool {
        self.metrics_feature().client.is_some()
    }

    fn prometheus(&self) -> Result<&Prometheus, CommandError> {
        self.metrics_feature().client.as_ref().ok_or_else(|| {
            CommandError::Unavailable(
                "no Prometheus is configured; set [prometheus] url in opsbot's config".to_owned(),
            )
        })
    }

    /// The services that have panels, sorted (autocomplete).
    pub fn metrics_services(&self) -> Vec<String> {
        self.metrics_feature()
            .panels
            .iter()
            .filter(|(_, panels)| !panels.is_empty())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Metric names containing `partial` (autocomplete), from a list cached for
    /// [`NAMES_CACHE_TTL`]; empty when Prometheus cannot be asked.
    pub async fn metric_names_matching(&self, partial: &str, limit: usize) -> Vec<String> {
        let feature = self.metrics_feature();
        let Some(client) = &feature.client else {
            return Vec::new();
        };
        let cached = feature
            .names
            .lock()
            .ok()
            .and_then(|guard| guard.clone())
            .filter(|(at, _)| at.elapsed() < NAMES_CACHE_TTL)
            .map(|(_, names)| names);
        let names = match cached {
            Some(names) => names,
            None => match client.metric_names().await {
                Ok(names) => {
                    let names = std::sync::Arc::new(names);
                    if let Ok(mut guard) = feature.names.lock() {
                        *guard = Some((Instant::now(), names.clone()));
                    }
                    names
                }
                Err(error) => {
                    tracing::debug!(error = %error, "metric names for autocomplete");
                    return Vec::new();
                }
            },
        };
        let partial = partial.to_ascii_lowercase();
        let mut found: Vec<String> = names
            .iter()
            .filter(|n| n.to_ascii_lowercase().starts_with(&partial))
            .take(limit)
            .cloned()
            .collect();
        if found.len() < limit {
            found.extend(
                names
                    .iter()
                    .filter(|n| {
                        let lower = n.to_ascii_lowercase();
                        !lower.starts_with(&partial) && lower.contains(&partial)
                    })
                    .take(limit - found.len())
                    .cloned(),
            );
        }
        found
    }
}
