//! Prometheus metrics shared by the services. Every process installs one recorder; `/metrics`
//! renders it.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Jobs settled by a worker, by `outcome`: `done`, `duplicate` (already scored), `failed`,
/// `discarded` (no such submission, or already failed: dead-lettered), `retried`, `rejected`
/// (unreadable message).
pub const JOBS_TOTAL: &str = "easel_jobs_total";
/// Jobs per model batch.
pub const BATCH_SIZE: &str = "easel_batch_size";
/// Seconds the model sat unused between two batches: waiting for jobs to arrive, for the
/// batch's claim, for images still being fetched or decoded. With a backlog in the queue this
/// is the pipeline's cost on the accelerator's time; it should stay near zero.
pub const MODEL_IDLE_SECONDS: &str = "easel_model_idle_seconds";
/// Time spent per pipeline stage (`stage` label, see [`Stage`]).
pub const STAGE_SECONDS: &str = "easel_stage_seconds";
/// CPU time of the blocking stages (validate, decode, model) on the thread that ran them: with
/// [`STAGE_JOBS_TOTAL`], the CPU a pod spends per image (what its cores must be sized for).
/// The model's compute pool, which the calling thread hands its matrix work to on the CPU, is
/// not in it.
pub const STAGE_CPU_SECONDS: &str = "easel_stage_cpu_seconds";
/// Jobs of a stage-timed step: with [`STAGE_SECONDS`]' sum, gives the time per job of steps
/// that run once per batch.
pub const STAGE_JOBS_TOTAL: &str = "easel_stage_jobs_total";
/// Messages ready in the jobs queue, as last seen.
pub const QUEUE_DEPTH: &str = "easel_queue_depth";
/// Jobs written but not yet published, as last seen.
pub const OUTBOX_DEPTH: &str = "easel_outbox_depth";
/// Submissions the sweeper found stuck and wrote a job for again.
pub const SWEPT_TOTAL: &str = "easel_swept_total";
/// Stored images no submission referred to, deleted by ingest's orphan sweep.
pub const ORPHANS_DELETED_TOTAL: &str = "easel_orphans_deleted_total";
/// Messages in the dead-letter queue, as last seen.
pub const DEAD_LETTER_DEPTH: &str = "easel_dead_letter_depth";
/// Dead letters consumed by ingest, by `outcome`: `failed` (the submission marked failed),
/// `settled` (done, or already failed by the worker: left as it is), `unknown` (no such
/// submission), `unreadable` (not a job).
pub const DEAD_LETTERS_TOTAL: &str = "easel_dead_letters_total";
/// Bulk requests being served by this ingest pod (at most `ingest.bulk_requests`; more get 503
/// `ingest.busy`).
pub const BULK_REQUESTS_IN_FLIGHT: &str = "easel_bulk_requests_in_flight";
/// Uploads by `outcome`: `accepted`, `duplicate`, `rejected`.
pub const SUBMISSIONS_TOTAL: &str = "easel_submissions_total";
/// Seconds from publication to delivery to a worker.
pub const QUEUE_WAIT_SECONDS: &str = "easel_queue_wait_seconds";
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";

/// A timed step of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Ingest: sniffing and decoding an upload to validate it.
    Validate,
    /// Ingest: S3 PutObject.
    Store,
    /// Ingest: the submission and outbox insert.
    Insert,
    /// Ingest: publishing a batch of outbox jobs with confirms.
    Publish,
    /// Worker: S3 GetObject.
    Fetch,
    /// Worker: decode, resize and patchify.
    Decode,
    /// Worker: marking a batch processing and reading its context.
    Claim,
    /// Worker: one model call for a batch.
    Model,
    /// Worker: the batch's result transaction.
    Db,
    /// Worker: acknowledging a batch's deliveries.
    Ack,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Validate => "validate",
            Stage::Store => "store",
            Stage::Insert => "insert",
            Stage::Publish => "publish",
            Stage::Fetch => "fetch",
            Stage::Decode => "decode",
            Stage::Claim => "claim",
            Stage::Model => "model",
            Stage::Db => "db",
            Stage::Ack => "ack",
        }
    }

    /// Records that this stage took `elapsed` for `jobs` jobs.
    pub fn record(self, elapsed: Duration, jobs: usize) {
        metrics::histogram!(STAGE_SECONDS, "stage" => self.as_str()).record(elapsed.as_secs_f64());
        metrics::counter!(STAGE_JOBS_TOTAL, "stage" => self.as_str()).increment(jobs as u64);
    }

    /// Times `work`, recording it for `jobs` jobs.
    pub async fn time<T>(self, jobs: usize, work: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = work.await;
        self.record(started.elapsed(), jobs);
        out
    }

    /// Runs blocking `work` on tokio's blocking pool, recording its wall time for `jobs` jobs and
    /// the CPU time it used on that thread ([`STAGE_CPU_SECONDS`]).
    pub async fn run_blocking<T: Send + 'static>(
        self,
        jobs: usize,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        let started = Instant::now();
        let out = tokio::task::spawn_blocking(move || {
            let cpu = thread_cpu_time();
            let out = work();
            let used = thread_cpu_time().saturating_sub(cpu);
            metrics::histogram!(STAGE_CPU_SECONDS, "stage" => self.as_str()).record(used.as_secs_f64());
            out
        })
        .await;
        self.record(started.elapsed(), jobs);
        out
    }
}

/// The CPU time (user + system) the calling thread has used so far; zero where the clock cannot
/// be read.
pub fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec it is given a valid pointer to.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(u64::try_from(now.tv_sec).unwrap_or(0), u32::try_from(now.tv_nsec).unwrap_or(0))
}

pub fn job_outcome(outcome: &'static str, jobs: usize) {
    metrics::counter!(JOBS_TOTAL, "outcome" => outcome).increment(jobs as u64);
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (once) and returns the handle `/metrics` renders.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let seconds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]))
                .map(|b| b.build_recorder())
                .expect("the bucket lists are not empty");
            let handle = recorder.handle();
            // Fails only if another recorder is installed, in which case ours records nothing
            // but still renders.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_clock_counts_work_and_not_sleep() {
        let before = thread_cpu_time();
        std::thread::sleep(Duration::from_millis(100));
        let slept = thread_cpu_time().saturating_sub(before);
        assert!(slept < Duration::from_millis(20), "sleeping 100 ms used {slept:?} of CPU");

        let (start, wall) = (thread_cpu_time(), Instant::now());
        let mut x = 0u64;
        while thread_cpu_time().saturating_sub(start) < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            assert!(wall.elapsed() < Duration::from_secs(20), "the thread clock did not advance while spinning");
        }
        // The two clocks are read at different moments and, on some VMs, the thread clock
        // advances in scheduler ticks: allow one tick (≤ 10 ms) of disagreement.
        let (used, elapsed) = (thread_cpu_time().saturating_sub(start), wall.elapsed());
        assert!(used <= elapsed + Duration::from_millis(10), "one thread used more CPU ({used:?}) than wall time ({elapsed:?})");
    }
}
