//! Claims a batch in Postgres, waits for its images and runs the model once for all of them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use easel_core::configuration::{FaultInjection, WorkerSettings};
use easel_core::db;
use easel_core::db::results::NewResult;
use easel_core::db::submissions::{self, Claimed};
use easel_core::domain::{Critique, Score, SubmissionStatus};
use easel_core::metrics::{BATCH_SIZE, MODEL_IDLE_SECONDS, Stage};
use easel_core::queue::JobDelivery;
use easel_core::retry::Backoff;
use easel_model::{ArtworkInput, Assessment, Assessor, ModelError};
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::job::{Batch, InFlight, JobFault, Outcome, Prepared, Settled};

pub struct Assess {
    pool: PgPool,
    assessor: Arc<Assessor>,
    /// `worker.shadow`: a second checkpoint and the share of jobs it also scores.
    shadow: Option<(Arc<Assessor>, f64)>,
    retry: Backoff,
    max_attempts: u32,
    /// Test-only model failures (`worker.fault_injection`; refused in production).
    faults: Arc<FaultInjection>,
    /// When the model last finished a batch (for [`MODEL_IDLE_SECONDS`]).
    model_free_since: Mutex<Option<Instant>>,
}

/// A job bound for the model, its image ready.
struct ModelJob {
    delivery: JobDelivery,
    claim: Claimed,
    prepared: Prepared,
}

impl Assess {
    pub fn new(pool: PgPool, assessor: Arc<Assessor>, shadow: Option<(Arc<Assessor>, f64)>, settings: &WorkerSettings) -> Self {
        Self {
            pool,
            assessor,
            shadow,
            retry: settings.retry_policy(),
            max_attempts: settings.max_attempts,
            faults: Arc::new(settings.fault_injection.clone()),
            model_free_since: Mutex::new(None),
        }
    }

    /// Assesses batches until the intake stops sending them.
    pub async fn run(self, mut batches: mpsc::Receiver<Batch>, settled: mpsc::Sender<Vec<Settled>>) {
        while let Some(batch) = batches.recv().await {
            let outcome = self.assess_batch(batch).await;
            if settled.send(outcome).await.is_err() {
                tracing::error!("the record stage is gone; the jobs in hand will be delivered again");
                break;
            }
        }
    }

    async fn assess_batch(&self, batch: Batch) -> Vec<Settled> {
        metrics::histogram!(BATCH_SIZE).record(batch.len() as f64);
        let ids: Vec<Uuid> = batch.iter().map(|item| item.submission_id).collect();
        let version = self.assessor.model_version().to_string();
        let claimed = self
            .retry
            .retry(
                "claiming a batch",
                || Stage::Claim.time(ids.len(), submissions::claim(&self.pool, &ids, &version)),
                db::is_transient,
            )
            .await;
        let mut claimed: HashMap<Uuid, Claimed> = match claimed {
            Ok(rows) => rows.into_iter().map(|c| (c.id, c)).collect(),
            Err(e) => {
                let reason = format!("cannot claim the batch: {e}");
                return batch
                    .into_iter()
                    .map(|item| {
                        item.preparation.abort();
                        Settled { delivery: item.delivery, submission_id: item.submission_id, outcome: Outcome::Retry(reason.clone()) }
                    })
                    .collect();
            }
        };

        let mut settled = Vec::with_capacity(batch.len());
        let mut for_model = Vec::with_capacity(batch.len());
        let mut seen = HashSet::with_capacity(batch.len());
        for item in batch {
            // The same job twice in one batch (published twice, delivered together): the first
            // is assessed; the other is settled with it, as a duplicate.
            if !seen.insert(item.submission_id) {
                item.preparation.abort();
                settled.push(Settled { delivery: item.delivery, submission_id: item.submission_id, outcome: Outcome::Duplicate });
                continue;
            }
            let claim = claimed.remove(&item.submission_id);
            match self.triage(item, claim).await {
                Ok(job) => for_model.push(job),
                Err(done) => settled.push(done),
            }
        }
        settled.extend(self.run_model(for_model).await);
        settled
    }

