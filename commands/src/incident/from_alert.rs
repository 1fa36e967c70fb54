//! **Declare incident** on an alert message (the button under every firing group that has no
//! incident yet): it opens the declare form pre-filled from the group — title from the
//! alert's name and summary, severity when the alert's `severity` label names a configured
//! one, services from the `[alerts] service_label` when it names a known service, and a
//! description listing what fires. Submitting declares exactly as `/incident declare` does
//! (`incident:declare`, audited under `incident declare`), and in the same transaction links
//! the group: the incident's timeline starts with it, and the alert message names the
//! incident (with a link to its channel once that exists) instead of offering the button.

use sqlx::PgConnection;

use super::store;
use crate::alerts::store as alert_store;
use crate::alerts::view as alert_view;
use crate::desk::{Desk, Invocation};
use crate::error::CommandError;
use crate::outbox;

/// What the form opens with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeclareDefaults {
    pub title: String,
    pub severity: String,
    pub services: String,
    pub description: String,
}

/// The form's limits (those of `/incident declare`'s options).
const TITLE_MAX: usize = 100;
const DESCRIPTION_MAX: usize = 1000;
/// Alerts listed in the pre-filled description.
const LISTED: usize = 5;

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

impl Desk {
    /// The Declare incident button: checks `incident:declare` (a denial is audited) and that
    /// the group can still be declared, and returns what the form opens with.
    pub async fn alert_declare_form(
        &self,
        inv: &Invocation,
        group_id: i64,
    ) -> Result<DeclareDefaults, CommandError> {
        self.authorize(inv, "incident:declare", "declare incidents")
            .await?;
        let group = match self.declarable_group(group_id).await {
            Ok(group) => group,
            Err(e) => return Err(self.refuse(inv, e).await),
        };
        let alerts = alert_store::instances(&self.pool, group.id).await?;
        Ok(self.defaults_of(&group, &alerts))
    }

    /// The group, if an incident can be declared from it now.
    pub(super) async fn declarable_group(
        &self,
        group_id: i64,
    ) -> Result<alert_store::AlertGroup, CommandError> {
        let Some(group) = alert_store::group(&self.pool, group_id).await? else {
            return Err(CommandError::NotFound(format!(
                "alert group {group_id} does not exist (any more)"
            )));
        };
        if let Some(incident) = &group.incident {
            return Err(CommandError::Conflict(format!(
                "alert group {group_id} is already incident #{} ({}): add to that one instead",
                incident.0.id,
                super::channel_name(incident.0.id, &incident.0.slug)
            )));
        }
        if !group.is_firing() {
            return Err(CommandError::Conflict(format!(
                "alert group {group_id} has resolved; declare with /incident declare if it still matters"
            )));
        }
        Ok(group)
    }

    /// The roles the route of `group` mentions (what its message shows while it fires).
    pub(super) async fn group_mentions(&self, group: &alert_store::AlertGroup) -> Vec<i64> {
        match usize::try_from(group.route_index) {
            Ok(index) => self.route_mentions(index).await,
            Err(_) => Vec::new(),
        }
    }

