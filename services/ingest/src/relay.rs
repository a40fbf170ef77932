//! Publishes the jobs the outbox holds, oldest first, with publisher confirms, deleting each
//! batch in the transaction that locked it. Several ingest instances share the work (`SKIP
//! LOCKED`); a crash before the delete commits leaves the batch to be published again, which
//! the worker absorbs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use easel_core::db::outbox;
use easel_core::domain::JobMessage;
use easel_core::metrics::{OUTBOX_DEPTH, Stage};
use easel_core::queue::{Publisher, QueueError};
use easel_core::retry::Backoff;
use sqlx::PgPool;
use tokio::sync::{Notify, watch};

pub struct OutboxRelay {
    pool: PgPool,
    publisher: Arc<Publisher>,
    jobs_written: Arc<Notify>,
    batch: i64,
    poll: Duration,
    backoff: Backoff,
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl OutboxRelay {
    pub fn new(pool: PgPool, publisher: Arc<Publisher>, jobs_written: Arc<Notify>, batch: i64, poll: Duration) -> Self {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5), Duration::MAX);
        Self { pool, publisher, jobs_written, batch, poll, backoff }
    }

    /// Relays until `stop` turns true, then drains what is left (if the broker takes it).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut failures = 0;
        let mut last_depth_report = Instant::now().checked_sub(self.poll).unwrap_or_else(Instant::now);
        loop {
            match self.drain().await {
                Ok(()) => failures = 0,
                Err(e) => {
                    let delay = self.backoff.delay(failures);
                    failures += 1;
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot relay the outbox");
                    self.report_depth(&mut last_depth_report).await;
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => continue,
                        _ = stop.wait_for(|s| *s) => break,
                    }
                }
            }
            self.report_depth(&mut last_depth_report).await;
            tokio::select! {
                _ = self.jobs_written.notified() => {}
                _ = tokio::time::sleep(self.poll) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        if let Err(e) = self.drain().await {
            tracing::warn!(error = %e, "jobs left in the outbox at shutdown; the next instance publishes them");
        }
    }

    /// Refreshes the outbox depth gauge, at most once per poll interval.
    async fn report_depth(&self, last: &mut Instant) {
        if last.elapsed() >= self.poll {
            *last = Instant::now();
            if let Ok(depth) = outbox::depth(&self.pool).await {
                metrics::gauge!(OUTBOX_DEPTH).set(depth as f64);
            }
        }
    }

    /// Publishes batches until the outbox is empty.
    async fn drain(&self) -> Result<(), RelayError> {
        while self.publish_batch().await? == self.batch as usize {}
        Ok(())
    }

    /// Publishes one batch; returns its size.
    async fn publish_batch(&self) -> Result<usize, RelayError> {
        let mut tx = self.pool.begin().await?;
        let pending = outbox::lock_pending(&mut tx, self.batch).await?;
        if pending.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = pending.iter().map(|p| p.id).collect();
        let jobs: Vec<JobMessage> = pending.into_iter().map(|p| p.payload.0).collect();
        Stage::Publish.time(jobs.len(), self.publisher.publish(&jobs)).await?;
        outbox::delete(&mut tx, &ids).await?;
        tx.commit().await?;
        tracing::debug!(jobs = jobs.len(), "published");
        Ok(jobs.len())
    }
}