    /// Decides what becomes of one job of a claimed batch, waiting for its image if it goes on
    /// to the model.
    async fn triage(&self, item: InFlight, claim: Option<Claimed>) -> Result<ModelJob, Settled> {
        let InFlight { delivery, submission_id: id, preparation } = item;
        let settle = |delivery, outcome| Settled { delivery, submission_id: id, outcome };

        let Some(claim) = claim else {
            preparation.abort();
            return Err(settle(delivery, Outcome::Discard(format!("there is no submission {id}"))));
        };
        let status = claim.status();
        if claim.has_result {
            preparation.abort();
            return Err(settle(delivery, Outcome::AlreadyScored));
        }
        if matches!(status, Ok(SubmissionStatus::Done)) {
            // Done by another version and not re-queued by a rescore: a stray copy of a job.
            preparation.abort();
            return Err(settle(delivery, Outcome::Duplicate));
        }
        if matches!(status, Ok(SubmissionStatus::Failed)) {
            preparation.abort();
            return Err(settle(delivery, Outcome::Discard(format!("submission {id} has already failed"))));
        }
        // Attempts are the batches that took it (Postgres), not the broker's deliveries: a job
        // handed back unstarted by a drained or stopped worker does not use one up.
        let attempts = u32::try_from(claim.attempts).unwrap_or(u32::MAX);
        let exhausted =
            |reason: &str| Outcome::failed(id, "attempts_exhausted", format!("gave up after {attempts} attempts: {reason}"));
        if attempts > self.max_attempts {
            // Taken that often without an outcome: it likely takes the worker down with it.
            preparation.abort();
            return Err(settle(delivery, exhausted("no outcome was recorded")));
        }
        let prepared =
            preparation.await.unwrap_or_else(|e| Err(JobFault::Transient(format!("the preparation task failed: {e}"))));
        match prepared {
            Ok(prepared) => Ok(ModelJob { delivery, claim, prepared }),
            Err(JobFault::Permanent { code, reason }) => Err(settle(delivery, Outcome::failed(id, code, reason))),
            Err(JobFault::Transient(reason)) if attempts >= self.max_attempts => Err(settle(delivery, exhausted(&reason))),
            Err(JobFault::Transient(reason)) => Err(settle(delivery, Outcome::Retry(reason))),
        }
    }

    /// One model call for the whole batch. If it fails (an error or a panic), each painting is
    /// tried alone, so that one bad input fails only itself: a painting the model returns an
    /// error for fails (`model.error`); one it panics on is handed back for another attempt, and
    /// fails (`attempts_exhausted`) once it has had `max_attempts`. Every job is settled either
    /// way, never left unacknowledged until the broker's consumer timeout.
    async fn run_model(&self, jobs: Vec<ModelJob>) -> Vec<Settled> {
        if jobs.is_empty() {
            return Vec::new();
        }
        let mut inputs = Vec::with_capacity(jobs.len());
        let mut metas = Vec::with_capacity(jobs.len());
        for ModelJob { delivery, claim, prepared } in jobs {
            inputs.push(ArtworkInput { image: prepared.image, description: claim.description.clone() });
            metas.push((delivery, claim, prepared.fetch_ms, prepared.decode_ms));
        }
        let n = inputs.len();
        let inputs = Arc::new(inputs);
        self.model_busy(true);
        let rows: Vec<Row> = match self.assess(inputs.clone()).await {
            Call::Done(all) => all.into_iter().map(Row::Assessed).collect(),
            failed if n == 1 => vec![failed.into_row()],
            failed => {
                tracing::warn!(error = %failed.reason(), batch = n, "the batch failed in the model; trying each painting alone");
                let mut singles = Vec::with_capacity(n);
                for input in inputs.iter() {
                    singles.push(self.assess(Arc::new(vec![input.clone()])).await.into_row());
                }
                singles
            }
        };
        let mut shadowed = self.run_shadow(&inputs, &metas, &rows).await;
        self.model_busy(false);
        let version = self.assessor.model_version();
        metas
            .into_iter()
            .zip(rows)
            .enumerate()
            .map(|(i, ((delivery, claim, fetch_ms, decode_ms), row))| {
                let id = claim.id;
                let outcome = match row {
                    Row::Assessed(a) => match new_result(&claim, version, a, fetch_ms, decode_ms) {
                        Ok(result) => {
                            let shadow = shadowed.remove(&i).zip(self.shadow.as_ref()).and_then(|(a, (shadow, _))| {
                                new_result(&claim, shadow.model_version(), a, fetch_ms, decode_ms)
                                    .map(|r| Box::new(NewResult { shadow: true, ..r }))
                                    .ok()
                            });
                            Outcome::Done { result: Box::new(result), shadow }
                        }
                        Err(failed) => failed,
                    },
                    Row::Error(reason) => Outcome::failed(id, "model.error", reason),
                    Row::Panicked(reason) if u32::try_from(claim.attempts).unwrap_or(u32::MAX) >= self.max_attempts => {
                        Outcome::failed(id, "attempts_exhausted", format!("gave up after {} attempts: {reason}", claim.attempts))
                    }
                    Row::Panicked(reason) => Outcome::Retry(reason),
                };
                Settled { delivery, submission_id: id, outcome }
            })
            .collect()
    }

