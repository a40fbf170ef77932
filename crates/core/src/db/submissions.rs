//! `submissions` and, written in the same transaction, their jobs in `outbox`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::db::outbox;
use crate::domain::{Description, ExternalId, JobMessage, RubricWeights, SubmissionStatus};

/// A validated, stored image waiting for its row.
#[derive(Debug, Clone)]
pub struct NewSubmission {
    pub competition_id: Uuid,
    pub external_id: Option<ExternalId>,
    pub image_key: String,
    pub image_sha256: String,
    pub image_format: String,
    pub image_bytes: i64,
    pub width: i32,
    pub height: i32,
    pub description: Option<Description>,
    /// The decoded image's perceptual hash (`easel_imaging::phash`), as stored.
    pub phash: Option<Vec<u8>>,
}

/// What an insert came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    pub id: Uuid,
    pub status: SubmissionStatus,
    /// False when the external id was already taken: `id` is the existing submission.
    pub created: bool,
    /// The external id was taken by a submission of another image: the entry is refused
    /// (`submission.conflict`), not a duplicate.
    pub conflict: bool,
}

#[derive(sqlx::FromRow)]
struct IdAndStatus {
    id: Uuid,
    status: String,
    image_sha256: String,
}

impl IdAndStatus {
    fn status(&self) -> Result<SubmissionStatus, sqlx::Error> {
        parse_status(&self.status)
    }
}

fn parse_status(status: &str) -> Result<SubmissionStatus, sqlx::Error> {
    SubmissionStatus::parse(status).ok_or_else(|| sqlx::Error::Decode(format!("unknown status {status:?}").into()))
}

/// The submission a competition already has under `external_id`; a `conflict` if it is of
/// another image than `image_sha256`.
pub async fn find_by_external_id(
    db: impl PgExecutor<'_>,
    competition_id: Uuid,
    external_id: &ExternalId,
    image_sha256: &str,
) -> Result<Option<Inserted>, sqlx::Error> {
    let row: Option<IdAndStatus> = sqlx::query_as(
        "SELECT id, status, image_sha256 FROM submissions WHERE competition_id = $1 AND external_id = $2",
    )
    .bind(competition_id)
    .bind(external_id.as_str())
    .fetch_optional(db)
    .await?;
    row.map(|r| Ok(Inserted { id: r.id, status: r.status()?, created: false, conflict: r.image_sha256 != image_sha256 }))
        .transpose()
}

/// Inserts the submissions and their jobs in one transaction, so that a crash leaves either
/// both or neither. An entry whose external id is taken (by an earlier request or an earlier
/// entry of the same batch) comes back as the existing submission, without a new job.
pub async fn insert_with_jobs(pool: &PgPool, entries: &[NewSubmission]) -> Result<Vec<Inserted>, sqlx::Error> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = entries.iter().map(|_| Uuid::now_v7()).collect();
    let column = |f: fn(&NewSubmission) -> String| entries.iter().map(f).collect::<Vec<_>>();
    let mut tx = pool.begin().await?;
    let created: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO submissions \
           (id, competition_id, external_id, image_key, image_sha256, image_format, image_bytes, width, height, description, \
            phash) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], \
                              $7::int8[], $8::int4[], $9::int4[], $10::text[], $11::bytea[]) \
         ON CONFLICT (competition_id, external_id) DO NOTHING \
         RETURNING id",
    )
    .bind(&ids)
    .bind(entries.iter().map(|e| e.competition_id).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.external_id.as_ref().map(|x| x.as_str().to_string())).collect::<Vec<_>>())
    .bind(column(|e| e.image_key.clone()))
    .bind(column(|e| e.image_sha256.clone()))
    .bind(column(|e| e.image_format.clone()))
    .bind(entries.iter().map(|e| e.image_bytes).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.width).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.height).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.description.as_ref().map(|d| d.as_str().to_string())).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.phash.clone()).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;

    let created: std::collections::HashSet<Uuid> = created.into_iter().collect();
    let mut outcome = Vec::with_capacity(entries.len());
    let mut jobs = Vec::new();
    for (id, entry) in ids.iter().zip(entries) {
        if created.contains(id) {
            jobs.push(JobMessage { submission_id: *id, image_key: entry.image_key.clone() });
            outcome.push(Inserted { id: *id, status: SubmissionStatus::Queued, created: true, conflict: false });
        } else {
            let external_id = entry.external_id.as_ref().ok_or_else(|| {
                sqlx::Error::Protocol("a submission without an external id was not inserted".into())
            })?;
            let existing = find_by_external_id(&mut *tx, entry.competition_id, external_id, &entry.image_sha256)
                .await?
                .ok_or(sqlx::Error::RowNotFound)?;
            outcome.push(existing);
        }
    }
    outbox::insert(&mut tx, &jobs).await?;
    tx.commit().await?;
    Ok(outcome)
}

