//! A job on its way through the worker, and how it ends.

use easel_core::db::results::NewResult;
use easel_core::db::submissions::Failure;
use easel_core::queue::JobDelivery;
use easel_model::PreparedImage;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Why a job could not be done right now.
#[derive(Debug, Clone)]
pub enum JobFault {
    /// Trying again will not help (an image that does not decode, an object that is gone).
    Permanent { code: String, reason: String },
    /// A dependency failed; worth another delivery.
    Transient(String),
}

/// A fetched, decoded and patchified image, with what that took.
pub struct Prepared {
    pub image: PreparedImage,
    pub fetch_ms: f64,
    pub decode_ms: f64,
}

/// A job taken from the queue, its image being prepared.
pub struct InFlight {
    pub delivery: JobDelivery,
    pub submission_id: Uuid,
    pub preparation: Preparation,
}

/// The task fetching and decoding a job's image; `abort` it when the job will not reach the
/// model.
pub type Preparation = JoinHandle<Result<Prepared, JobFault>>;

/// Up to `worker.batch_size` jobs that go through the model together.
pub type Batch = Vec<InFlight>;

/// How a job ends; the record stage writes it and then settles the delivery.
pub enum Outcome {
    /// Scored: write the result (and the shadow checkpoint's, if it ran), then ack.
    Done { result: Box<NewResult>, shadow: Option<Box<NewResult>> },
    /// Already scored by this model version (a redelivery, or a rescore's job delivered twice):
    /// mark it done if the claim left it processing, then ack.
    AlreadyScored,
    /// A job for a submission that is done already (published twice): ack.
    Duplicate,
    /// Will never be scored: mark the submission failed, then dead-letter.
    Failed(Failure),
    /// Nothing to record (no such submission, or already failed): dead-letter.
    Discard(String),
    /// A transient fault: hand the job back for another delivery.
    Retry(String),
}

impl Outcome {
    pub fn failed(submission_id: Uuid, code: impl Into<String>, reason: impl Into<String>) -> Self {
        Outcome::Failed(Failure { submission_id, code: code.into(), reason: reason.into() })
    }
}

/// A job with its outcome, waiting to be recorded and settled.
pub struct Settled {
    pub delivery: JobDelivery,
    pub submission_id: Uuid,
    pub outcome: Outcome,
}
