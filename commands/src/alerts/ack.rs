//! The **Ack** button on an alert group's message: records who is on it (permission
//! `alerts:ack`), shows "acked by @x" on the message; acking again, or by someone else, says
//! who already has it. Every press is audited.

use super::store;
use super::view;
use crate::audit::Outcome;
use crate::chat::Message;
use crate::desk::{Desk, Invocation, record_in};
use crate::error::CommandError;
use crate::outbox;

/// The permission of the Ack button.
pub const ACK_PERMISSION: &str = "alerts:ack";

/// An accepted ack: the group's message as it reads now.
#[derive(Debug, Clone, PartialEq)]
pub struct AckOutcome {
    pub group_id: i64,
    pub message: Message,
}

impl Desk {
    /// Acks alert group `group_id` for `inv`'s actor.
    pub async fn alert_ack(
        &self,
        inv: &Invocation,
        group_id: i64,
    ) -> Result<AckOutcome, CommandError> {
        self.authorize(inv, ACK_PERMISSION, "ack alerts").await?;
        let route =
            sqlx::query_scalar::<_, i32>("SELECT route_index FROM alert_groups WHERE id = $1")
                .bind(group_id)
                .fetch_optional(&self.pool)
                .await?;
        let mention = match route {
            Some(index) => {
                self.route_mentions(usize::try_from(index).unwrap_or(usize::MAX))
                    .await
            }
            None => Vec::new(),
        };
        let mut tx = self.pool.begin().await?;
        let Some(group) = store::lock_group(&mut tx, group_id).await? else {
            drop(tx);
            let e = CommandError::NotFound(format!("alert group {group_id} does not exist"));
            return Err(self.refuse(inv, e).await);
        };
        if let Some(who) = &group.acked_by_name {
            drop(tx);
            let e = if group.acked_by_id == Some(inv.actor.id) {
                CommandError::Conflict("you already acked this alert".to_owned())
            } else {
                CommandError::Conflict(format!("{who} already has this alert (acked it first)"))
            };
            return Err(self.refuse(inv, e).await);
        }
        if !group.is_firing() {
            drop(tx);
            let e =
                CommandError::Conflict("this alert group has resolved; nothing to ack".to_owned());
            return Err(self.refuse(inv, e).await);
        }
        let group = store::set_ack(&mut tx, group_id, inv.actor.id, &inv.actor.name).await?;
        let alerts = store::instances(&mut *tx, group_id).await?;
        let message = view::group_message(&group, &alerts, &mention);
        let event = record_in(
            &mut *tx,
            inv,
            Outcome::Ok,
            &format!("acked alert group {group_id}"),
        )
        .await?;
        // The edit also supersedes any older queued edit that would drop the ack again.
        if let Some(post) = group.post_outbox_id {
            outbox::enqueue_edit_of(&mut *tx, group.channel_id, post, &message, Some(event))
                .await?;
        }
        if let Some(thread) = group.thread_id {
            let line = Message::text(format!("👀 acked by {}", inv.actor.name));
            outbox::enqueue(&mut *tx, thread, &line, Some(event)).await?;
        }
        tx.commit().await?;
        Ok(AckOutcome { group_id, message })
    }
}
