//! New alert groups of a batch of webhook deliveries stored together: the common case of a
//! busy Alertmanager (every delivery a group nobody has seen firing yet) in six statements
//! per batch instead of about eight per delivery. What this stores is exactly what
//! [`Desk::store_in`] stores for such a delivery (the group, its alerts, one audit event, the
//! message's outbox row and the group's post reference; `alerts::batch_tests` compares the
//! two); every other delivery — an existing group, a resolve, a group that correlates with a
//! deploy or repeats an occurrence — goes through `store_in` after this, in the same
//! transaction.

use std::collections::HashSet;

use sqlx::PgConnection;

use super::ingest::{After, IngestOutcome, Prepared, WEBHOOK_COMMAND};
use super::payload::{Payload, Status};
use super::routing::Mode;
use super::store::{self, AlertGroup, GROUP_COLUMNS};
use super::view;
use crate::actor::{Actor, Source};
use crate::audit::{self, Outcome};
use crate::desk::{Desk, Invocation};
use crate::error::CommandError;
use crate::outbox;

/// Stores every delivery of `jobs` that opens a new group, as described above; `None` for
/// the others, which the caller stores one by one.
pub(super) async fn store_fresh(
    desk: &Desk,
    tx: &mut PgConnection,
    jobs: &[(&Payload, &Prepared)],
) -> Result<Vec<Option<(IngestOutcome, After)>>, CommandError> {
    let catalog = desk.alerts();
    let mut results: Vec<Option<(IngestOutcome, After)>> = jobs.iter().map(|_| None).collect();
    // Candidates: the first delivery of its group in the batch, posting immediately, every
    // alert firing and a distinct occurrence.
    let mut seen_groups = HashSet::new();
    let mut candidates: Vec<usize> = Vec::new();
    for (i, (payload, prepared)) in jobs.iter().enumerate() {
        let Some(route) = catalog.routes.get(prepared.index) else {
            continue;
        };
        let first = seen_groups.insert((payload.group_key.as_str(), route.channel));
        let mut occurrences = HashSet::new();
        if first
            && route.mode == Mode::Immediate
            && !payload.alerts.is_empty()
            && payload.alerts.iter().all(|a| {
                a.status == Status::Firing
                    && occurrences.insert((&a.fingerprint, a.starts_at.timestamp_micros()))
            })
        {
            candidates.push(i);
        }
    }
    // A group that may correlate with a deploy is left to `store_in`, which correlates.
    let may_correlate = services_deployed(desk, tx, jobs, &candidates).await?;
    candidates.retain(|&i| {
        service_of(desk, jobs[i].0).is_none_or(|service| !may_correlate.contains(service))
    });
    if candidates.is_empty() {
        return Ok(results);
    }
    let created = create_groups(desk, tx, jobs, &candidates).await?;
    // (job, group) for each group created; the others already had a firing group.
    let fresh: Vec<(usize, AlertGroup)> = candidates
        .iter()
        .filter_map(|&i| {
            let channel = catalog.routes[jobs[i].1.index].channel;
            created
                .iter()
                .find(|g| g.group_key == jobs[i].0.group_key && g.channel_id == channel)
                .map(|g| (i, g.clone()))
        })
        .collect();
    if fresh.is_empty() {
        return Ok(results);
    }
    insert_alerts(tx, jobs, &fresh).await?;
    let mut events = Vec::with_capacity(fresh.len());
    let mut messages = Vec::with_capacity(fresh.len());
    let mut overflowing = Vec::new();
    for (i, group) in &fresh {
        let payload = jobs[*i].0;
        let alerts = store::instances_as_stored(&payload.alerts);
        let mut inv = Invocation::new(
            Actor::system(Source::Webhook),
            WEBHOOK_COMMAND,
            serde_json::json!({
            "group_key": payload.group_key,
            "group_id": group.id,
            "status": payload.status.as_str(),
            "alerts": payload.alerts.len(),
            }),
        );
        inv.channel_id = Some(group.channel_id);
        let detail = format!(
            "alert group {} {}: {} new, 0 resolved, {} firing",
            group.id,
            group.status,
            alerts.len(),
            alerts.len()
        );
        metrics::counter!(
            "opsbot_commands_total",
            "command" => WEBHOOK_COMMAND,
            "outcome" => Outcome::Ok.as_str()
        )
        .increment(1);
        events.push(inv.event(Outcome::Ok, detail));
        if view::overflows(group, &alerts) {
            overflowing.push(group.id);
        }
        messages.push(view::group_message(group, &alerts, &jobs[*i].1.mention));
    }
    let event_ids = audit::append_many(&mut *tx, &events).await?;
    let items: Vec<(i64, &crate::chat::Message, Option<i64>)> = fresh
        .iter()
        .zip(&messages)
        .zip(&event_ids)
        .map(|(((_, group), message), event)| (group.channel_id, message, Some(*event)))
        .collect();
    let posts = outbox::enqueue_many(&mut *tx, &items).await?;
    set_posts(tx, &fresh, &posts).await?;
    for id in &overflowing {
        store::want_thread(&mut *tx, *id).await?;
    }
    for ((i, group), post) in fresh.iter().zip(posts) {
        let payload = jobs[*i].0;
        results[*i] = Some((
            IngestOutcome {
                group_id: Some(group.id),
                changed: payload.alerts.len(),
                queued: 1,
            },
            After {
                wake: overflowing.contains(&group.id),
                chart: super::ingest::alert_chart(payload, group, post),
            },
        ));
    }
    Ok(results)
}

