//! Consumes the dead-letter queue `<queue>.dead`: each job there ended without the worker
//! recording an outcome it could act on (the broker's delivery limit, a refusal), or after it
//! recorded a permanent failure. The submission is marked `failed` with `job.dead_lettered`
//! unless it is already `failed` (the worker's own reason is kept) or `done` (never touched);
//! then the message is acked. Unreadable messages are acked and counted. The queue's depth is
//! reported as `easel_dead_letter_depth`.

use std::sync::Arc;
use std::time::Duration;

use easel_core::configuration::RabbitMqSettings;
use easel_core::db::submissions::{self, DeadLettered};
use easel_core::metrics::{DEAD_LETTER_DEPTH, DEAD_LETTERS_TOTAL};
use easel_core::queue::{JobConsumer, JobDelivery};
use easel_core::retry::Backoff;
use easel_core::{Service, db};
use sqlx::PgPool;
use tokio::sync::watch;

/// How often the depth gauge is refreshed.
const DEPTH_INTERVAL: Duration = Duration::from_secs(5);
/// Dead letters in hand at once: they are rare, and each is one small update.
const PREFETCH: u16 = 16;

pub struct DeadLetters {
    pool: PgPool,
    rabbitmq: Arc<RabbitMqSettings>,
    retry: Backoff,
}

impl DeadLetters {
    pub fn new(pool: PgPool, rabbitmq: RabbitMqSettings) -> Self {
        let retry = Backoff::new(Duration::from_millis(100), Duration::from_secs(5), Duration::from_secs(30));
        Self { pool, rabbitmq: Arc::new(rabbitmq), retry }
    }

    /// Consumes until `stop` turns true, reconnecting with backoff when the broker goes away.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let reconnect = Backoff::new(Duration::from_millis(200), Duration::from_secs(5), Duration::MAX);
        let mut failures = 0;
        let name = format!("{}-dead-letters", Service::Ingest.name());
        loop {
            let connected = tokio::select! {
                connected = JobConsumer::connect_dead_letters(&self.rabbitmq, &name, PREFETCH) => connected,
                _ = stopped(&mut stop) => return,
            };
            let mut consumer = match connected {
                Ok(consumer) => consumer,
                Err(e) => {
                    let delay = reconnect.delay(failures);
                    failures += 1;
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot consume the dead-letter queue");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => continue,
                        _ = stopped(&mut stop) => return,
                    }
                }
            };
            failures = 0;
            let mut depth_tick = tokio::time::interval(DEPTH_INTERVAL);
            let mut stopping = false;
            loop {
                tokio::select! {
                    _ = stopped(&mut stop) => {
                        stopping = true;
                        break;
                    }
                    next = consumer.next() => match next {
                        Some(Ok(delivery)) => self.handle(delivery).await,
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "lost the dead-letter consumer; reconnecting");
                            break;
                        }
                        None => {
                            tracing::warn!("the dead-letter consumer ended; reconnecting");
                            break;
                        }
                    },
                    _ = depth_tick.tick() => match consumer.queue_depth().await {
                        Ok(depth) => metrics::gauge!(DEAD_LETTER_DEPTH).set(f64::from(depth)),
                        Err(e) => tracing::debug!(error = %e, "cannot read the dead-letter queue depth"),
                    },
                }
            }
            // Unacked dead letters go back to the queue with the connection.
            consumer.close().await;
            if stopping {
                return;
            }
        }
    }

    /// Records one dead letter, then acks it; a database that stays away hands it back.
    async fn handle(&self, delivery: JobDelivery) {
        let job = match &delivery.job {
            Ok(job) => job.clone(),
            Err(reason) => {
                tracing::warn!(%reason, "acking an unreadable dead letter");
                settle(&delivery, "unreadable", delivery.ack().await);
                return;
            }
        };
        let why = delivery.death_reason.as_deref().unwrap_or("unknown");
        let reason = format!("the job was dead-lettered ({why}) without an outcome recorded for it");
        let marked = self
            .retry
            .retry("marking a dead-lettered submission", || submissions::mark_dead_lettered(&self.pool, job.submission_id, &reason), db::is_transient)
            .await;
        let outcome = match marked {
            Ok(DeadLettered::MarkedFailed) => {
                tracing::warn!(submission = %job.submission_id, death_reason = why, "dead-lettered job: submission marked failed");
                "failed"
            }
            Ok(DeadLettered::Settled) => "settled",
            Ok(DeadLettered::Unknown) => "unknown",
            Err(e) => {
                tracing::warn!(submission = %job.submission_id, error = %e, "cannot record a dead letter; handing it back");
                // Back on the dead-letter queue (which has no delivery limit) for the next try.
                if let Err(e) = delivery.requeue().await {
                    tracing::info!(error = %e, "cannot hand a dead letter back; it will come again");
                }
                return;
            }
        };
        settle(&delivery, outcome, delivery.ack().await);
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn settle(delivery: &JobDelivery, outcome: &'static str, acked: Result<(), easel_core::queue::QueueError>) {
    metrics::counter!(DEAD_LETTERS_TOTAL, "outcome" => outcome).increment(1);
    if let Err(e) = acked {
        tracing::info!(error = %e, job = ?delivery.job, "cannot ack a dead letter; it will come again");
    }
}
