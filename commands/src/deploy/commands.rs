//! `/deploy run`, `/rollback` and the Approve/Reject buttons as [`Desk`] methods: access,
//! validation, policy, state, audit, outbox. Locks are in [`super::locks`], `/deploy status`
//! and `/deploy history` in [`super::reads`].

use chrono::Utc;
use uuid::Uuid;

use super::model::{Deploy, DeployState};
use super::store::{self, NewDeploy};
use super::view::{self, ButtonBinding, binding_hash};
use super::{DeployRequest, ServiceSpec};
use crate::audit::Outcome;
use crate::chat::Message;
use crate::desk::{Desk, Invocation, record_in};
use crate::error::CommandError;
use crate::{Actor, Source, outbox};

/// Versions are written into messages, custom ids and commands: keep them plain.
const VERSION_MAX: usize = 64;
/// Reasons show in messages and the dashboard. Context pasted from an incident can be long;
/// messages cut it to Discord's limits (the Discord option's `max_length` is the same).
pub const REASON_MAX: usize = 4000;

/// A deploy that was requested (or decided on), and its status message.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployOutcome {
    pub deploy: Deploy,
    pub message: Message,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

impl Desk {
    /// `/deploy run`.
    pub async fn deploy_run(
        &self,
        inv: &Invocation,
        request: DeployRequest,
    ) -> Result<DeployOutcome, CommandError> {
        self.request_deploy(inv, request, None).await
    }

    /// `/rollback service env [to]`: to the previous succeeded version (or `to`), under the
    /// same policy as any deploy; recorded as a deploy marked as a rollback.
    pub async fn rollback(
        &self,
        inv: &Invocation,
        service: &str,
        environment: &str,
        to: Option<String>,
    ) -> Result<DeployOutcome, CommandError> {
        if let Err(e) = self.service_in(service, environment) {
            return Err(self.refuse(inv, e).await);
        }
        self.authorize(
            inv,
            &format!("deploy:{environment}"),
            &format!("deploy to {environment}"),
        )
        .await?;
        let succeeded = store::succeeded(&self.pool, service, environment, 50).await?;
        let Some(current) = succeeded.first() else {
            let e = CommandError::Invalid(format!(
                "{service} has no succeeded deploy to {environment}, so there is nothing to roll back"
            ));
            return Err(self.refuse(inv, e).await);
        };
        let target = match to {
            Some(version) => version,
            None => match succeeded.iter().find(|d| d.version != current.version) {
                Some(previous) => previous.version.clone(),
                None => {
                    let e = CommandError::Invalid(format!(
                        "{service} has no earlier succeeded version in {environment} than {}; give one with to:VERSION",
                        current.version
                    ));
                    return Err(self.refuse(inv, e).await);
                }
            },
        };
        let request = DeployRequest {
            service: service.to_owned(),
            version: target,
            environment: environment.to_owned(),
            reason: format!("rollback from {} (deploy #{})", current.version, current.id),
            override_freeze: false,
        };
        self.request_deploy(inv, request, Some(current.id)).await
    }