/// Writes the job again, through the outbox, for up to `limit` submissions that have sat in
/// `queued` or `processing` for `stuck_after` without a change (a lost message, a worker that
/// died holding it) and have no job waiting in the outbox already; bumps their `updated_at` in
/// the same transaction, so the next sweep waits another `stuck_after`. Rows another instance
/// is sweeping, or a worker is claiming, are skipped (`SKIP LOCKED`). Returns the ids swept.
pub async fn sweep_stuck(pool: &PgPool, stuck_after: Duration, limit: i64) -> Result<Vec<Uuid>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let stuck: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT s.id, s.image_key FROM submissions s \
         WHERE s.status IN ('queued', 'processing') AND s.updated_at < now() - make_interval(secs => $1) \
           AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.submission_id = s.id) \
         ORDER BY s.updated_at LIMIT $2 \
         FOR UPDATE OF s SKIP LOCKED",
    )
    .bind(stuck_after.as_secs_f64())
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    if stuck.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = stuck.iter().map(|(id, _)| *id).collect();
    sqlx::query("UPDATE submissions SET updated_at = now() WHERE id = ANY($1)").bind(&ids).execute(&mut *tx).await?;
    let jobs: Vec<JobMessage> =
        stuck.into_iter().map(|(submission_id, image_key)| JobMessage { submission_id, image_key }).collect();
    outbox::insert(&mut tx, &jobs).await?;
    tx.commit().await?;
    Ok(ids)
}

/// What marking a dead-lettered job's submission came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLettered {
    /// It was `queued` or `processing`: now `failed` with `job.dead_lettered`.
    MarkedFailed,
    /// It is `done`, or already `failed` with the worker's own reason: left as it is.
    Settled,
    /// There is no such submission.
    Unknown,
}

/// Marks the submission of a dead-lettered job `failed` (`job.dead_lettered`, with `reason`),
/// unless it is done or already failed: a reason the worker recorded is kept.
pub async fn mark_dead_lettered(pool: &PgPool, id: Uuid, reason: &str) -> Result<DeadLettered, sqlx::Error> {
    let (exists, marked): (bool, bool) = sqlx::query_as(
        "WITH marked AS ( \
             UPDATE submissions SET status = 'failed', failure_code = 'job.dead_lettered', failure_reason = $2, \
                                    updated_at = now() \
             WHERE id = $1 AND status IN ('queued', 'processing') RETURNING id) \
         SELECT EXISTS (SELECT 1 FROM submissions WHERE id = $1), EXISTS (SELECT 1 FROM marked)",
    )
    .bind(id)
    .bind(reason)
    .fetch_one(pool)
    .await?;
    Ok(match (exists, marked) {
        (_, true) => DeadLettered::MarkedFailed,
        (true, false) => DeadLettered::Settled,
        (false, false) => DeadLettered::Unknown,
    })
}

/// A competition's `failed` submissions.
pub async fn count_failed(pool: &PgPool, competition_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM submissions WHERE competition_id = $1 AND status = 'failed'")
        .bind(competition_id)
        .fetch_one(pool)
        .await
}

/// Moves a competition's `failed` submissions back to `queued` (attempts reset, failure
/// cleared) and writes their jobs to the outbox, in one transaction; returns how many.
pub async fn redrive_failed(pool: &PgPool, competition_id: Uuid) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let requeued: Vec<(Uuid, String)> = sqlx::query_as(
        "UPDATE submissions SET status = 'queued', attempts = 0, failure_code = NULL, failure_reason = NULL, \
                                updated_at = now() \
         WHERE competition_id = $1 AND status = 'failed' RETURNING id, image_key",
    )
    .bind(competition_id)
    .fetch_all(&mut *tx)
    .await?;
    let jobs: Vec<JobMessage> =
        requeued.into_iter().map(|(submission_id, image_key)| JobMessage { submission_id, image_key }).collect();
    outbox::insert(&mut tx, &jobs).await?;
    tx.commit().await?;
    Ok(jobs.len() as u64)
}