    fn defaults_of(
        &self,
        group: &alert_store::AlertGroup,
        alerts: &[alert_store::AlertInstance],
    ) -> DeclareDefaults {
        let label = |key: &str| {
            group
                .common_labels
                .0
                .get(key)
                .cloned()
                .or_else(|| alerts.iter().find_map(|a| a.labels.0.get(key).cloned()))
        };
        let name = label("alertname").unwrap_or_else(|| "alert".to_owned());
        let summary = group
            .common_annotations
            .0
            .get("summary")
            .cloned()
            .or_else(|| {
                alerts
                    .iter()
                    .find_map(|a| a.annotations.0.get("summary").cloned())
            });
        let title = match summary {
            Some(summary) if !summary.trim().is_empty() => format!("{name}: {}", summary.trim()),
            _ => format!("{name} firing"),
        };
        let severity = label("severity")
            .filter(|s| self.incidents().severity(s).is_ok())
            .unwrap_or_default();
        let services = label(&self.alerts().service_label)
            .filter(|s| {
                let known = &self.deploys().services;
                known.is_empty() || known.contains_key(s)
            })
            .unwrap_or_default();
        let firing: Vec<&alert_store::AlertInstance> =
            alerts.iter().filter(|a| a.is_firing()).collect();
        let mut description = format!(
            "Declared from alert group {} ({} firing).",
            group.id,
            firing.len()
        );
        for alert in firing.iter().take(LISTED) {
            let instance = alert
                .labels
                .0
                .get("instance")
                .cloned()
                .unwrap_or_else(|| alert.fingerprint.clone());
            description.push_str(&format!(
                "\n- {instance} since {}",
                alert.starts_at.format("%Y-%m-%d %H:%M UTC")
            ));
        }
        if firing.len() > LISTED {
            description.push_str(&format!("\n- and {} more", firing.len() - LISTED));
        }
        DeclareDefaults {
            title: clip(&title, TITLE_MAX),
            severity,
            services,
            description: clip(&description, DESCRIPTION_MAX),
        }
    }
}

/// Links `group_id` to the incident being declared in `tx`: the timeline's first alert
/// entry, and an edit of the alert message naming the incident (`mention`: the roles its
/// route mentions, so the edit keeps them). Fails (and so the whole declare) when another
/// incident took the group meanwhile.
pub(super) async fn link_in(
    tx: &mut PgConnection,
    mention: &[i64],
    incident_id: i64,
    group_id: i64,
    actor: (i64, &str),
    event_id: i64,
) -> Result<(), CommandError> {
    let linked = sqlx::query_scalar::<_, i64>(
        "UPDATE alert_groups SET incident_id = $1, updated_at = now()
         WHERE id = $2 AND incident_id IS NULL RETURNING id",
    )
    .bind(incident_id)
    .bind(group_id)
    .fetch_optional(&mut *tx)
    .await?;
    if linked.is_none() {
        return Err(CommandError::Conflict(format!(
            "alert group {group_id} was declared as another incident meanwhile; nothing was declared"
        )));
    }
    let group = alert_store::lock_group(&mut *tx, group_id)
        .await?
        .ok_or_else(|| CommandError::internal("the alert group vanished in its own transaction"))?;
    let alerts = alert_store::instances(&mut *tx, group_id).await?;
    let name = group
        .common_labels
        .0
        .get("alertname")
        .map_or("alert", String::as_str);
    let firing = alerts.iter().filter(|a| a.is_firing()).count();
    store::add_event(
        &mut *tx,
        incident_id,
        "alert",
        actor,
        &format!("declared from alert group {group_id}: {name} ({firing} firing)"),
        Some(event_id),
    )
    .await?;
    show_on_message(tx, &group, &alerts, mention, Some(event_id)).await
}

/// Queues an edit of the alert message so it shows the group as it is now (the incident,
/// no Declare button). Nothing to do for a group whose message was never queued.
async fn show_on_message(
    tx: &mut PgConnection,
    group: &alert_store::AlertGroup,
    alerts: &[alert_store::AlertInstance],
    mention: &[i64],
    event_id: Option<i64>,
) -> Result<(), CommandError> {
    let Some(post) = group.post_outbox_id else {
        return Ok(());
    };
    let message = alert_view::group_message(group, alerts, mention);
    outbox::enqueue_edit_of(&mut *tx, group.channel_id, post, &message, event_id).await?;
    Ok(())
}

