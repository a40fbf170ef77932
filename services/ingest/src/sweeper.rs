//! Writes the job again for submissions stuck in `queued` or `processing` past
//! `ingest.stuck_after_seconds` (a message lost with a broker's disk, a worker that died holding
//! it and was never redelivered), through the outbox, so the relay publishes it like any other.
//! Exactly-once stays the worker's: a result is unique per submission and model version, and a
//! job for a submission already done is acked as a duplicate. Several ingest instances sweep
//! without doubling a job: each locks the rows it sweeps (`SKIP LOCKED`) and skips a submission
//! whose job is still waiting in the outbox.

use std::sync::Arc;
use std::time::Duration;

use easel_core::db::submissions;
use easel_core::metrics::SWEPT_TOTAL;
use sqlx::PgPool;
use tokio::sync::{Notify, watch};

pub struct Sweeper {
    pool: PgPool,
    jobs_written: Arc<Notify>,
    interval: Duration,
    stuck_after: Duration,
    batch: i64,
}

impl Sweeper {
    pub fn new(pool: PgPool, jobs_written: Arc<Notify>, interval: Duration, stuck_after: Duration, batch: i64) -> Self {
        Self { pool, jobs_written, interval, stuck_after, batch }
    }

    /// Sweeps every `interval` until `stop` turns true.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        crate::periodic::every(self.interval, stop, || async {
            if let Err(e) = self.sweep().await {
                tracing::warn!(error = %e, "cannot sweep for stuck submissions");
            }
        })
        .await;
    }

    /// Sweeps until no stuck submission is left (in batches of `ingest.outbox_batch`).
    async fn sweep(&self) -> Result<(), sqlx::Error> {
        loop {
            let swept = submissions::sweep_stuck(&self.pool, self.stuck_after, self.batch).await?;
            if swept.is_empty() {
                return Ok(());
            }
            metrics::counter!(SWEPT_TOTAL).increment(swept.len() as u64);
            tracing::warn!(submissions = swept.len(), first = %swept[0], "re-enqueued stuck submissions");
            self.jobs_written.notify_one();
            if swept.len() < self.batch as usize {
                return Ok(());
            }
        }
    }
}