/// The service a group's alerts name (`[alerts] service_label`), as correlation reads it.
fn service_of<'p>(desk: &Desk, payload: &'p Payload) -> Option<&'p String> {
    let label = &desk.alerts().service_label;
    payload
        .common_labels
        .get(label)
        .or_else(|| payload.alerts.iter().find_map(|a| a.labels.get(label)))
}

/// The services of the candidates that started a deploy within the correlation window of
/// any candidate (a superset of what correlation would find): one query for the batch.
async fn services_deployed(
    desk: &Desk,
    tx: &mut PgConnection,
    jobs: &[(&Payload, &Prepared)],
    candidates: &[usize],
) -> Result<HashSet<String>, sqlx::Error> {
    let mut services: Vec<String> = Vec::new();
    let mut first = None;
    let mut last = None;
    for &i in candidates {
        let payload = jobs[i].0;
        if let Some(service) = service_of(desk, payload) {
            services.push(service.clone());
        }
        for alert in &payload.alerts {
            first = Some(
                first.map_or(alert.starts_at, |f: chrono::DateTime<chrono::Utc>| {
                    f.min(alert.starts_at)
                }),
            );
            last = Some(
                last.map_or(alert.starts_at, |l: chrono::DateTime<chrono::Utc>| {
                    l.max(alert.starts_at)
                }),
            );
        }
    }
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(HashSet::new());
    };
    if services.is_empty() {
        return Ok(HashSet::new());
    }
    let window = chrono::Duration::from_std(desk.alerts().correlate_window)
        .unwrap_or(chrono::Duration::minutes(30));
    let found: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT service FROM deploys
         WHERE service = ANY($1) AND started_at BETWEEN $2 AND $3 AND state IN ('running', 'succeeded')",
    )
    .bind(services)
    .bind(first - window)
    .bind(last)
    .fetch_all(&mut *tx)
    .await?;
    Ok(found.into_iter().collect())
}

