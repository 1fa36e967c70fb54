//! `/metrics query` and `/metrics service` behind the [`Desk`], and the chart of an alert's
//! expression.

use chrono::{DateTime, Utc};

use super::Panel;
use super::chart::{self, MAX_DRAWN, Plot};
use super::prometheus::Series;
use super::range::{parse_range, step_for};
use super::table::{by_value_desc, cut, series_names, table};
use super::units::Unit;
use crate::chat::{Message, Text, TimeStyle};
use crate::desk::{Desk, Invocation};
use crate::error::CommandError;

/// The longest PromQL opsbot accepts (Discord's option limit is set to the same).
pub const PROMQL_MAX: usize = 2000;
/// PromQL quoted in a reply is cut to this many characters.
const QUOTE_MAX: usize = 300;
/// Series named in "+N series not drawn, top by last value: ...".
const NAMED_LEFT_OUT: usize = 5;
/// `/metrics service` without `range`.
const DEFAULT_SERVICE_RANGE: &str = "1h";
/// Most panels in one `/metrics service` image (an incident's services together).
const MAX_SERVICE_PANELS: usize = 8;

/// A PNG to attach.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub filename: String,
    pub png: Vec<u8>,
}

/// The answer to a metrics command: the text, the chart (range queries and panels), and
/// how many series came back.
#[derive(Debug, Clone)]
pub struct MetricsAnswer {
    pub message: Message,
    pub image: Option<Image>,
    pub series: usize,
    /// What the audit event says: the PromQL and the series count.
    detail: String,
}

impl Desk {
    /// Whether `inv`'s actor may query metrics, before a front door shows "thinking…": a
    /// refusal (audited) then stays private instead of filling a public deferred reply.
    pub async fn metrics_admit(&self, inv: &Invocation) -> Result<(), CommandError> {
        self.authorize(inv, "metrics:query", "query metrics").await
    }

    /// `/metrics query promql [range] [step]`: a table of the current values, or with
    /// `range` a chart. Needs `metrics:query`; audited with the PromQL and the series count.
    pub async fn metrics_query(
        &self,
        inv: &Invocation,
        promql: &str,
        range: Option<&str>,
        step: Option<&str>,
    ) -> Result<MetricsAnswer, CommandError> {
        self.authorize(inv, "metrics:query", "query metrics")
            .await?;
        let result = self.answer_query(promql, range, step).await;
        self.conclude(inv, result, |answer| answer.detail.clone())
            .await
    }

    /// `/metrics service name [range]`: the service's panels as small multiples.
    pub async fn metrics_service(
        &self,
        inv: &Invocation,
        service: Option<&str>,
        range: Option<&str>,
    ) -> Result<MetricsAnswer, CommandError> {
        self.authorize(inv, "metrics:query", "query metrics")
            .await?;
        let result = self.answer_service(inv, service, range).await;
        self.conclude(inv, result, |answer| answer.detail.clone())
            .await
    }