    async fn request_deploy(
        &self,
        inv: &Invocation,
        request: DeployRequest,
        rollback_of: Option<i64>,
    ) -> Result<DeployOutcome, CommandError> {
        let checked = self
            .service_in(&request.service, &request.environment)
            .and_then(|spec| check_version(&request.version).map(|()| spec))
            .and_then(|spec| check_reason(&request.reason).map(|()| spec));
        let spec = match checked {
            Ok(spec) => spec.clone(),
            Err(e) => return Err(self.refuse(inv, e).await),
        };
        let env = &request.environment;
        self.authorize(inv, &format!("deploy:{env}"), &format!("deploy to {env}"))
            .await?;
        if request.override_freeze {
            self.authorize(inv, "deploy:override", "override a freeze window")
                .await?;
        }
        if let Some(lock) = store::active_lock(&self.pool, &request.service, env).await? {
            let e = CommandError::Conflict(format!(
                "{} is locked in {env} by {}{}: {}; `/deploy unlock` lifts it",
                request.service,
                lock.locked_by_name,
                lock.until
                    .map(|u| format!(" until {}", u.format("%Y-%m-%d %H:%M UTC")))
                    .unwrap_or_default(),
                lock.reason
            ));
            return Err(self.refuse(inv, e).await);
        }
        let policy = self.deploys().policy(env);
        let now = Utc::now();
        let frozen = policy.freeze.iter().find(|w| w.contains(now));
        if let Some(window) = frozen
            && !request.override_freeze
        {
            let e = CommandError::Refused(format!(
                "{env} is frozen ({}){}; deploying now needs override:true and the `deploy:override` permission",
                window.describe(),
                window
                    .ends_after(now)
                    .map(|end| format!(" until {}", end.format("%Y-%m-%d %H:%M UTC")))
                    .unwrap_or_default()
            ));
            return Err(self.refuse(inv, e).await);
        }
        // An open incident that freezes this service's deploys (see `crate::incident`).
        let incident_freeze = crate::incident::deploy_freeze(self, &request.service, env).await?;
        if let Some(freeze) = &incident_freeze
            && !request.override_freeze
        {
            let e = CommandError::Refused(freeze.refusal(&request.service, env));
            return Err(self.refuse(inv, e).await);
        }
        let freeze_overridden =
            (frozen.is_some() || incident_freeze.is_some()) && request.override_freeze;
        let approvals = i32::try_from(policy.approvals).unwrap_or(i32::MAX);
        let state = if approvals > 0 {
            DeployState::Requested
        } else {
            DeployState::Approved
        };
        let correlation_id = Uuid::new_v4();
        let timeout = chrono::Duration::from_std(self.deploys().approval_timeout)
            .unwrap_or(chrono::Duration::minutes(30));

        let mut tx = self.pool.begin().await?;
        let inserted = store::insert_deploy(
            &mut *tx,
            &NewDeploy {
                correlation_id,
                service: &request.service,
                environment: env,
                version: &request.version,
                state,
                is_rollback: rollback_of.is_some(),
                rollback_of,
                reason: &request.reason,
                freeze_overridden,
                requested_by_id: inv.actor.id,
                requested_by_name: &inv.actor.name,
                approvals_required: approvals,
                approval_expires_at: (approvals > 0).then(|| now + timeout),
                backend: spec.backend.kind(),
                guild_id: inv.guild_id,
                channel_id: inv.channel_id,
            },
        )
        .await?;
        let Some(id) = inserted else {
            drop(tx);
            let running = store::active_deploy(&self.pool, &request.service, env).await?;
            let e = CommandError::Conflict(match running {
                Some(d) => format!(
                    "{} is {} (requested by {}); one deploy at a time per service and environment",
                    view::headline(&d),
                    d.state,
                    d.requested_by_name
                ),
                None => format!(
                    "another deploy of {} to {env} is in progress; try again",
                    request.service
                ),
            });
            return Err(self.refuse(inv, e).await);
        };
        let mut event_inv = inv.clone();
        event_inv.correlation_id = Some(correlation_id);
        let detail = format!(
            "deploy #{id} {} {} → {env}{}",
            request.service,
            request.version,
            if freeze_overridden {
                " (freeze overridden)"
            } else {
                ""
            }
        );
        let event_id = record_in(&mut *tx, &event_inv, Outcome::Requested, &detail).await?;
        if state == DeployState::Approved {
            let system = self.system_invocation(inv.command.clone(), correlation_id, id);
            record_in(
                &mut *tx,
                &system,
                Outcome::Approved,
                &format!("no approval required in {env}"),
            )
            .await?;
        }
        let deploy = store::deploy_by_id(&mut *tx, id).await?.ok_or_else(|| {
            CommandError::internal(format!("deploy {id} vanished in its own transaction"))
        })?;
        if let Some(freeze) = &incident_freeze
            && request.override_freeze
        {
            crate::incident::announce_override(
                &mut tx,
                freeze,
                &view::headline(&deploy),
                &inv.actor.name,
                event_id,
            )
            .await?;
        }
        if let Some(channel) = self.deploys().announce_channel {
            outbox::enqueue(
                &mut *tx,
                channel,
                &view::announcement(&deploy, &inv.actor.name),
                Some(event_id),
            )
            .await?;
        }
        tx.commit().await?;
        self.deploy_wakeup().notify_one();
        Ok(DeployOutcome {
            message: view::status_message(&deploy, self.deploys()),
            deploy,
        })
    }

