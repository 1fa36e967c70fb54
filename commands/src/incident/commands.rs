//! The incident commands as [`Desk`] methods: access, validation, state, timeline, audit,
//! outbox — one transaction each.

use chrono::Utc;
use uuid::Uuid;

use super::model::{self, Incident, Status};
use super::store::{self, NewIncident, Update};
use super::view;
use crate::audit::Outcome;
use crate::chat::Message;
use crate::desk::{Desk, Invocation, record_in};
use crate::error::CommandError;
use crate::outbox;

const TITLE_MAX: usize = 100;
const TEXT_MAX: usize = 1000;
const LIST_LIMIT: i64 = 25;

/// What `/incident declare` asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeclareRequest {
    pub title: String,
    pub severity: String,
    /// Comma- or space-separated service names.
    pub services: String,
    /// Member id and name.
    pub commander: Option<(i64, String)>,
    pub description: String,
    /// The alert group this incident is declared from (its message's Declare incident
    /// button): linked in the same transaction.
    pub alert_group: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeclareOutcome {
    pub incident: Incident,
    /// The channel, if it could be created at once (else the reconciler creates it).
    pub channel_id: Option<i64>,
    pub message: Message,
}

/// Which incident a command is about: the one given, or the one whose channel it runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Target {
    pub id: Option<i64>,
}

/// A change to an incident.
#[derive(Debug, Clone, PartialEq)]
pub enum IncidentChange {
    Status {
        status: String,
        text: String,
    },
    Severity {
        level: String,
    },
    Role {
        role: String,
        user_id: i64,
        user_name: String,
    },
    Note {
        text: String,
    },
    Resolve {
        summary: String,
    },
    Reopen,
}

