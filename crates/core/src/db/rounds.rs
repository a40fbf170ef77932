//! `rounds` and `round_entries`: a jury's rounds and the entries each holds.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use easel_rubric::{RubricScores, ScoringMode};
use sqlx::types::Json;

use crate::domain::{Name, Scale};

/// A round: also the API's view of it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Round {
    pub id: Uuid,
    #[serde(skip)]
    pub competition_id: Uuid,
    pub name: String,
    /// The scale's whole-number bounds.
    pub scale_min: i32,
    pub scale_max: i32,
    /// Jurors see no entry id, artist's text or metadata, and no other score.
    pub blind: bool,
    /// For a shortlist: the round it was drawn from, by what (`model` or `panel`), how many
    /// it kept, and the model version a model shortlist ranked by.
    pub shortlist_from: Option<Uuid>,
    pub shortlist_by: Option<String>,
    pub shortlist_top: Option<i32>,
    pub shortlist_model_version: Option<String>,
    /// Set while the round is closed (it takes no scores).
    pub closed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// How many entries it holds.
    pub entries: i64,
}

impl Round {
    pub fn scale(&self) -> Scale {
        Scale { min: self.scale_min, max: self.scale_max }
    }
}

/// How a shortlist round was made.
#[derive(Debug, Clone)]
pub struct Shortlist {
    pub from: Uuid,
    /// `model` or `panel`.
    pub by: &'static str,
    pub top: i32,
    pub model_version: Option<String>,
}

const COLUMNS: &str = "r.id, r.competition_id, r.name, r.scale_min, r.scale_max, r.blind, r.shortlist_from, \
     r.shortlist_by, r.shortlist_top, r.shortlist_model_version, r.closed_at, r.created_at, \
     (SELECT count(*) FROM round_entries e WHERE e.round_id = r.id) AS entries";

/// Creates a round holding `entries`; `None` if the competition has a round of this name.
pub async fn insert(
    conn: &mut PgConnection,
    competition_id: Uuid,
    name: &Name,
    scale: Scale,
    blind: bool,
    shortlist: Option<&Shortlist>,
    entries: &[Uuid],
) -> Result<Option<Round>, sqlx::Error> {
    let id = Uuid::now_v7();
    let inserted = sqlx::query(
        "INSERT INTO rounds (id, competition_id, name, scale_min, scale_max, blind, shortlist_from, shortlist_by, \
                             shortlist_top, shortlist_model_version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (competition_id, name) DO NOTHING",
    )
    .bind(id)
    .bind(competition_id)
    .bind(name.as_str())
    .bind(scale.min)
    .bind(scale.max)
    .bind(blind)
    .bind(shortlist.map(|s| s.from))
    .bind(shortlist.map(|s| s.by))
    .bind(shortlist.map(|s| s.top))
    .bind(shortlist.and_then(|s| s.model_version.clone()))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(None);
    }
    sqlx::query("INSERT INTO round_entries (round_id, submission_id) SELECT $1, UNNEST($2::uuid[])")
        .bind(id)
        .bind(entries)
        .execute(&mut *conn)
        .await?;
    find(&mut *conn, competition_id, id).await
}

/// The entries a round over the whole competition holds: every submission but the failed
/// ones (an image that could not be decoded cannot be judged either), in submission order.
pub async fn all_entries(db: impl PgExecutor<'_>, competition_id: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM submissions WHERE competition_id = $1 AND status <> 'failed' ORDER BY created_at, id",
    )
    .bind(competition_id)
    .fetch_all(db)
    .await
}

/// The `top` entries of a round by the model's score of `model_version` (ties by id).
pub async fn top_by_model(
    db: impl PgExecutor<'_>,
    round_id: Uuid,
    model_version: &str,
    top: i32,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT e.submission_id FROM round_entries e \
         JOIN results r ON r.submission_id = e.submission_id AND r.model_version = $2 \
         WHERE e.round_id = $1 ORDER BY r.score DESC, e.submission_id LIMIT $3",
    )
    .bind(round_id)
    .bind(model_version)
    .bind(i64::from(top))
    .fetch_all(db)
    .await
}

pub async fn find(db: impl PgExecutor<'_>, competition_id: Uuid, id: Uuid) -> Result<Option<Round>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM rounds r WHERE r.competition_id = $1 AND r.id = $2"))
        .bind(competition_id)
        .bind(id)
        .fetch_optional(db)
        .await
}

/// The competition's rounds, oldest first.
pub async fn list(db: impl PgExecutor<'_>, competition_id: Uuid) -> Result<Vec<Round>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM rounds r WHERE r.competition_id = $1 ORDER BY r.created_at, r.id"))
        .bind(competition_id)
        .fetch_all(db)
        .await
}

/// Closes or reopens a round (a closed round takes no scores). Returns the round as it was
/// before and as it is now, or `None` if there is no such round.
pub async fn set_closed(
    conn: &mut PgConnection,
    competition_id: Uuid,
    id: Uuid,
    closed: bool,
) -> Result<Option<(Round, Round)>, sqlx::Error> {
    // Waits for the transactions writing scores into the round ([`lock_open`]) to finish.
    sqlx::query(&format!("SELECT pg_advisory_xact_lock({ROUND_LOCK})")).bind(id).execute(&mut *conn).await?;
    let Some(before) = sqlx::query_as::<_, Round>(&format!(
        "SELECT {COLUMNS} FROM rounds r WHERE r.competition_id = $1 AND r.id = $2 FOR UPDATE"
    ))
    .bind(competition_id)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    sqlx::query(
        "UPDATE rounds SET closed_at = CASE WHEN $2 THEN COALESCE(closed_at, now()) ELSE NULL END WHERE id = $1",
    )
    .bind(id)
    .bind(closed)
    .execute(&mut *conn)
    .await?;
    let after = find(&mut *conn, competition_id, id).await?.ok_or(sqlx::Error::RowNotFound)?;
    Ok(Some((before, after)))
}