    /// An Approve or Reject button pressed.
    pub async fn deploy_decide(
        &self,
        inv: &Invocation,
        binding: &ButtonBinding,
    ) -> Result<DeployOutcome, CommandError> {
        let Some(deploy) = store::deploy_by_id(&self.pool, binding.deploy_id).await? else {
            let e = CommandError::NotFound(format!("deploy #{} does not exist", binding.deploy_id));
            return Err(self.refuse(inv, e).await);
        };
        let mut inv = inv.clone();
        inv.correlation_id = Some(deploy.correlation_id);
        if binding_hash(&deploy) != binding.hash {
            let e = CommandError::Invalid(format!(
                "this button does not match {} (service, environment or version changed); nothing was approved",
                view::headline(&deploy)
            ));
            return Err(self.refuse(&inv, e).await);
        }
        let env = &deploy.environment;
        let verb = if binding.approve { "approve" } else { "reject" };
        self.authorize(
            &inv,
            &format!("deploy:approve:{env}"),
            &format!("{verb} deploys to {env}"),
        )
        .await?;
        if inv.actor.id == deploy.requested_by_id && binding.approve {
            let e = CommandError::Forbidden(format!(
                "you requested {}; approvals must come from someone else",
                view::headline(&deploy)
            ));
            return Err(self.refuse(&inv, e).await);
        }
        let mut tx = self.pool.begin().await?;
        let state: Option<String> = sqlx::query_scalar!(
            "SELECT state FROM deploys WHERE id = $1 FOR UPDATE",
            deploy.id
        )
        .fetch_optional(&mut *tx)
        .await?;
        if state.as_deref() != Some("requested") {
            drop(tx);
            let e = CommandError::Conflict(format!(
                "{} is already {}; nothing to {verb}",
                view::headline(&deploy),
                state.unwrap_or_default()
            ));
            return Err(self.refuse(&inv, e).await);
        }
        if deploy.approval_expires_at.is_some_and(|t| t <= Utc::now()) {
            drop(tx);
            let e = CommandError::Conflict(format!(
                "the approval window of {} has closed; request it again",
                view::headline(&deploy)
            ));
            return Err(self.refuse(&inv, e).await);
        }
        if !store::record_decision(
            &mut *tx,
            deploy.id,
            inv.actor.id,
            &inv.actor.name,
            if binding.approve { "approve" } else { "reject" },
        )
        .await?
        {
            drop(tx);
            let e = CommandError::Conflict(format!(
                "you already decided on {}",
                view::headline(&deploy)
            ));
            return Err(self.refuse(&inv, e).await);
        }
        let outcome = if binding.approve {
            let count = store::approvals_count(&mut *tx, deploy.id).await?;
            if count >= i64::from(deploy.approvals_required) {
                store::transition(
                    &mut *tx,
                    deploy.id,
                    &[DeployState::Requested],
                    DeployState::Approved,
                    None,
                )
                .await?;
            }
            Outcome::Approved
        } else {
            store::transition(
                &mut *tx,
                deploy.id,
                &[DeployState::Requested],
                DeployState::Rejected,
                Some(&format!("rejected by {}", inv.actor.name)),
            )
            .await?;
            Outcome::Rejected
        };
        let updated = store::deploy_by_id(&mut *tx, deploy.id)
            .await?
            .ok_or_else(|| CommandError::internal("deploy vanished"))?;
        let detail = format!(
            "{} {}: {}/{} approvals",
            view::headline(&updated),
            updated.state,
            updated.approved_by.len(),
            updated.approvals_required
        );
        let event_id = record_in(&mut *tx, &inv, outcome, &detail).await?;
        if let Some(channel) = self.deploys().announce_channel
            && updated.state != DeployState::Requested
        {
            outbox::enqueue(
                &mut *tx,
                channel,
                &view::announcement(&updated, &inv.actor.name),
                Some(event_id),
            )
            .await?;
        }
        tx.commit().await?;
        if updated.state == DeployState::Approved {
            self.deploy_wakeup().notify_one();
        }
        Ok(DeployOutcome {
            message: view::status_message(&updated, self.deploys()),
            deploy: updated,
        })
    }

