//! A chart on every alert: when an alert group's message is first queued, and an alert's
//! `generatorURL` carries its rule's expression (`g0.expr`, as Prometheus writes it), the
//! expression is drawn over the hour before the alert started, in the background, and
//! attached to the message by an outbox edit that waits for the post. The post itself never
//! waits for Prometheus; one that cannot be reached leaves the message without a chart (and an
//! audit event saying why), never without the alert.

use chrono::{DateTime, Utc};

use crate::actor::{Actor, Source};
use crate::audit::Outcome;
use crate::desk::{Desk, Invocation, record_in};
use crate::outbox::{self, Attachment};

/// The audit command of a chart drawn for an alert.
pub const ALERT_CHART_COMMAND: &str = "alerts chart";
/// How far back the chart of an alert reaches from its start.
const BEFORE_START: chrono::Duration = chrono::Duration::hours(1);

/// What to draw for a newly posted alert group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertChart {
    pub group_id: i64,
    pub channel_id: i64,
    /// The outbox row that posts the group's message.
    pub post: i64,
    pub expr: String,
    pub starts_at: DateTime<Utc>,
}

/// The rule's expression in a Prometheus `generatorURL` (`.../graph?g0.expr=...&g0.tab=1`).
pub fn expression_of(generator_url: &str) -> Option<String> {
    let url = reqwest::Url::parse(generator_url).ok()?;
    url.query_pairs()
        .find(|(key, _)| key == "g0.expr")
        .map(|(_, value)| value.trim().to_owned())
        .filter(|expr| !expr.is_empty() && expr.chars().count() <= super::PROMQL_MAX)
}

impl Desk {
    /// Draws and attaches `chart` in the background, if a Prometheus is configured. Call it
    /// after the transaction that queued the post has committed.
    pub(crate) fn chart_alert_later(&self, chart: AlertChart) {
        if self.metrics_configured() {
            let desk = self.clone();
            tokio::spawn(async move { desk.attach_alert_chart(chart).await });
        }
    }

    /// Draws the chart of `chart` and queues the edit that attaches it; audited either way
    /// (`alerts chart`: `ok` with the series count, or `error` with why there is no chart).
    pub async fn attach_alert_chart(&self, chart: AlertChart) {
        let mut inv = Invocation::new(
            Actor::system(Source::Webhook),
            ALERT_CHART_COMMAND,
            serde_json::json!({ "group_id": chart.group_id, "promql": chart.expr }),
        );
        inv.channel_id = Some(chart.channel_id);
        let start = chart.starts_at - BEFORE_START;
        let drawn = self
            .chart_with_count(&chart.expr, start, chart.starts_at)
            .await;
        let result = async {
            let mut tx = self.pool.begin().await?;
            match drawn {
                Ok(Some((image, series))) => {
                    let detail = format!(
                        "chart of {} over the hour before alert group {} started: {series} series",
                        chart.expr, chart.group_id
                    );
                    let event = record_in(&mut *tx, &inv, Outcome::Ok, &detail).await?;
                    let attachment = Attachment {
                        filename: image.filename,
                        bytes: image.png,
                    };
                    outbox::enqueue_attachment_of(
                        &mut tx,
                        chart.channel_id,
                        chart.post,
                        &attachment,
                        Some(event),
                    )
                    .await?;
                }
                Ok(None) => {
                    let detail = format!(
                        "no chart for alert group {}: no series match {} in the hour before it started",
                        chart.group_id, chart.expr
                    );
                    record_in(&mut *tx, &inv, Outcome::Ok, &detail).await?;
                }
                Err(error) => {
                    let detail = format!("no chart for alert group {}: {error}", chart.group_id);
                    record_in(&mut *tx, &inv, error.outcome(), &detail).await?;
                }
            }
            tx.commit().await?;
            Ok::<(), crate::error::CommandError>(())
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(group_id = chart.group_id, error = %error, "could not record an alert's chart");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::expression_of;

    #[test]
    fn the_expression_comes_from_g0_expr() {
        assert_eq!(
            expression_of(
                "http://prometheus:9090/graph?g0.expr=rate%28http_errors_total%5B5m%5D%29+%3E+0.1&g0.tab=1"
            )
            .as_deref(),
            Some("rate(http_errors_total[5m]) > 0.1")
        );
        assert_eq!(expression_of("http://prometheus:9090/graph?g0.tab=1"), None);
        assert_eq!(expression_of("http://prometheus:9090/graph?g0.expr="), None);
        assert_eq!(expression_of("not a url"), None);
        assert_eq!(expression_of(""), None);
    }
}