/// The transaction-scoped advisory lock of a round: shared by the transactions writing scores
/// into it, exclusive for the one closing or reopening it. An advisory lock rather than a row
/// lock, because a row lock needs the UPDATE privilege on `rounds` and the api's database role
/// (which writes scores from the dashboard) has none.
const ROUND_LOCK: &str = "hashtextextended('easel.round:' || $1::text, 0)";

/// Locks an open round against closing until the transaction ends; `None` if it is closed.
pub async fn lock_open(conn: &mut PgConnection, id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query(&format!("SELECT pg_advisory_xact_lock_shared({ROUND_LOCK})")).bind(id).execute(&mut *conn).await?;
    sqlx::query_scalar("SELECT id FROM rounds WHERE id = $1 AND closed_at IS NULL").bind(id).fetch_optional(conn).await
}

/// Whether the round holds the entry.
pub async fn holds(db: impl PgExecutor<'_>, round_id: Uuid, submission_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM round_entries WHERE round_id = $1 AND submission_id = $2)")
        .bind(round_id)
        .bind(submission_id)
        .fetch_one(db)
        .await
}

/// One entry of a round as the jury sees it, with the model's score of `model_version`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoundEntry {
    pub submission_id: Uuid,
    pub external_id: Option<String>,
    pub description: Option<String>,
    pub width: i32,
    pub height: i32,
    pub model_score: Option<f32>,
}

const ENTRY_COLUMNS: &str =
    "s.id AS submission_id, s.external_id, s.description, s.width, s.height, r.score AS model_score";
/// A round's entries with the model's scores of version `$2`.
const ENTRIES: &str = "round_entries e JOIN submissions s ON s.id = e.submission_id \
     LEFT JOIN results r ON r.submission_id = s.id AND r.model_version = $2";

/// Every entry of a round, in submission order.
pub async fn entries(db: impl PgExecutor<'_>, round_id: Uuid, model_version: Option<&str>) -> Result<Vec<RoundEntry>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {ENTRY_COLUMNS} FROM {ENTRIES} WHERE e.round_id = $1 ORDER BY s.created_at, s.id"))
    .bind(round_id)
    .bind(model_version)
    .fetch_all(db)
    .await
}

/// A juror's queue: the round's entries in an order of their own — random, but the same on
/// every call (by the hash of juror and entry) — `limit` from `offset`, optionally only those
/// the juror has not scored.
pub async fn queue(
    db: impl PgExecutor<'_>,
    round_id: Uuid,
    juror_id: Uuid,
    model_version: Option<&str>,
    pending_only: bool,
    offset: i64,
    limit: i64,
) -> Result<Vec<RoundEntry>, sqlx::Error> {
    // $2 is the model version in ENTRIES; the juror is $3.
    sqlx::query_as(&format!(
        "SELECT {ENTRY_COLUMNS} FROM {ENTRIES} \
         WHERE e.round_id = $1 \
           AND (NOT $4 OR NOT EXISTS (SELECT 1 FROM juror_scores j \
                                      WHERE j.round_id = $1 AND j.submission_id = s.id AND j.juror_id = $3)) \
         ORDER BY sha256(convert_to($3::text || ':' || s.id::text, 'UTF8')), s.id \
         OFFSET $5 LIMIT $6"
    ))
    .bind(round_id)
    .bind(model_version)
    .bind(juror_id)
    .bind(pending_only)
    .bind(offset)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// The results (`r`) of model version `$2` for the entries of round `$1`.
const ROUND_RESULTS: &str = "FROM round_entries e JOIN results r ON r.submission_id = e.submission_id AND r.model_version = $2 \
     WHERE e.round_id = $1";

/// The model's scores of a round's entries, for one model version.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ModelScores {
    pub submission_id: Uuid,
    /// The leaderboard score.
    pub score: f32,
    #[sqlx(flatten)]
    pub scores: RubricScores<f32>,
}

pub async fn model_scores(db: impl PgExecutor<'_>, round_id: Uuid, model_version: &str) -> Result<Vec<ModelScores>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT r.submission_id, r.score, r.overall, r.originality, r.color, r.texture, r.composition, r.content {ROUND_RESULTS}"
    ))
    .bind(round_id)
    .bind(model_version)
    .fetch_all(db)
    .await
}

/// A round entry's result of one model version, as a calibration reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RawScores {
    pub submission_id: Uuid,
    #[sqlx(try_from = "String")]
    pub scoring: ScoringMode,
    /// The zero-shot scores before the checkpoint's calibration; null for head results and for
    /// zero-shot results stored before raw scores were kept.
    pub raw_scores: Option<Json<RubricScores<f32>>>,
}

/// Every result of `model_version` for the round's entries.
pub async fn raw_scores(db: impl PgExecutor<'_>, round_id: Uuid, model_version: &str) -> Result<Vec<RawScores>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT r.submission_id, r.scoring, r.raw_scores {ROUND_RESULTS}"))
    .bind(round_id)
    .bind(model_version)
    .fetch_all(db)
    .await
}