impl IncidentChange {
    fn permission(&self) -> (&'static str, &'static str) {
        match self {
            IncidentChange::Resolve { .. } | IncidentChange::Reopen => {
                ("incident:resolve", "resolve or reopen incidents")
            }
            _ => ("incident:update", "update incidents"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChangeOutcome {
    pub incident: Incident,
    /// The reply to whoever made the change.
    pub message: Message,
}

fn check_text(what: &str, text: &str, max: usize, required: bool) -> Result<(), CommandError> {
    if required && text.trim().is_empty() {
        return Err(CommandError::Invalid(format!("{what} is required")));
    }
    if text.chars().count() > max {
        return Err(CommandError::Invalid(format!(
            "{what} is longer than {max} characters"
        )));
    }
    Ok(())
}

fn parse_services(desk: &Desk, text: &str) -> Result<Vec<String>, CommandError> {
    let mut services: Vec<String> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    services.sort();
    services.dedup();
    let known = &desk.deploys().services;
    if !known.is_empty()
        && let Some(unknown) = services.iter().find(|s| !known.contains_key(*s))
    {
        let names: Vec<&str> = known.keys().map(String::as_str).collect();
        return Err(CommandError::Invalid(format!(
            "unknown service `{unknown}`; services: {}",
            names.join(", ")
        )));
    }
    Ok(services)
}

impl Desk {
    /// Before the declare form opens (`/incident declare` with no options, **Declare
    /// incident** in the Apps menu): a member who may not declare is refused (and audited)
    /// now, not after filling in the form.
    pub async fn incident_declare_form(&self, inv: &Invocation) -> Result<(), CommandError> {
        self.authorize(inv, "incident:declare", "declare incidents")
            .await
    }

    /// `/incident declare`.
    pub async fn incident_declare(
        &self,
        inv: &Invocation,
        request: DeclareRequest,
    ) -> Result<DeclareOutcome, CommandError> {
        let catalog = self.incidents();
        let checked = check_text("the title", &request.title, TITLE_MAX, true)
            .and_then(|()| check_text("the description", &request.description, TEXT_MAX, false))
            .and_then(|()| catalog.severity(&request.severity).map(|_| ()))
            .and_then(|()| parse_services(self, &request.services));
        let services = match checked {
            Ok(services) => services,
            Err(e) => return Err(self.refuse(inv, e).await),
        };
        self.authorize(inv, "incident:declare", "declare incidents")
            .await?;
        let alert_mention = match request.alert_group {
            Some(group_id) => match self.declarable_group(group_id).await {
                Ok(group) => self.group_mentions(&group).await,
                Err(e) => return Err(self.refuse(inv, e).await),
            },
            None => Vec::new(),
        };
        let title = request.title.trim();
        let slug = model::slug(title);
        let correlation_id = Uuid::new_v4();
        let guild_id = inv.guild_id.or(catalog.guild_id);
        let responders = self.responder_roles(guild_id, &request.severity).await;

        let mut tx = self.pool.begin().await?;
        let id = store::insert(
            &mut tx,
            &NewIncident {
                correlation_id,
                title,
                slug: &slug,
                severity: &request.severity,
                services: &services,
                description: request.description.trim(),
                declared_by_id: inv.actor.id,
                declared_by_name: &inv.actor.name,
                guild_id,
                declared_in_channel: inv.channel_id,
                declared_interaction: inv.interaction_id,
            },
        )
        .await?;
        let mut event_inv = inv.clone();
        event_inv.correlation_id = Some(correlation_id);
        let detail = format!("incident #{id} {title} ({})", request.severity);
        let event_id = record_in(&mut *tx, &event_inv, Outcome::Ok, &detail).await?;
        let actor = (inv.actor.id, inv.actor.name.as_str());
        store::add_event(&mut *tx, id, "declared", actor, &detail, Some(event_id)).await?;
        if let Some((user_id, user_name)) = &request.commander {
            store::set_role(&mut *tx, id, "commander", (*user_id, user_name)).await?;
            store::add_event(
                &mut *tx,
                id,
                "role",
                actor,
                &format!("commander: {user_name}"),
                Some(event_id),
            )
            .await?;
        }
        if let Some(group_id) = request.alert_group {
            super::from_alert::link_in(&mut tx, &alert_mention, id, group_id, actor, event_id)
                .await?;
        }
        let incident = store::by_id(&mut tx, id, false).await?.ok_or_else(|| {
            CommandError::internal("the incident vanished in its own transaction")
        })?;
        if let Some(channel) = catalog.announce_channel {
            outbox::enqueue(
                &mut *tx,
                channel,
                &view::announcement(&incident, &responders),
                Some(event_id),
            )
            .await?;
        }
        tx.commit().await?;
        // Not transactional: if this fails (or opsbot dies first), the reconciler finishes it.
        let channel_id = match self.incident_open_channel(id).await {
            Ok(channel) => channel,
            Err(e) => {
                tracing::warn!(incident = id, error = %e, "incident channel not created yet; the reconciler will retry");
                None
            }
        };
        let incident = self.incident_by_id(id).await?.unwrap_or(incident);
        let mut text = crate::chat::Text::new()
            .plain("Declared incident ")
            .strong(view::headline(&incident))
            .plain(format!(" ({})", incident.severity));
        text = match (channel_id, incident.channel_name()) {
            (Some(_), Some(name)) => text.plain(format!(": join #{name}")),
            _ => text.plain(": its channel is being created"),
        };
        Ok(DeclareOutcome {
            message: Message::text(text),
            channel_id,
            incident,
        })
    }

    /// The role ids of the responders of `severity` (none when they cannot be looked up).
    pub(crate) async fn responder_roles(&self, guild_id: Option<i64>, severity: &str) -> Vec<i64> {
        let names = self
            .incidents()
            .severities
            .get(severity)
            .map(|s| s.responders.clone())
            .unwrap_or_default();
        let (Some(chat), Some(guild)) = (&self.chat, guild_id) else {
            return Vec::new();
        };
        if names.is_empty() {
            return Vec::new();
        }
        match chat.role_ids(guild, &names).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "responder roles could not be looked up; nobody is pinged");
                Vec::new()
            }
        }
    }

    pub async fn incident_by_id(&self, id: i64) -> Result<Option<Incident>, CommandError> {
        let mut conn = self.pool.acquire().await?;
        Ok(store::by_id(&mut conn, id, false).await?)
    }

    /// `/incident list`: open incidents (reading needs no permission; it is audited).
    pub async fn incident_list(&self, inv: &Invocation) -> Result<Message, CommandError> {
        let result = async {
            let mut conn = self.pool.acquire().await?;
            Ok(store::list(&mut conn, true, LIST_LIMIT).await?)
        }
        .await;
        let incidents: Vec<Incident> = self
            .conclude(inv, result, |list: &Vec<Incident>| {
                format!("{} open incidents", list.len())
            })
            .await?;
        Ok(view::list(&incidents, Utc::now()))
    }

    /// Open and recent incidents, for the dashboard.
    pub async fn incidents_recent(&self, limit: i64) -> Result<Vec<Incident>, CommandError> {
        let mut conn = self.pool.acquire().await?;
        Ok(store::list(&mut conn, false, limit).await?)
    }

    /// The incident `target` names, or the one whose channel the command runs in.
    pub(super) async fn resolve_target(
        &self,
        inv: &Invocation,
        target: Target,
    ) -> Result<i64, CommandError> {
        let mut conn = self.pool.acquire().await?;
        if let Some(id) = target.id {
            return match store::by_id(&mut conn, id, false).await? {
                Some(_) => Ok(id),
                None => Err(CommandError::NotFound(format!(
                    "incident #{id} does not exist"
                ))),
            };
        }
        if let Some(channel) = inv.channel_id
            && let Some(id) = store::by_channel(&mut conn, channel).await?
        {
            return Ok(id);
        }
        let open = store::list(&mut conn, true, 5).await?;
        let hint = if open.is_empty() {
            "there are no open incidents".to_owned()
        } else {
            let names: Vec<String> = open
                .iter()
                .map(|i| match i.channel_name() {
                    Some(c) if i.channel_id.is_some() => format!("#{c}"),
                    _ => format!("id:{}", i.id),
                })
                .collect();
            format!("open: {}", names.join(", "))
        };
        Err(CommandError::Invalid(format!(
            "this is not an incident channel: run it in the incident's channel, or give id:N ({hint})"
        )))
    }

    /// `/incident status|severity|role|note|resolve|reopen`.
    pub async fn incident_change(
        &self,
        inv: &Invocation,
        target: Target,
        change: IncidentChange,
    ) -> Result<ChangeOutcome, CommandError> {
        let id = match self.resolve_target(inv, target).await {
            Ok(id) => id,
            Err(e) => return Err(self.refuse(inv, e).await),
        };
        let (permission, action) = change.permission();
        self.authorize(inv, permission, action).await?;
        if let Err(e) = self.check_change(&change) {
            return Err(self.refuse(inv, e).await);
        }
        let mut tx = self.pool.begin().await?;
        let Some(before) = store::by_id(&mut tx, id, true).await? else {
            return Err(self
                .refuse(
                    inv,
                    CommandError::NotFound(format!("incident #{id} does not exist")),
                )
                .await);
        };
        let mut inv = inv.clone();
        inv.correlation_id = Some(before.correlation_id);
        let plan = match plan(&before, &change) {
            Ok(plan) => plan,
            Err(e) => {
                drop(tx);
                return Err(self.refuse(&inv, e).await);
            }
        };
        store::update(&mut *tx, id, &plan.update).await?;
        if let IncidentChange::Role {
            role,
            user_id,
            user_name,
        } = &change
        {
            store::set_role(&mut *tx, id, role, (*user_id, user_name)).await?;
        }
        let detail = format!("incident #{id}: {}", plan.event_text);
        let event_id = record_in(&mut *tx, &inv, Outcome::Ok, &detail).await?;
        let actor = (inv.actor.id, inv.actor.name.as_str());
        store::add_event(
            &mut *tx,
            id,
            plan.kind,
            actor,
            &plan.event_text,
            Some(event_id),
        )
        .await?;
        let after = store::by_id(&mut tx, id, false).await?.ok_or_else(|| {
            CommandError::internal("the incident vanished in its own transaction")
        })?;
        let now = Utc::now();
        let post = self.change_post(&after, &change, &inv.actor.name, now);
        let catalog = self.incidents();
        if let (Some(channel), Some(summary)) = (after.channel_id, after.summary_outbox_id) {
            let message = view::summary(&after, catalog, now);
            outbox::enqueue_edit_of(&mut *tx, channel, summary, &message, Some(event_id)).await?;
        }
        // Typed in the incident's channel, the reply is the post; elsewhere it is posted there.
        let in_channel = after.channel_id.is_some() && after.channel_id == inv.channel_id;
        if let Some(channel) = after.channel_id
            && !in_channel
        {
            outbox::enqueue(&mut *tx, channel, &post, Some(event_id)).await?;
        }
        if plan.announce
            && let Some(channel) = catalog.announce_channel
        {
            outbox::enqueue(&mut *tx, channel, &post, Some(event_id)).await?;
        }
        tx.commit().await?;
        self.incident_sync_topic(&after).await;
        let message = if in_channel {
            post
        } else {
            view::notice(format!(
                "Done: {}{}",
                plan.event_text,
                after
                    .channel_name()
                    .filter(|_| after.channel_id.is_some())
                    .map(|c| format!(" (posted in #{c})"))
                    .unwrap_or_default()
            ))
        };
        Ok(ChangeOutcome {
            incident: after,
            message,
        })
    }

    fn check_change(&self, change: &IncidentChange) -> Result<(), CommandError> {
        let catalog = self.incidents();
        match change {
            IncidentChange::Status { status, text } => {
                check_text("the update", text, TEXT_MAX, false)?;
                match Status::parse(status) {
                    Some(Status::Resolved) => Err(CommandError::Invalid(
                        "use /incident resolve to resolve an incident (it needs a summary)"
                            .to_owned(),
                    )),
                    Some(Status::Reopened) => Err(CommandError::Invalid(
                        "use /incident reopen to reopen a resolved incident".to_owned(),
                    )),
                    Some(_) => Ok(()),
                    None => Err(CommandError::Invalid(format!(
                        "unknown status `{status}`; statuses: investigating, identified, monitoring"
                    ))),
                }
            }
            IncidentChange::Severity { level } => catalog.severity(level).map(|_| ()),
            IncidentChange::Role { role, .. } => {
                if catalog.roles.is_empty() {
                    super::default_roles()
                        .iter()
                        .any(|r| &r.name == role)
                        .then_some(())
                        .ok_or_else(|| {
                            CommandError::Invalid(format!(
                                "unknown incident role `{role}`; roles: commander, comms, scribe"
                            ))
                        })
                } else {
                    catalog.role(role).map(|_| ())
                }
            }
            IncidentChange::Note { text } => check_text("the note", text, TEXT_MAX, true),
            IncidentChange::Resolve { summary } => {
                check_text("the summary", summary, TEXT_MAX, true)
            }
            IncidentChange::Reopen => Ok(()),
        }
    }

    fn change_post(
        &self,
        incident: &Incident,
        change: &IncidentChange,
        by: &str,
        now: chrono::DateTime<Utc>,
    ) -> Message {
        match change {
            IncidentChange::Status { text, .. } => view::status_update(incident, by, Some(text)),
            IncidentChange::Severity { level } => view::notice(format!(
                "Incident #{} is now {level} (changed by {by})",
                incident.id
            )),
            IncidentChange::Role { role, user_id, .. } => {
                let spec = self
                    .incidents()
                    .roles
                    .iter()
                    .find(|r| &r.name == role)
                    .cloned()
                    .unwrap_or_else(|| super::role_spec(role));
                view::role_assigned(incident, &spec, *user_id, by)
            }
            IncidentChange::Note { text } => view::notice(format!("📝 {by}: {text}")),
            IncidentChange::Resolve { .. } => view::resolved(incident, by, now),
            IncidentChange::Reopen => view::status_update(incident, by, None),
        }
    }
}

struct Plan<'a> {
    update: Update<'a>,
    kind: &'static str,
    event_text: String,
    /// Also posted to the announcement channel.
    announce: bool,
}

