//! Takes jobs from the queue, starts fetching and decoding each image at once, and hands them
//! on in batches of `batch_size`, or — once `batch_timeout_ms` has passed since a batch's first
//! job — whatever has arrived by the time the model is free to take it (a partial batch never
//! waits in line while more jobs could join it). Reconnects, with backoff, when the broker goes
//! away.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use easel_core::configuration::Settings;
use easel_core::domain::JobMessage;
use easel_core::metrics::{QUEUE_DEPTH, QUEUE_WAIT_SECONDS, Stage, job_outcome};
use easel_core::queue::{JobConsumer, JobDelivery};
use easel_core::retry::Backoff;
use easel_core::storage::{sha256_hex, sha256_of_key, ImageStore, StorageError};
use easel_imaging::DecodeLimits;
use easel_model::{ImageProcessor, ModelError};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::job::{Batch, InFlight, JobFault, Prepared};

/// How often the queue depth gauge is refreshed.
const DEPTH_INTERVAL: Duration = Duration::from_secs(5);

pub struct Intake {
    pub settings: Arc<Settings>,
    pub store: ImageStore,
    pub processor: ImageProcessor,
    pub limits: Arc<DecodeLimits>,
    /// Bounds the images decoded at once (CPU work beside the model).
    pub decode_slots: Arc<Semaphore>,
    /// Whether a consumer is connected (readiness).
    pub connected: Arc<AtomicBool>,
}

impl Intake {
    /// Runs until `stop`; then stops consuming, hands on the partial batch and returns the
    /// consumer, whose connection must stay open until those jobs are settled.
    pub async fn run(self, batches: mpsc::Sender<Batch>, mut stop: watch::Receiver<bool>) -> Option<JobConsumer> {
        let worker = &self.settings.worker;
        let reconnect = Backoff::new(Duration::from_millis(200), Duration::from_secs(5), Duration::MAX);
        let mut failures = 0;
        let mut depth_tick = tokio::time::interval(DEPTH_INTERVAL);
        let name = consumer_name();
        loop {
            let connected = tokio::select! {
                connected = JobConsumer::connect(&self.settings.rabbitmq, &name, self.settings.prefetch()) => connected,
                _ = stopped(&mut stop) => return None,
            };
            let mut consumer = match connected {
                Ok(consumer) => consumer,
                Err(e) => {
                    let delay = reconnect.delay(failures);
                    failures += 1;
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot consume from RabbitMQ");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => continue,
                        _ = stopped(&mut stop) => return None,
                    }
                }
            };
            failures = 0;
            self.connected.store(true, Ordering::Relaxed);
            tracing::info!(queue = %self.settings.rabbitmq.queue, prefetch = self.settings.prefetch(), "consuming");

            let mut batch: Batch = Vec::with_capacity(worker.batch_size);
            let mut deadline = tokio::time::Instant::now();
            // The batch's time is up: it goes as soon as the assess stage can take it.
            let mut due = false;
            loop {
                tokio::select! {
                    _ = stopped(&mut stop) => {
                        if let Err(e) = consumer.cancel().await {
                            tracing::warn!(error = %e, "cannot cancel the consumer");
                        }
                        flush(&batches, &mut batch).await;
                        self.connected.store(false, Ordering::Relaxed);
                        return Some(consumer);
                    }
                    next = consumer.next() => match next {
                        Some(Ok(delivery)) => {
                            if let Some(job) = self.admit(delivery).await {
                                if batch.is_empty() {
                                    deadline = tokio::time::Instant::now() + worker.batch_timeout();
                                }
                                batch.push(job);
                                if batch.len() >= worker.batch_size {
                                    flush(&batches, &mut batch).await;
                                    due = false;
                                }
                            }
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "lost the RabbitMQ consumer; reconnecting");
                            break;
                        }
                        None => {
                            tracing::warn!("the RabbitMQ consumer ended; reconnecting");
                            break;
                        }
                    },
                    _ = tokio::time::sleep_until(deadline), if !batch.is_empty() && !due => due = true,
                    permit = batches.reserve(), if due => {
                        due = false;
                        match permit {
                            Ok(permit) => permit.send(std::mem::take(&mut batch)),
                            Err(_) => tracing::error!("the assess stage is gone; the jobs in hand will be delivered again"),
                        }
                    }
                    _ = depth_tick.tick() => match consumer.queue_depth().await {
                        Ok(depth) => metrics::gauge!(QUEUE_DEPTH).set(f64::from(depth)),
                        Err(e) => tracing::debug!(error = %e, "cannot read the queue depth"),
                    },
                }
            }
            // The jobs in hand were delivered on the lost connection; the broker delivers them
            // again. Finishing them anyway is harmless: their results are written once.
            flush(&batches, &mut batch).await;
            self.connected.store(false, Ordering::Relaxed);
            consumer.close().await;
        }
    }

    /// Starts preparing a delivered job; an unreadable one is dead-lettered here.
    async fn admit(&self, delivery: JobDelivery) -> Option<InFlight> {
        let job = match &delivery.job {
            Ok(job) => job.clone(),
            Err(reason) => {
                tracing::error!(%reason, "dead-lettering an unreadable job");
                if let Err(e) = delivery.dead_letter().await {
                    tracing::warn!(error = %e, "cannot dead-letter; it will be delivered again");
                }
                job_outcome("rejected", 1);
                return None;
            }
        };
        if let Some(published_ms) = delivery.published_at_ms {
            let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as f64).unwrap_or(0.0);
            metrics::histogram!(QUEUE_WAIT_SECONDS).record(((now_ms - published_ms as f64) / 1e3).max(0.0));
        }
        let preparation = tokio::spawn(prepare(
            self.store.clone(),
            self.processor.clone(),
            self.limits.clone(),
            self.decode_slots.clone(),
            self.settings.worker.retry_policy(),
            job.clone(),
        ));
        Some(InFlight { delivery, submission_id: job.submission_id, preparation })
    }
}

