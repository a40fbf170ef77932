//! Writes a batch's outcome in one transaction, then settles its deliveries: acks only after
//! the commit, so a crash before it means redelivery, never a lost result.

use std::time::Instant;

use easel_core::db;
use easel_core::db::results::{self, BatchRecord};
use easel_core::metrics::{Stage, job_outcome};
use easel_core::retry::Backoff;
use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::job::{Outcome, Settled};

pub struct Record {
    pool: PgPool,
    retry: Backoff,
    /// The version this worker scores with (what `AlreadyScored` refers to).
    model_version: String,
}

impl Record {
    pub fn new(pool: PgPool, retry: Backoff, model_version: String) -> Self {
        Self { pool, retry, model_version }
    }

    pub async fn run(self, mut batches: mpsc::Receiver<Vec<Settled>>) {
        while let Some(batch) = batches.recv().await {
            self.record(batch).await;
        }
    }

    async fn record(&self, batch: Vec<Settled>) {
        let mut record = BatchRecord { model_version: self.model_version.clone(), ..BatchRecord::default() };
        for settled in &batch {
            match &settled.outcome {
                Outcome::Done { result, shadow } => {
                    record.results.push((**result).clone());
                    record.results.extend(shadow.as_deref().cloned());
                }
                Outcome::Failed(failure) => record.failures.push(failure.clone()),
                Outcome::AlreadyScored => record.already_scored.push(settled.submission_id),
                Outcome::Duplicate | Outcome::Discard(_) | Outcome::Retry(_) => {}
            }
        }
        let written = if record.is_empty() {
            Ok(())
        } else {
            self.retry
                .retry("writing a batch", || Stage::Db.time(record.len(), results::record_batch(&self.pool, &record)), db::is_transient)
                .await
        };
        if let Err(e) = &written {
            tracing::error!(error = %e, jobs = batch.len(), "cannot write the batch; handing it back");
        }

        let started = Instant::now();
        let jobs = batch.len();
        for settled in batch {
            let id = settled.submission_id;
            let (outcome, settle) = match (&written, settled.outcome) {
                (Err(_), _) | (Ok(()), Outcome::Retry(_)) => ("retried", settled.delivery.requeue().await),
                (Ok(()), Outcome::Done { .. }) => ("done", settled.delivery.ack().await),
                (Ok(()), Outcome::Duplicate | Outcome::AlreadyScored) => ("duplicate", settled.delivery.ack().await),
                (Ok(()), Outcome::Failed(failure)) => {
                    tracing::warn!(submission = %id, code = %failure.code, reason = %failure.reason, "submission failed");
                    ("failed", settled.delivery.dead_letter().await)
                }
                (Ok(()), Outcome::Discard(reason)) => {
                    tracing::warn!(submission = %id, %reason, "dead-lettering a job");
                    ("discarded", settled.delivery.dead_letter().await)
                }
            };
            job_outcome(outcome, 1);
            if let Err(e) = settle {
                // The channel it came on is gone: the broker delivers it again, and a result
                // already written makes that a duplicate.
                tracing::info!(submission = %id, error = %e, "cannot settle a delivery; it will come again");
            }
        }
        Stage::Ack.record(started.elapsed(), jobs);
    }
}
