//! Deploy correlation: an alert group whose service label (`[alerts] service_label`,
//! default `service`) names a service that started deploying within `[alerts]
//! correlate_window` (default 30m) before the group's first alert started correlates with
//! that deploy. Its message names the deploy (version, who, when, a link) and offers a
//! **Rollback** button, which goes through the same policy as `/rollback` (permission
//! `deploy:<env>`, locks, freezes, approvals); a line goes into the deploy's thread.

use chrono::Utc;
use sqlx::PgConnection;

use super::payload::{Payload, Status};
use super::store;
use crate::chat::{Message, Text, TimeStyle};
use crate::deploy::{Deploy, DeployOutcome};
use crate::desk::{Desk, Invocation};
use crate::error::CommandError;

/// The deploy `payload`'s new group correlates with, if any; recorded on the group.
pub(super) async fn correlate(
    tx: &mut PgConnection,
    desk: &Desk,
    group_id: i64,
    payload: &Payload,
) -> Result<Option<Deploy>, sqlx::Error> {
    let catalog = desk.alerts();
    let firing = payload.alerts.iter().filter(|a| a.status == Status::Firing);
    let Some(started) = firing.clone().map(|a| a.starts_at).min() else {
        return Ok(None);
    };
    let service = payload
        .common_labels
        .get(&catalog.service_label)
        .or_else(|| {
            firing
                .filter_map(|a| a.labels.get(&catalog.service_label))
                .next()
        });
    let Some(service) = service else {
        return Ok(None);
    };
    let window = chrono::Duration::from_std(catalog.correlate_window)
        .unwrap_or(chrono::Duration::minutes(30));
    let deploy =
        crate::deploy::started_between(&mut *tx, service, started - window, started).await?;
    if let Some(deploy) = &deploy {
        store::set_correlated(tx, group_id, deploy.id).await?;
    }
    Ok(deploy)
}

/// The line posted into the deploy's thread when an alert correlates with it.
pub(super) fn thread_line(deploy: &Deploy, alert_name: &str, group_id: i64) -> Message {
    let mut text = Text::new()
        .plain("🔥 Alert ")
        .strong(alert_name.to_owned())
        .plain(" started firing");
    if let Some(started) = deploy.started_at {
        let minutes = (Utc::now() - started).num_minutes().max(0);
        text = text.plain(format!(" {minutes} min after this deploy started"));
    }
    Message::text(text.plain(format!(
        " (alert group {group_id}); its message offers a Rollback"
    )))
}

/// The "deploy" field of a correlated group's message.
pub(super) fn deploy_field(deploy: &store::CorrelatedDeploy) -> Text {
    let mut text = Text::new()
        .code(format!("{} {}", deploy.service, deploy.version))
        .plain(format!(" to {} by ", deploy.environment));
    text = if deploy.by_id > 0 {
        text.user(deploy.by_id)
    } else {
        text.strong(deploy.by.clone())
    };
    if let Some(started) = deploy.started_at {
        text = text.plain(", ").time(started, TimeStyle::Relative);
    }
    if let Some(link) = deploy
        .link
        .as_deref()
        .filter(|l| l.starts_with("https://") || l.starts_with("http://"))
    {
        text = text.plain(" · ").link("deploy", link.to_owned());
    }
    text
}

impl Desk {
    /// Rollback pressed on an alert correlated with a deploy: `/rollback` of that service
    /// and environment, under the same policy.
    pub async fn alert_rollback(
        &self,
        inv: &Invocation,
        group_id: i64,
    ) -> Result<DeployOutcome, CommandError> {
        let group = store::group(&self.pool, group_id).await?;
        let Some(deploy) = group.and_then(|g| g.correlated).map(|c| c.0) else {
            let e = CommandError::NotFound(format!(
                "alert group {group_id} does not correlate with a deploy"
            ));
            return Err(self.refuse(inv, e).await);
        };
        self.rollback(inv, &deploy.service, &deploy.environment, None)
            .await
    }
}