/// Creates the candidates' groups; those that already have a firing group are not returned.
async fn create_groups(
    desk: &Desk,
    tx: &mut PgConnection,
    jobs: &[(&Payload, &Prepared)],
    candidates: &[usize],
) -> Result<Vec<AlertGroup>, sqlx::Error> {
    let routes = &desk.alerts().routes;
    let mut keys = Vec::new();
    let mut channels = Vec::new();
    let mut receivers = Vec::new();
    let mut group_labels = Vec::new();
    let mut common_labels = Vec::new();
    let mut common_annotations = Vec::new();
    let mut urls = Vec::new();
    let mut route_indexes = Vec::new();
    for &i in candidates {
        let (payload, prepared) = jobs[i];
        keys.push(payload.group_key.clone());
        channels.push(routes[prepared.index].channel);
        receivers.push(payload.receiver.clone());
        group_labels.push(serde_json::json!(payload.group_labels));
        common_labels.push(serde_json::json!(payload.common_labels));
        common_annotations.push(serde_json::json!(payload.common_annotations));
        urls.push(payload.external_url.clone());
        route_indexes.push(i32::try_from(prepared.index).unwrap_or(i32::MAX));
    }
    let insert = format!(
        "INSERT INTO alert_groups (group_key, channel_id, status, receiver, group_labels, common_labels, \
         common_annotations, external_url, route_index) \
         SELECT k, c, 'firing', r, gl, cl, ca, u, ri \
         FROM unnest($1::text[], $2::bigint[], $3::text[], $4::jsonb[], $5::jsonb[], $6::jsonb[], $7::text[], $8::int[]) \
              WITH ORDINALITY AS t(k, c, r, gl, cl, ca, u, ri, n) \
         ORDER BY n \
         ON CONFLICT (group_key, channel_id) WHERE status = 'firing' DO NOTHING RETURNING {GROUP_COLUMNS}"
    );
    sqlx::query_as::<_, AlertGroup>(sqlx::AssertSqlSafe(insert))
        .bind(keys)
        .bind(channels)
        .bind(receivers)
        .bind(group_labels)
        .bind(common_labels)
        .bind(common_annotations)
        .bind(urls)
        .bind(route_indexes)
        .fetch_all(&mut *tx)
        .await
}

/// Every alert of the new groups, in one statement.
async fn insert_alerts(
    tx: &mut PgConnection,
    jobs: &[(&Payload, &Prepared)],
    fresh: &[(usize, AlertGroup)],
) -> Result<(), sqlx::Error> {
    let mut groups = Vec::new();
    let mut fingerprints = Vec::new();
    let mut starts = Vec::new();
    let mut statuses = Vec::new();
    let mut ends = Vec::new();
    let mut labels = Vec::new();
    let mut annotations = Vec::new();
    let mut generators = Vec::new();
    for (i, group) in fresh {
        for alert in &jobs[*i].0.alerts {
            groups.push(group.id);
            fingerprints.push(alert.fingerprint.as_str());
            starts.push(alert.starts_at);
            statuses.push(alert.status.as_str());
            ends.push(alert.ends_at);
            labels.push(sqlx::types::Json(&alert.labels));
            annotations.push(sqlx::types::Json(&alert.annotations));
            generators.push(alert.generator_url.as_str());
        }
    }
    sqlx::query(
        "INSERT INTO alert_instances (group_id, fingerprint, starts_at, status, ends_at, labels, annotations, generator_url)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[], $5::timestamptz[], $6::jsonb[], $7::jsonb[], $8::text[])",
    )
    .bind(groups)
    .bind(fingerprints)
    .bind(starts)
    .bind(statuses)
    .bind(ends)
    .bind(labels)
    .bind(annotations)
    .bind(generators)
    .execute(&mut *tx)
    .await
    .map(|_| ())
}

async fn set_posts(
    tx: &mut PgConnection,
    fresh: &[(usize, AlertGroup)],
    posts: &[i64],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE alert_groups g SET post_outbox_id = v.post
         FROM unnest($1::bigint[], $2::bigint[]) AS v(id, post) WHERE g.id = v.id",
    )
    .bind(fresh.iter().map(|(_, g)| g.id).collect::<Vec<_>>())
    .bind(posts)
    .execute(&mut *tx)
    .await
    .map(|_| ())
}