    /// Runs the shadow checkpoint on the paintings of the batch it samples that the served model
    /// assessed; returns their assessments by index. A failure of the shadow costs the batch
    /// nothing: it is logged, and those paintings go without a shadow result.
    async fn run_shadow(
        &self,
        inputs: &Arc<Vec<ArtworkInput>>,
        metas: &[(JobDelivery, Claimed, f64, f64)],
        rows: &[Row],
    ) -> HashMap<usize, Assessment> {
        let Some((shadow, share)) = &self.shadow else {
            return HashMap::new();
        };
        let picked: Vec<usize> = (0..rows.len())
            .filter(|&i| matches!(rows[i], Row::Assessed(_)) && sampled(metas[i].1.id, *share))
            .collect();
        if picked.is_empty() {
            return HashMap::new();
        }
        let batch: Vec<ArtworkInput> = picked.iter().map(|&i| inputs[i].clone()).collect();
        let model = shadow.clone();
        match tokio::task::spawn_blocking(move || model.assess(&batch)).await {
            Ok(Ok(all)) if all.len() == picked.len() => picked.into_iter().zip(all).collect(),
            Ok(Ok(all)) => {
                tracing::warn!(returned = all.len(), expected = picked.len(), "the shadow checkpoint returned the wrong count");
                HashMap::new()
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, paintings = picked.len(), "the shadow checkpoint failed; no shadow results for this batch");
                HashMap::new()
            }
            Err(e) => {
                tracing::warn!(error = %e, paintings = picked.len(), "the shadow checkpoint panicked; no shadow results for this batch");
                HashMap::new()
            }
        }
    }

    /// Records the model starting (with the time it sat unused since its last batch) or
    /// finishing a batch.
    fn model_busy(&self, starting: bool) {
        let mut free_since = self.model_free_since.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if starting {
            if let Some(since) = free_since.take() {
                metrics::histogram!(MODEL_IDLE_SECONDS).record(since.elapsed().as_secs_f64());
            }
        } else {
            *free_since = Some(Instant::now());
        }
    }

    /// Runs the model off the async threads (one `model` stage timing for the call). The inputs
    /// stay with the caller, so that a call that panics can be tried again painting by painting.
    async fn assess(&self, inputs: Arc<Vec<ArtworkInput>>) -> Call {
        let assessor = self.assessor.clone();
        let faults = self.faults.clone();
        let expected = inputs.len();
        let task = Stage::Model.run_blocking(expected, move || {
            if let Some(fault) = injected_fault(&faults, &inputs) {
                return fault;
            }
            assessor.assess(&inputs)
        });
        match task.await {
            Ok(Ok(all)) if all.len() == expected => Call::Done(all),
            Ok(Ok(all)) => Call::Failed(format!("the model returned {} assessments for {expected} paintings", all.len())),
            Ok(Err(e)) => Call::Failed(e.to_string()),
            Err(e) => {
                tracing::error!(error = %e, batch = expected, "the model panicked");
                Call::Panicked(format!("the model panicked: {e}"))
            }
        }
    }
}

/// What one model call came to.
enum Call {
    Done(Vec<Assessment>),
    /// It returned an error: the input is at fault.
    Failed(String),
    /// It panicked (the blocking task's `JoinError`): a bug, or a fault of this process; worth
    /// another attempt, up to `max_attempts`.
    Panicked(String),
}

impl Call {
    fn reason(&self) -> &str {
        match self {
            Call::Done(_) => "",
            Call::Failed(reason) | Call::Panicked(reason) => reason,
        }
    }