    /// A chart of `expr` from `start` to `end` (an alert's expression over the hour before
    /// it fired), or `None` when no series match. Not audited: the caller records what it
    /// does with the chart.
    pub async fn chart_for_expression(
        &self,
        expr: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Option<Image>, CommandError> {
        Ok(self
            .chart_with_count(expr, start, end)
            .await?
            .map(|(image, _)| image))
    }

    /// [`Desk::chart_for_expression`] with how many series matched.
    pub(super) async fn chart_with_count(
        &self,
        expr: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Option<(Image, usize)>, CommandError> {
        let seconds = (end - start).num_seconds().max(60);
        let step = step_for(seconds, None)?;
        let mut series = self.prometheus()?.range(expr, start, end, step).await?;
        if series.is_empty() {
            return Ok(None);
        }
        let count = series.len();
        by_value_desc(&mut series);
        let png = draw_chart(
            cut(expr, QUOTE_MAX),
            Unit::guess(expr),
            series,
            start,
            end,
            step,
        )
        .await?;
        Ok(Some((
            Image {
                filename: "alert.png".to_owned(),
                png,
            },
            count,
        )))
    }

    async fn answer_query(
        &self,
        promql: &str,
        range: Option<&str>,
        step: Option<&str>,
    ) -> Result<MetricsAnswer, CommandError> {
        let promql = checked_promql(promql)?;
        let prometheus = self.prometheus()?;
        let unit = Unit::guess(promql);
        let quoted = cut(promql, QUOTE_MAX);
        let Some(range) = range.filter(|r| !r.trim().is_empty()) else {
            if step.is_some_and(|s| !s.trim().is_empty()) {
                return Err(CommandError::Invalid(
                    "`step` needs a `range`; without one, opsbot shows the current values"
                        .to_owned(),
                ));
            }
            let now = Utc::now();
            let series = prometheus.instant(promql, Some(now)).await?;
            return Ok(instant_answer(promql, &quoted, &unit, series, now));
        };
        let seconds = parse_range(range, prometheus.settings().max_range)?;
        let step = step_for(seconds, step)?;
        let end = Utc::now();
        let start = end - chrono::Duration::seconds(seconds);
        let mut series = prometheus.range(promql, start, end, step).await?;
        let count = series.len();
        let detail = format!("range query {promql} over {}: {count} series", range.trim());
        let mut content = Text::new()
            .code(quoted.clone())
            .plain(format!(" over {}, step {step}s: ", range.trim()))
            .strong(plural(count, "series"));
        if series.is_empty() {
            content = content.plain(" — no series match, so there is nothing to draw.");
            return Ok(MetricsAnswer {
                message: Message::text(content),
                image: None,
                series: 0,
                detail,
            });
        }
        by_value_desc(&mut series);
        if count > MAX_DRAWN {
            content = content.plain(format!(
                "\n+{} series not drawn, top by last value: {}",
                count - MAX_DRAWN,
                left_out(&series[MAX_DRAWN..], &unit)
            ));
        }
        let png = draw_chart(quoted, unit, series, start, end, step).await?;
        Ok(MetricsAnswer {
            message: Message::text(content),
            image: Some(Image {
                filename: "metrics.png".to_owned(),
                png,
            }),
            series: count,
            detail,
        })
    }

    /// The panels `/metrics service` draws: the named service's, or with no name inside an
    /// incident's channel, those of the incident's services (titles prefixed with the service
    /// when there are several), at most [`MAX_SERVICE_PANELS`].
    async fn panels_for(
        &self,
        inv: &Invocation,
        service: Option<&str>,
    ) -> Result<(String, Vec<Panel>), CommandError> {
        let names = self.metrics_services();
        let all = &self.metrics_feature().panels;
        if let Some(service) = service.map(str::trim).filter(|s| !s.is_empty()) {
            return match all.get(service).filter(|p| !p.is_empty()) {
                Some(panels) => Ok((service.to_owned(), panels.clone())),
                None => Err(CommandError::NotFound(format!(
                    "`{}` has no panels; these do: {} (configure them under [[services]] panels)",
                    cut(service, 50),
                    list_or_none(&names)
                ))),
            };
        }
        let incident = match inv.channel_id {
            Some(channel) => crate::incident::in_channel(self, channel).await?,
            None => None,
        };
        let Some((id, services)) = incident else {
            return Err(CommandError::Invalid(format!(
                "name a service (or run this in an incident's channel); these have panels: {}",
                list_or_none(&names)
            )));
        };
        let with_panels: Vec<(&String, &Vec<Panel>)> = services
            .iter()
            .filter_map(|s| all.get(s).filter(|p| !p.is_empty()).map(|p| (s, p)))
            .collect();
        if with_panels.is_empty() {
            return Err(CommandError::NotFound(format!(
                "incident #{id}'s services ({}) have no panels; name one that does: {}",
                list_or_none(&services),
                list_or_none(&names)
            )));
        }
        let several = with_panels.len() > 1;
        let panels = with_panels
            .iter()
            .flat_map(|(service, panels)| {
                panels.iter().map(move |p| Panel {
                    title: if several {
                        format!("{service}: {}", p.title)
                    } else {
                        p.title.clone()
                    },
                    ..p.clone()
                })
            })
            .take(MAX_SERVICE_PANELS)
            .collect();
        let label = format!(
            "incident #{id} ({})",
            with_panels
                .iter()
                .map(|(s, _)| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok((label, panels))
    }

    async fn answer_service(
        &self,
        inv: &Invocation,
        service: Option<&str>,
        range: Option<&str>,
    ) -> Result<MetricsAnswer, CommandError> {
        let (service, panels) = self.panels_for(inv, service).await?;
        let panels = &panels;
        let service = service.as_str();
        let prometheus = self.prometheus()?;
        let range = range
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .unwrap_or(DEFAULT_SERVICE_RANGE);
        let seconds = parse_range(range, prometheus.settings().max_range)?;
        let step = step_for(seconds, None)?;
        let end = Utc::now();
        let start = end - chrono::Duration::seconds(seconds);
        let queries = panels
            .iter()
            .map(|panel| prometheus.range(&panel.promql, start, end, step));
        // At once: each has its own timeout.
        let results = futures_util::future::join_all(queries).await;
        let mut failures = Vec::new();
        let mut drawn = Vec::new();
        let mut total = 0;
        let mut first_error = None;
        for (panel, result) in panels.iter().zip(results) {
            match result {
                Ok(mut series) => {
                    total += series.len();
                    by_value_desc(&mut series);
                    drawn.push((panel.title.clone(), panel.unit.clone(), series));
                }
                Err(error) => {
                    failures.push(format!("{}: {error}", panel.title));
                    drawn.push((
                        format!("{} (failed)", panel.title),
                        panel.unit.clone(),
                        vec![],
                    ));
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error.filter(|_| failures.len() == panels.len()) {
            return Err(error.into());
        }
        let mut content = Text::new().strong(service.to_owned()).plain(format!(
            " over {range}: {} panels, {}",
            panels.len(),
            plural(total, "series")
        ));
        for failure in &failures {
            content = content.plain(format!("\n⚠ {}", cut(failure, 300)));
        }
        let png = tokio::task::spawn_blocking(move || {
            let names: Vec<Vec<String>> = drawn.iter().map(|(_, _, s)| series_names(s)).collect();
            let plots: Vec<Plot<'_>> = drawn
                .iter()
                .zip(&names)
                .map(|((title, unit, series), names)| Plot {
                    title,
                    unit,
                    series,
                    names,
                    start,
                    end,
                    step,
                })
                .collect();
            chart::render_panels(&plots)
        })
        .await
        .map_err(CommandError::internal)?
        .map_err(CommandError::internal)?;
        Ok(MetricsAnswer {
            message: Message::text(content),
            image: Some(Image {
                filename: image_name(service),
                png,
            }),
            series: total,
            detail: format!(
                "service {service} over {range}: {} panels, {total} series",
                panels.len()
            ),
        })
    }
}

fn checked_promql(promql: &str) -> Result<&str, CommandError> {
    let promql = promql.trim();
    if promql.is_empty() {
        return Err(CommandError::Invalid(
            "write a PromQL expression, e.g. `up` or `rate(http_requests_total[5m])`".to_owned(),
        ));
    }
    if promql.chars().count() > PROMQL_MAX {
        return Err(CommandError::Invalid(format!(
            "the expression is longer than {PROMQL_MAX} characters"
        )));
    }
    Ok(promql)
}

fn instant_answer(
    promql: &str,
    quoted: &str,
    unit: &Unit,
    series: Vec<Series>,
    at: DateTime<Utc>,
) -> MetricsAnswer {
    let count = series.len();
    let detail = format!("instant query {promql}: {count} series");
    let mut content = Text::new()
        .code(quoted.to_owned())
        .plain(" at ")
        .time(at, TimeStyle::ShortTime)
        .plain(": ")
        .strong(plural(count, "series"));
    if series.is_empty() {
        content = content.plain(" — no series match.");
    } else {
        let (rows, hidden) = table(&series, unit);
        content = content.block(rows);
        if hidden > 0 {
            content = content.plain(format!("\n+{hidden} more series, smaller values"));
        }
    }
    MetricsAnswer {
        message: Message::text(content),
        image: None,
        series: count,
        detail,
    }
}

async fn draw_chart(
    title: String,
    unit: Unit,
    series: Vec<Series>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    step: i64,
) -> Result<Vec<u8>, CommandError> {
    tokio::task::spawn_blocking(move || {
        let drawn = &series[..series.len().min(MAX_DRAWN)];
        let names = series_names(drawn);
        chart::render(&Plot {
            title: &title,
            unit: &unit,
            series: drawn,
            names: &names,
            start,
            end,
            step,
        })
    })
    .await
    .map_err(CommandError::internal)?
    .map_err(CommandError::internal)
}

fn left_out(series: &[Series], unit: &Unit) -> String {
    let names = series_names(series);
    let mut shown: Vec<String> = series
        .iter()
        .zip(names)
        .take(NAMED_LEFT_OUT)
        .map(|(s, name)| format!("{} ({})", cut(&name, 60), unit.format(s.last_value())))
        .collect();
    if series.len() > NAMED_LEFT_OUT {
        shown.push("…".to_owned());
    }
    shown.join(", ")
}

fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}")
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// A file name from a service name (or an incident label): safe characters only.
fn image_name(label: &str) -> String {
    let name: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name: String = name.trim_matches('_').chars().take(60).collect();
    format!("{name}.png")
}