async fn flush(batches: &mpsc::Sender<Batch>, batch: &mut Batch) {
    if batch.is_empty() {
        return;
    }
    let full = std::mem::take(batch);
    if batches.send(full).await.is_err() {
        tracing::error!("the assess stage is gone; the jobs in hand will be delivered again");
    }
}

/// A consumer tag that tells workers apart in RabbitMQ's management UI (and names the worker's
/// heartbeat row).
pub fn consumer_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
    format!("easel-worker@{host}/{}", std::process::id())
}

/// Fetches the image (retrying transient S3 faults) and decodes, resizes and patchifies it.
async fn prepare(
    store: ImageStore,
    processor: ImageProcessor,
    limits: Arc<DecodeLimits>,
    decode_slots: Arc<Semaphore>,
    retry: Backoff,
    job: JobMessage,
) -> Result<Prepared, JobFault> {
    let started = Instant::now();
    let max_bytes = limits.max_bytes;
    let bytes = retry
        .retry("fetching an image", || Stage::Fetch.time(1, store.get_limited(&job.image_key, max_bytes)), StorageError::is_transient)
        .await
        .map_err(|e| match e {
            StorageError::NotFound { .. } => JobFault::Permanent { code: "image.missing".into(), reason: e.to_string() },
            StorageError::TooLarge { .. } => JobFault::Permanent { code: "image.too_many_bytes".into(), reason: e.to_string() },
            StorageError::Unavailable { .. } => JobFault::Transient(e.to_string()),
        })?;
    // The key names the sha256 of what ingest validated: anything else in the object (replaced
    // or damaged in the bucket) is not what was entered.
    let sha256 = sha256_hex(&bytes);
    if sha256_of_key(&job.image_key) != Some(sha256.as_str()) {
        return Err(JobFault::Permanent {
            code: "image.checksum".into(),
            reason: format!("the object {} holds bytes with sha256 {sha256}", job.image_key),
        });
    }
    let fetch_ms = started.elapsed().as_secs_f64() * 1e3;

    let _slot = decode_slots.acquire_owned().await.map_err(|e| JobFault::Transient(e.to_string()))?;
    let started = Instant::now();
    let image = Stage::Decode
        .run_blocking(1, move || processor.prepare_bytes(&bytes, &limits))
        .await
        .map_err(|e| JobFault::Transient(format!("the decode task failed: {e}")))?
        .map_err(|e| match e {
            ModelError::Image(decode) => JobFault::Permanent { code: format!("image.{}", decode.code()), reason: decode.to_string() },
            other => JobFault::Permanent { code: "image.preprocess".into(), reason: other.to_string() },
        })?;
    Ok(Prepared { image, fetch_ms, decode_ms: started.elapsed().as_secs_f64() * 1e3 })
}

/// Resolves once `stop` turns true (without holding its lock across later awaits).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