    /// The outcome of a call for one painting.
    fn into_row(self) -> Row {
        match self {
            Call::Done(mut one) => one.pop().map(Row::Assessed).unwrap_or_else(|| Row::Error("no assessment".into())),
            Call::Failed(reason) => Row::Error(reason),
            Call::Panicked(reason) => Row::Panicked(reason),
        }
    }
}

/// What the model made of one painting.
enum Row {
    Assessed(Assessment),
    Error(String),
    Panicked(String),
}

/// `worker.fault_injection`: a panic or an error for a call with a painting whose description
/// holds the configured text (tests only; production refuses the setting).
fn injected_fault(faults: &FaultInjection, inputs: &[ArtworkInput]) -> Option<Result<Vec<Assessment>, ModelError>> {
    let matches = |marker: &Option<String>| {
        marker.as_deref().filter(|m| !m.is_empty()).is_some_and(|m| {
            inputs.iter().any(|input| input.description.as_deref().is_some_and(|d| d.contains(m)))
        })
    };
    if matches(&faults.model_panic_on) {
        panic!("worker.fault_injection.model_panic_on: a painting of this call asks for a panic");
    }
    matches(&faults.model_error_on)
        .then(|| Err(ModelError::Input("worker.fault_injection.model_error_on: a painting of this call asks for an error".into())))
}

/// Whether the shadow checkpoint also scores this submission: its id hashed to a fraction in
/// [0, 1), below `share`. The same id always gets the same answer. (The id's own bits will not
/// do: a v7 UUID's "random" tail starts with a counter, alike for ids made in one millisecond.)
fn sampled(id: Uuid, share: f64) -> bool {
    let (high, low) = id.as_u64_pair();
    let fraction = (mix(high ^ mix(low)) >> 11) as f64 / (1u64 << 53) as f64;
    fraction < share
}

/// SplitMix64's finaliser: every input bit moves every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The result to store of an assessment, or the failure of a model output out of range.
fn new_result(claim: &Claimed, version: &str, a: Assessment, fetch_ms: f64, decode_ms: f64) -> Result<NewResult, Outcome> {
    let scores = a.scores.try_map(Score::parse).map_err(|e| Outcome::failed(claim.id, "model.invalid_output", e.to_string()))?;
    let score = match &claim.rubric_weights {
        Some(weights) => weights.0.score(&scores),
        None => scores.overall.value(),
    };
    let timings = serde_json::json!({
        "fetch_ms": fetch_ms,
        "decode_ms": decode_ms,
        "vision_ms": a.timings.vision_ms,
        "head_ms": a.timings.head_ms,
        "generate_ms": a.timings.generate_ms,
        "batch_size": a.timings.batch_size,
    });
    let uncertainty = a.zero_shot.as_ref().map(|z| z.uncertainty);
    if let Some(bad) = uncertainty.and_then(|u| u.iter().find(|(_, sd)| !(sd.is_finite() && *sd >= 0.0))) {
        return Err(Outcome::failed(claim.id, "model.invalid_output", format!("uncertainty of {} is {}", bad.0, bad.1)));
    }
    Ok(NewResult {
        submission_id: claim.id,
        competition_id: claim.competition_id,
        model_version: version.to_string(),
        score,
        scores,
        scoring: a.scoring(),
        uncertainty,
        raw_scores: a.zero_shot.as_ref().map(|z| z.raw),
        // The model's text is untrusted: cleaned and capped before it is stored.
        critique: Critique::from_model(&a.critique).into_string(),
        new_tokens: i32::try_from(a.new_tokens).unwrap_or(i32::MAX),
        timings,
        shadow: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shadow_samples_its_share_and_always_the_same_ids() {
        let ids: Vec<Uuid> = (0..20_000).map(|_| Uuid::now_v7()).collect();
        for share in [0.1, 0.5] {
            let picked = ids.iter().filter(|&&id| sampled(id, share)).count() as f64 / ids.len() as f64;
            assert!((picked - share).abs() < 0.02, "share {share}: sampled {picked}");
        }
        assert!(ids.iter().all(|&id| sampled(id, 1.0)));
        assert!(ids.iter().all(|&id| sampled(id, 0.3) == sampled(id, 0.3)));
    }
}