/// What `change` does to `incident`, or why it cannot.
fn plan<'a>(incident: &Incident, change: &'a IncidentChange) -> Result<Plan<'a>, CommandError> {
    let open = incident.status.is_open();
    let closed = || {
        CommandError::Conflict(format!(
            "incident #{} is resolved; /incident reopen it first",
            incident.id
        ))
    };
    Ok(match change {
        IncidentChange::Status { status, text } => {
            if !open {
                return Err(closed());
            }
            let status = Status::parse(status).unwrap_or(incident.status);
            Plan {
                update: Update {
                    status: Some(status),
                    touched: true,
                    ..Update::default()
                },
                kind: "status",
                event_text: if text.is_empty() {
                    format!("status {status}")
                } else {
                    format!("status {status}: {text}")
                },
                announce: true,
            }
        }
        IncidentChange::Severity { level } => {
            if !open {
                return Err(closed());
            }
            if *level == incident.severity {
                return Err(CommandError::Conflict(format!(
                    "incident #{} is already {level}",
                    incident.id
                )));
            }
            Plan {
                update: Update {
                    severity: Some(level),
                    ..Update::default()
                },
                kind: "severity",
                event_text: format!("severity {} → {level}", incident.severity),
                announce: true,
            }
        }
        IncidentChange::Role {
            role, user_name, ..
        } => Plan {
            update: Update::default(),
            kind: "role",
            event_text: format!("{role}: {user_name}"),
            announce: false,
        },
        IncidentChange::Note { text } => Plan {
            update: Update::default(),
            kind: "note",
            event_text: format!("note: {text}"),
            announce: false,
        },
        IncidentChange::Resolve { summary } => {
            if !open {
                return Err(CommandError::Conflict(format!(
                    "incident #{} is already resolved",
                    incident.id
                )));
            }
            Plan {
                update: Update {
                    status: Some(Status::Resolved),
                    touched: true,
                    resolution: Some(Some(summary)),
                    ..Update::default()
                },
                kind: "resolved",
                event_text: format!("resolved: {summary}"),
                announce: true,
            }
        }
        IncidentChange::Reopen => {
            if open {
                return Err(CommandError::Conflict(format!(
                    "incident #{} is not resolved",
                    incident.id
                )));
            }
            Plan {
                update: Update {
                    status: Some(Status::Reopened),
                    touched: true,
                    resolution: Some(None),
                    ..Update::default()
                },
                kind: "reopened",
                event_text: "reopened".to_owned(),
                announce: true,
            }
        }
    })
}
