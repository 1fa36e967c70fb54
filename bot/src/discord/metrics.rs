//! `/metrics query promql:<PromQL> [range:] [step:]` and `/metrics service [name:] [range:]`.
//!
//! Both reply deferred (Prometheus may take seconds; Discord wants an answer within three) and
//! need `metrics:query`, checked before the deferral so a refusal stays private. Without `range` a query answers with a table; with `range`, and for
//! `service`, the reply carries a PNG chart. Inside an incident's channel `service` without a
//! name draws the incident's services. `promql` completes metric names (cached by the domain),
//! `name` the services that have panels.

use opsbot_commands::metrics::{MetricsAnswer, PROMQL_MAX};
use poise::serenity_prelude as serenity;

use super::autocomplete::{self, CHOICES_MAX};
use super::{Context, Error, invocation, render};

/// PromQL answered as tables and charts
#[poise::command(
    slash_command,
    guild_only,
    subcommands("query", "service"),
    subcommand_required
)]
pub async fn metrics(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Run PromQL: current values as a table, or with a range a chart (needs metrics:query)
#[poise::command(slash_command, guild_only)]
pub async fn query(
    ctx: Context<'_>,
    #[description = "A PromQL expression, e.g. rate(http_requests_total[5m])"]
    #[autocomplete = "complete_promql"]
    #[max_length = 2000]
    promql: String,
    #[description = "Draw a chart over this much time: 15m, 6h, 2d"]
    #[max_length = 16]
    range: Option<String>,
    #[description = "Seconds between points (default: about 250 points): 30s, 5m"]
    #[max_length = 16]
    step: Option<String>,
) -> Result<(), Error> {
    const _: () = assert!(PROMQL_MAX == 2000, "the option's max_length is PROMQL_MAX");
    let inv = invocation(ctx).await;
    ctx.data().desk.metrics_admit(&inv).await?;
    ctx.defer().await.map_err(Error::internal)?;
    let answer = ctx
        .data()
        .desk
        .metrics_query(&inv, &promql, range.as_deref(), step.as_deref())
        .await?;
    send(ctx, answer).await
}

/// A service's panels in one image; in an incident channel, its services (needs metrics:query)
#[poise::command(slash_command, guild_only)]
pub async fn service(
    ctx: Context<'_>,
    #[description = "The service (implied in an incident's channel)"]
    #[autocomplete = "complete_service"]
    #[max_length = 100]
    name: Option<String>,
    #[description = "How much time to draw (default 1h): 15m, 6h, 2d"]
    #[max_length = 16]
    range: Option<String>,
) -> Result<(), Error> {
    let inv = invocation(ctx).await;
    ctx.data().desk.metrics_admit(&inv).await?;
    ctx.defer().await.map_err(Error::internal)?;
    let answer = ctx
        .data()
        .desk
        .metrics_service(&inv, name.as_deref(), range.as_deref())
        .await?;
    send(ctx, answer).await
}

async fn send(ctx: Context<'_>, answer: MetricsAnswer) -> Result<(), Error> {
    let mut reply = render::reply(&answer.message);
    if let Some(image) = answer.image {
        reply = reply.attachment(serenity::CreateAttachment::bytes(image.png, image.filename));
    }
    ctx.send(reply).await.map_err(Error::internal)?;
    Ok(())
}

/// Completes the metric name being typed at the end of the expression: `rate(http_re` offers
/// `rate(http_requests_total`, ...
async fn complete_promql(ctx: Context<'_>, partial: &str) -> serenity::CreateAutocompleteResponse {
    let (before, word) = split_last_name(partial);
    let names = ctx
        .data()
        .desk
        .metric_names_matching(word, CHOICES_MAX)
        .await;
    autocomplete::exactly(names.into_iter().map(|name| format!("{before}{name}")))
}

/// `partial` split before the metric name it ends with (letters, digits, `_`, `:`).
fn split_last_name(partial: &str) -> (&str, &str) {
    let at = partial
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == ':'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    partial.split_at(at)
}

async fn complete_service(ctx: Context<'_>, partial: &str) -> serenity::CreateAutocompleteResponse {
    autocomplete::choices(ctx.data().desk.metrics_services(), partial)
}

#[cfg(test)]
mod tests {
    use super::split_last_name;

    #[test]
    fn the_name_being_typed_is_the_tail() {
        assert_eq!(split_last_name("rate(http_re"), ("rate(", "http_re"));
        assert_eq!(split_last_name("up"), ("", "up"));
        assert_eq!(
            split_last_name("sum by (job) (node:cpu"),
            ("sum by (job) (", "node:cpu")
        );
        assert_eq!(split_last_name("a + "), ("a + ", ""));
        assert_eq!(split_last_name("é_x"), ("é", "_x"));
    }
}