    /// Remembers where a deploy's status message is, then brings it up to date (the deploy
    /// may have moved on while the reply was being sent).
    pub async fn deploy_attach_message(
        &self,
        deploy_id: i64,
        channel_id: i64,
        message_id: i64,
    ) -> Result<(), CommandError> {
        let mut tx = self.pool.begin().await?;
        store::attach_status_message(&mut *tx, deploy_id, channel_id, message_id).await?;
        if let Some(deploy) = store::deploy_by_id(&mut *tx, deploy_id).await?
            && !matches!(deploy.state, DeployState::Requested | DeployState::Approved)
        {
            let message = view::status_message(&deploy, self.deploys());
            outbox::enqueue_edit(&mut *tx, channel_id, message_id, &message, None).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The configured service called `name`.
    pub fn service(&self, name: &str) -> Result<&ServiceSpec, CommandError> {
        self.deploys().services.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.deploys().services.keys().map(String::as_str).collect();
            CommandError::Invalid(if known.is_empty() {
                format!("unknown service \"{name}\"; no services are configured ([[services]] in the config)")
            } else {
                format!("unknown service \"{name}\"; known services: {}", known.join(", "))
            })
        })
    }

    /// The service, if it deploys to `environment`.
    pub fn service_in(&self, name: &str, environment: &str) -> Result<&ServiceSpec, CommandError> {
        let spec = self.service(name)?;
        if spec.environments.iter().any(|e| e == environment) {
            Ok(spec)
        } else {
            Err(CommandError::Invalid(format!(
                "{name} does not deploy to \"{environment}\"; its environments: {}",
                spec.environments.join(", ")
            )))
        }
    }

    /// opsbot itself, acting on a deploy (tracker steps, automatic approval).
    pub(super) fn system_invocation(
        &self,
        command: String,
        correlation_id: Uuid,
        deploy_id: i64,
    ) -> Invocation {
        let mut inv = Invocation::new(
            Actor::system(Source::Scheduler),
            command,
            serde_json::json!({ "deploy_id": deploy_id }),
        );
        inv.correlation_id = Some(correlation_id);
        inv
    }
}

fn check_version(version: &str) -> Result<(), CommandError> {
    let ok = !version.is_empty()
        && version.len() <= VERSION_MAX
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '/'));
    if ok {
        Ok(())
    } else {
        Err(CommandError::Invalid(format!(
            "version \"{version}\" is not valid: use 1-{VERSION_MAX} letters, digits and . _ - + / (e.g. v1.2.3 or a commit sha)"
        )))
    }
}

pub(super) fn check_reason(reason: &str) -> Result<(), CommandError> {
    if reason.chars().count() > REASON_MAX {
        Err(CommandError::Invalid(format!(
            "the reason is longer than {REASON_MAX} characters"
        )))
    } else {
        Ok(())
    }
}