/// What a rescore did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rescored {
    /// Submissions moved back to `queued`, their jobs in the outbox.
    pub queued: u64,
    /// Submissions the version had already scored (left as they are).
    pub already_scored: u64,
    /// Submissions left alone because they are queued or processing already.
    pub in_flight: u64,
}

/// Re-queues every `done` or `failed` submission of a competition that `model_version` has not
/// scored (attempts reset, failure cleared) and writes their jobs to the outbox, in the caller's
/// transaction. Results of other versions stay.
pub async fn rescore(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    competition_id: Uuid,
    model_version: &str,
) -> Result<Rescored, sqlx::Error> {
    let (already_scored, in_flight): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE EXISTS (SELECT 1 FROM results r \
                                               WHERE r.submission_id = s.id AND r.model_version = $2 AND NOT r.shadow)), \
                count(*) FILTER (WHERE s.status IN ('queued', 'processing')) \
         FROM submissions s WHERE s.competition_id = $1",
    )
    .bind(competition_id)
    .bind(model_version)
    .fetch_one(&mut **tx)
    .await?;
    let requeued: Vec<(Uuid, String)> = sqlx::query_as(
        "UPDATE submissions s SET status = 'queued', attempts = 0, failure_code = NULL, failure_reason = NULL, \
                                  updated_at = now() \
         WHERE s.competition_id = $1 AND s.status IN ('done', 'failed') \
           AND NOT EXISTS (SELECT 1 FROM results r WHERE r.submission_id = s.id AND r.model_version = $2 AND NOT r.shadow) \
         RETURNING s.id, s.image_key",
    )
    .bind(competition_id)
    .bind(model_version)
    .fetch_all(&mut **tx)
    .await?;
    let jobs: Vec<JobMessage> =
        requeued.into_iter().map(|(submission_id, image_key)| JobMessage { submission_id, image_key }).collect();
    outbox::insert(tx, &jobs).await?;
    Ok(Rescored { queued: jobs.len() as u64, already_scored: already_scored as u64, in_flight: in_flight as u64 })
}

/// What the worker needs to assess a submission, read when it takes a batch.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub competition_id: Uuid,
    pub description: Option<String>,
    pub rubric_weights: Option<Json<RubricWeights>>,
    status: String,
    /// Whether this model version already scored it (a redelivered job; shadow results do not
    /// count).
    pub has_result: bool,
    /// Batches that have taken it, this one included.
    pub attempts: i32,
}

impl Claimed {
    pub fn status(&self) -> Result<SubmissionStatus, sqlx::Error> {
        parse_status(&self.status)
    }
}

/// Marks the submissions among `ids` that are queued (or left processing by a worker that died)
/// as processing, counting the attempt, and returns every one that exists, with whether
/// `model_version` has already scored it.
pub async fn claim(pool: &PgPool, ids: &[Uuid], model_version: &str) -> Result<Vec<Claimed>, sqlx::Error> {
    sqlx::query_as(
        "WITH claimed AS ( \
             UPDATE submissions SET status = 'processing', attempts = attempts + 1, updated_at = now() \
             WHERE id = ANY($1) AND status IN ('queued', 'processing') RETURNING id, attempts) \
         SELECT s.id, s.competition_id, s.description, c.rubric_weights, \
                CASE WHEN k.id IS NULL THEN s.status ELSE 'processing' END AS status, \
                COALESCE(k.attempts, s.attempts) AS attempts, \
                EXISTS (SELECT 1 FROM results r WHERE r.submission_id = s.id AND r.model_version = $2 AND NOT r.shadow) \
                    AS has_result \
         FROM submissions s JOIN competitions c ON c.id = s.competition_id \
         LEFT JOIN claimed k ON k.id = s.id \
         WHERE s.id = ANY($1)",
    )
    .bind(ids)
    .bind(model_version)
    .fetch_all(pool)
    .await
}

