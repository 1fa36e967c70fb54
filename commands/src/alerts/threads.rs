//! Long alert groups: when a group has more alerts than its message can list (the message
//! shows the first ones and "+N more"), opsbot starts a thread on the message, once it is
//! delivered, and posts every alert there. Notable changes (alerts joining or resolving, an
//! ack) are posted into the thread as a line each.

use super::store;
use super::view;
use crate::actor::{Actor, Source};
use crate::audit::Outcome;
use crate::chat::{Message, Text};
use crate::desk::{Desk, Invocation, record_in};
use crate::error::CommandError;
use crate::outbox;

/// Threads started per round at most (each is one call to the chat platform).
const THREADS_PER_ROUND: i64 = 20;

impl Desk {
    /// Starts the threads that long groups want, now that their messages are delivered, and
    /// queues the full list into each. Returns how many were started.
    pub async fn alert_threads(&self) -> Result<usize, CommandError> {
        let Some(chat) = &self.chat else {
            return Ok(0);
        };
        let mut started = 0;
        for (group_id, channel, message) in
            store::groups_wanting_threads(&self.pool, THREADS_PER_ROUND).await?
        {
            let Some(group) = store::group(&self.pool, group_id).await? else {
                continue;
            };
            let name = group
                .common_labels
                .0
                .get("alertname")
                .map_or("alerts", String::as_str);
            let title = view::cut(&format!("{name}: every alert (group {group_id})"), 100);
            let thread = match chat.start_thread(channel, message, &title).await {
                Ok(thread) => thread,
                Err(e) => {
                    tracing::warn!(group = group_id, error = %e, "could not start an alert group's thread; retrying next round");
                    continue;
                }
            };
            let mut tx = self.pool.begin().await?;
            store::set_thread(&mut tx, group_id, thread).await?;
            let alerts = store::instances(&mut *tx, group_id).await?;
            let mut inv = Invocation::new(
                Actor::system(Source::Scheduler),
                "alerts thread",
                serde_json::json!({ "group_id": group_id, "thread_id": thread }),
            );
            inv.channel_id = Some(channel);
            let event = record_in(
                &mut *tx,
                &inv,
                Outcome::Ok,
                &format!(
                    "started the thread of alert group {group_id} with its {} alerts",
                    alerts.len()
                ),
            )
            .await?;
            for part in view::thread_list(&group, &alerts) {
                outbox::enqueue(&mut *tx, thread, &part, Some(event)).await?;
            }
            tx.commit().await?;
            started += 1;
        }
        Ok(started)
    }

    /// The alert loop's round: threads for long groups, then silences.
    pub async fn alert_upkeep(&self) -> Result<usize, CommandError> {
        let threads = self.alert_threads().await?;
        Ok(threads + self.alert_silence_upkeep().await?)
    }
}

/// A line for the group's thread saying what a delivery changed.
pub(super) fn change_line(joined: usize, resolved: usize, firing: usize) -> Message {
    let mut parts = Vec::new();
    if joined > 0 {
        parts.push(format!("{joined} new"));
    }
    if resolved > 0 {
        parts.push(format!("{resolved} resolved"));
    }
    Message::text(
        Text::new()
            .plain(if firing > 0 { "🔥 " } else { "✅ " })
            .plain(parts.join(", "))
            .plain(format!("; {firing} firing now")),
    )
}
