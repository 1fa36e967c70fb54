//! Group commit for webhook deliveries. Alertmanager delivers concurrently (one request per
//! group and receiver); a commit each would bound ingestion by the disk's commit rate. So a
//! request hands its parsed delivery to the writers and awaits its own answer; a free
//! writer takes every delivery queued meanwhile (up to [`BATCH_MAX`]) and stores them in
//! one transaction, each with its own audit event and outbox rows: the new groups among them
//! together in a few statements ([`super::fresh`]), the others one by one in arrival order.
//! [`WRITERS`] writers run, so one batch's round trips and commit overlap the next one's.
//!
//! A batch that fails as a whole (one bad delivery, a deadlock, a lost connection) is
//! retried one delivery per transaction, so a delivery that fails alone fails alone; a
//! database that is down still answers each request [`CommandError::Unavailable`] (503).
//! When the writer is gone (its runtime ended), a request stores its delivery itself.

use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use super::ingest::{IngestOutcome, Prepared, WEBHOOK_COMMAND};
use super::payload::Payload;
use crate::actor::Source;
use crate::desk::Desk;
use crate::error::CommandError;

/// Writer tasks (each one transaction at a time, on its own connection).
pub const WRITERS: usize = 4;
/// Deliveries stored in one transaction at most.
pub const BATCH_MAX: usize = 64;
/// Deliveries waiting for the writer at most; more wait to be queued.
const QUEUE_MAX: usize = 1024;

type Answer = Result<IngestOutcome, CommandError>;

struct Job {
    payload: Payload,
    prepared: Prepared,
    reply: oneshot::Sender<Answer>,
}

/// The writer's queue; started by the first delivery.
#[derive(Default)]
pub struct IngestQueue {
    sender: OnceLock<mpsc::Sender<Job>>,
}

impl std::fmt::Debug for IngestQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestQueue")
            .field("started", &self.sender.get().is_some())
            .finish()
    }
}

/// Stores `payload` in the next batch and waits for its answer.
pub(crate) async fn store_batched(desk: &Desk, payload: Payload, prepared: Prepared) -> Answer {
    let queue: &Arc<IngestQueue> = &desk.alerts().ingest_queue;
    let sender = queue.sender.get_or_init(|| {
        let (sender, receiver) = mpsc::channel(QUEUE_MAX);
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        for _ in 0..WRITERS {
            tokio::spawn(writer(desk.clone(), receiver.clone()));
        }
        sender
    });
    let (reply, answer) = oneshot::channel();
    let job = Job {
        payload,
        prepared,
        reply,
    };
    match sender.send(job).await {
        Ok(()) => match answer.await {
            Ok(answer) => answer,
            Err(_) => Err(CommandError::Unavailable(
                "opsbot is shutting down; nothing was changed, try again in a moment".to_owned(),
            )),
        },
        // The writer is gone: store it here.
        Err(mpsc::error::SendError(job)) => {
            desk.store_alone(
                &job.payload,
                &job.prepared,
                WEBHOOK_COMMAND,
                Source::Webhook,
            )
            .await
        }
    }
}

/// Takes what is queued (the queue is this writer's while it waits), then writes it.
async fn writer(desk: Desk, receiver: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>) {
    let mut batch = Vec::with_capacity(BATCH_MAX);
    loop {
        let taken = receiver.lock().await.recv_many(&mut batch, BATCH_MAX).await;
        if taken == 0 {
            break;
        }
        metrics::histogram!("opsbot_alert_ingest_batch_size").record(batch.len() as f64);
        write(&desk, std::mem::take(&mut batch)).await;
    }
}

async fn write(desk: &Desk, jobs: Vec<Job>) {
    if jobs.len() > 1 {
        match together(desk, &jobs).await {
            Ok(outcomes) => {
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, deliveries = jobs.len(), "a batch of alert deliveries failed; storing them one by one");
            }
        }
    }
    for job in jobs {
        let answer = desk
            .store_alone(
                &job.payload,
                &job.prepared,
                WEBHOOK_COMMAND,
                Source::Webhook,
            )
            .await;
        let _ = job.reply.send(answer);
    }
}

/// Every job in one transaction, or an error and nothing stored.
async fn together(desk: &Desk, jobs: &[Job]) -> Result<Vec<IngestOutcome>, CommandError> {
    let mut tx = desk.pool.begin().await?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut afters = Vec::with_capacity(jobs.len());
    // New groups first, together (`fresh`); then each other delivery in arrival order.
    let pairs: Vec<(&Payload, &Prepared)> =
        jobs.iter().map(|j| (&j.payload, &j.prepared)).collect();
    let fresh = super::fresh::store_fresh(desk, &mut tx, &pairs).await?;
    for (job, stored) in jobs.iter().zip(fresh) {
        let (outcome, after) = match stored {
            Some(stored) => stored,
            None => {
                desk.store_in(
                    &mut tx,
                    &job.payload,
                    &job.prepared,
                    WEBHOOK_COMMAND,
                    Source::Webhook,
                )
                .await?
            }
        };
        afters.push(after);
        outcomes.push(outcome);
    }
    tx.commit().await?;
    for after in afters {
        desk.after_commit(after);
    }
    Ok(outcomes)
}