/// A submission that will never be scored, and why.
#[derive(Debug, Clone)]
pub struct Failure {
    pub submission_id: Uuid,
    /// Stable and short (`image.truncated`, `image.missing`, `attempts_exhausted`, …).
    pub code: String,
    pub reason: String,
}

/// Marks submissions failed unless they are already done.
pub async fn mark_failed(db: impl PgExecutor<'_>, failures: &[Failure]) -> Result<(), sqlx::Error> {
    if failures.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE submissions s SET status = 'failed', failure_code = f.code, failure_reason = f.reason, updated_at = now() \
         FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS f(id, code, reason) \
         WHERE s.id = f.id AND s.status <> 'done'",
    )
    .bind(failures.iter().map(|f| f.submission_id).collect::<Vec<_>>())
    .bind(failures.iter().map(|f| f.code.clone()).collect::<Vec<_>>())
    .bind(failures.iter().map(|f| f.reason.clone()).collect::<Vec<_>>())
    .execute(db)
    .await?;
    Ok(())
}

/// A submission as the read side shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubmissionRecord {
    pub id: Uuid,
    pub competition_id: Uuid,
    pub competition_slug: String,
    pub external_id: Option<String>,
    /// Where the image is in the bucket.
    pub image_key: String,
    pub image_sha256: String,
    pub image_format: String,
    pub width: i32,
    pub height: i32,
    pub description: Option<String>,
    status: String,
    pub failure_code: Option<String>,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl SubmissionRecord {
    pub fn status(&self) -> Result<SubmissionStatus, sqlx::Error> {
        parse_status(&self.status)
    }
}

pub async fn find(pool: &PgPool, id: Uuid) -> Result<Option<SubmissionRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.id, s.competition_id, c.slug AS competition_slug, s.external_id, s.image_key, s.image_sha256, \
                s.image_format, s.width, s.height, \
                s.description, s.status, s.failure_code, s.failure_reason, s.created_at, s.updated_at \
         FROM submissions s JOIN competitions c ON c.id = s.competition_id WHERE s.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// How many of a competition's submissions are in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub queued: i64,
    pub processing: i64,
    pub done: i64,
    pub failed: i64,
}

impl Progress {
    pub fn total(&self) -> i64 {
        self.queued + self.processing + self.done + self.failed
    }
}

pub async fn progress(pool: &PgPool, competition_id: Uuid) -> Result<Progress, sqlx::Error> {
    let counts: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM submissions WHERE competition_id = $1 GROUP BY status")
            .bind(competition_id)
            .fetch_all(pool)
            .await?;
    let mut progress = Progress::default();
    for (status, count) in counts {
        match parse_status(&status)? {
            SubmissionStatus::Queued => progress.queued = count,
            SubmissionStatus::Processing => progress.processing = count,
            SubmissionStatus::Done => progress.done = count,
            SubmissionStatus::Failed => progress.failed = count,
        }
    }
    Ok(progress)
}

/// A submission's perceptual hash, with what a list of likely copies shows of it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Hashed {
    pub id: Uuid,
    pub competition_id: Uuid,
    pub competition_slug: String,
    pub external_id: Option<String>,
    pub phash: Vec<u8>,
}

/// The hashed submissions of one competition, or of every competition (`None`), oldest first.
pub async fn phashes(pool: &PgPool, competition_id: Option<Uuid>) -> Result<Vec<Hashed>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.id, s.competition_id, c.slug AS competition_slug, s.external_id, s.phash \
         FROM submissions s JOIN competitions c ON c.id = s.competition_id \
         WHERE s.phash IS NOT NULL AND ($1::uuid IS NULL OR s.competition_id = $1) ORDER BY s.created_at, s.id",
    )
    .bind(competition_id)
    .fetch_all(pool)
    .await
}

/// Of `keys`, those no submission refers to (orphans: stored by a request that then failed).
pub async fn unreferenced_image_keys(pool: &PgPool, keys: &[String]) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT k FROM UNNEST($1::text[]) AS k WHERE NOT EXISTS (SELECT 1 FROM submissions s WHERE s.image_key = k)",
    )
    .bind(keys)
    .fetch_all(pool)
    .await
}