/// Once the incident has its channel: the alert messages linked to it link to the channel.
pub(super) async fn show_channel(
    desk: &Desk,
    tx: &mut PgConnection,
    incident_id: i64,
) -> Result<(), CommandError> {
    let groups: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM alert_groups WHERE incident_id = $1 ORDER BY id")
            .bind(incident_id)
            .fetch_all(&mut *tx)
            .await?;
    for group_id in groups {
        let Some(group) = alert_store::lock_group(&mut *tx, group_id).await? else {
            continue;
        };
        let alerts = alert_store::instances(&mut *tx, group_id).await?;
        let mention = desk.group_mentions(&group).await;
        show_on_message(tx, &group, &alerts, &mention, None).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sqlx::PgPool;

    use super::super::{DeclareRequest, IncidentCatalog, Severity};
    use crate::access::RoleMap;
    use crate::actor::{Actor, Source};
    use crate::alerts::AlertsCatalog;
    use crate::desk::{Desk, Invocation};
    use crate::error::CommandError;

    fn desk(pool: PgPool) -> Desk {
        let roles = RoleMap::new(BTreeMap::from([(
            "ops".to_owned(),
            vec!["incident:*".to_owned()],
        )]))
        .expect("roles");
        let severities = BTreeMap::from([(
            "sev1".to_owned(),
            Severity {
                name: "sev1".to_owned(),
                ..Severity::default()
            },
        )]);
        Desk::new(pool, roles)
            .with_alerts(AlertsCatalog::default())
            .with_incidents(IncidentCatalog {
                severities,
                ..IncidentCatalog::default()
            })
    }

    fn inv(interaction: i64) -> Invocation {
        let actor = Actor {
            id: 7,
            name: "ana".to_owned(),
            roles: vec!["ops".to_owned()],
            source: Source::Discord,
        };
        let mut inv = Invocation::new(actor, "incident declare", serde_json::json!({}));
        inv.interaction_id = Some(interaction);
        inv
    }

    fn request(group: i64) -> DeclareRequest {
        DeclareRequest {
            title: "Disk full".to_owned(),
            severity: "sev1".to_owned(),
            services: String::new(),
            commander: None,
            description: String::new(),
            alert_group: Some(group),
        }
    }

    async fn group(pool: &PgPool, status: &str) -> i64 {
        sqlx::query_scalar(
            "INSERT INTO alert_groups (group_key, channel_id, status, receiver, group_labels, common_labels, common_annotations, external_url, route_index)
             VALUES ($1, 5, $2, 'r', '{}', '{\"alertname\":\"Disk\",\"severity\":\"sev1\"}', '{}', '', 0) RETURNING id",
        )
        .bind(format!("g-{status}"))
        .bind(status)
        .fetch_one(pool)
        .await
        .expect("group")
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn a_group_becomes_one_incident_and_only_while_it_fires(pool: PgPool) {
        let desk = desk(pool.clone());
        let firing = group(&pool, "firing").await;
        let defaults = desk
            .alert_declare_form(&inv(1), firing)
            .await
            .expect("form");
        assert_eq!(defaults.title, "Disk firing");
        assert_eq!(defaults.severity, "sev1", "the label names a severity");

        desk.incident_declare(&inv(2), request(firing))
            .await
            .expect("declared");
        let again = desk.incident_declare(&inv(3), request(firing)).await;
        assert!(
            matches!(&again, Err(CommandError::Conflict(why)) if why.contains("already incident #1")),
            "{again:?}"
        );
        let form = desk.alert_declare_form(&inv(4), firing).await;
        assert!(matches!(form, Err(CommandError::Conflict(_))), "{form:?}");

        let resolved = group(&pool, "resolved").await;
        let form = desk.alert_declare_form(&inv(5), resolved).await;
        assert!(
            matches!(&form, Err(CommandError::Conflict(why)) if why.contains("resolved")),
            "{form:?}"
        );
        let missing = desk.alert_declare_form(&inv(6), 999).await;
        assert!(
            matches!(missing, Err(CommandError::NotFound(_))),
            "{missing:?}"
        );

        let incidents: i64 = sqlx::query_scalar("SELECT count(*) FROM incidents")
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(incidents, 1, "a refused declare declares nothing");
        let refused: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit_events WHERE command = 'incident declare' AND outcome <> 'ok'",
        )
        .fetch_one(&pool)
        .await
        .expect("count");
        assert_eq!(refused, 4, "each refusal is audited");
    }
}
