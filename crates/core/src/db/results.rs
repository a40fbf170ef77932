//! `results`: the model's assessments, one per submission and model version.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

use easel_rubric::ScoringMode;

use super::submissions::{Failure, mark_failed};
use crate::domain::RubricScores;

/// One assessment to store.
#[derive(Debug, Clone)]
pub struct NewResult {
    pub submission_id: Uuid,
    pub competition_id: Uuid,
    pub model_version: String,
    /// The leaderboard score (rubric-weighted or overall).
    pub score: f32,
    pub scores: RubricScores,
    /// How the scores were made.
    pub scoring: ScoringMode,
    /// Each score's uncertainty (a standard deviation on the 1–100 scale): zero-shot only.
    pub uncertainty: Option<RubricScores<f32>>,
    /// The scores before the checkpoint's calibration (zero-shot only): what a jury round's
    /// calibration is fitted on.
    pub raw_scores: Option<RubricScores<f32>>,
    pub critique: String,
    pub new_tokens: i32,
    /// Per-stage times in milliseconds.
    pub timings: serde_json::Value,
    /// Written by the worker's shadow checkpoint: kept under its version, but it neither marks
    /// the submission done nor becomes a competition's default version.
    pub shadow: bool,
}

/// A batch's outcome, to be written in one transaction.
#[derive(Debug, Clone, Default)]
pub struct BatchRecord {
    pub results: Vec<NewResult>,
    pub failures: Vec<Failure>,
    /// Submissions whose job found a (primary) result of `model_version` already there — a
    /// rescore's job delivered twice, or one a worker of an older version took: marked done.
    pub already_scored: Vec<Uuid>,
    pub model_version: String,
}

impl BatchRecord {
    pub fn is_empty(&self) -> bool {
        self.results.is_empty() && self.failures.is_empty() && self.already_scored.is_empty()
    }

    pub fn len(&self) -> usize {
        self.results.len() + self.failures.len() + self.already_scored.len()
    }
}

/// Writes a batch's outcome in one transaction: the results (a result that already exists is
/// left alone, except that a primary result turns a shadow one of the same version into a
/// primary one), the submissions of primary results marked done, and the failures marked failed.
pub async fn record_batch(pool: &PgPool, batch: &BatchRecord) -> Result<(), sqlx::Error> {
    let results = &batch.results;
    let mut tx = pool.begin().await?;
    if !results.is_empty() {
        // One array per score column, in the head's order (the order of the column list).
        let score_columns: [Vec<f32>; 6] =
            std::array::from_fn(|i| results.iter().map(|r| r.scores.to_array()[i].value()).collect());
        let insert = sqlx::query(
            "INSERT INTO results (id, submission_id, competition_id, model_version, score, overall, originality, \
                                  color, texture, composition, content, critique, new_tokens, timings, shadow, \
                                  scoring, uncertainty, raw_scores) \
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::real[], $6::real[], $7::real[], \
                                  $8::real[], $9::real[], $10::real[], $11::real[], $12::text[], $13::int4[], $14::jsonb[], \
                                  $15::bool[], $16::text[], $17::jsonb[], $18::jsonb[]) \
             ON CONFLICT (submission_id, model_version) DO UPDATE SET shadow = false \
             WHERE results.shadow AND NOT EXCLUDED.shadow",
        )
        .bind(results.iter().map(|_| Uuid::now_v7()).collect::<Vec<_>>())
        .bind(results.iter().map(|r| r.submission_id).collect::<Vec<_>>())
        .bind(results.iter().map(|r| r.competition_id).collect::<Vec<_>>())
        .bind(results.iter().map(|r| r.model_version.clone()).collect::<Vec<_>>())
        .bind(results.iter().map(|r| r.score).collect::<Vec<_>>());
        score_columns
            .into_iter()
            .fold(insert, |insert, column| insert.bind(column))
            .bind(results.iter().map(|r| r.critique.clone()).collect::<Vec<_>>())
            .bind(results.iter().map(|r| r.new_tokens).collect::<Vec<_>>())
            .bind(results.iter().map(|r| r.timings.clone()).collect::<Vec<_>>())
            .bind(results.iter().map(|r| r.shadow).collect::<Vec<_>>())
            .bind(results.iter().map(|r| r.scoring.as_str()).collect::<Vec<_>>())
            .bind(results.iter().map(|r| r.uncertainty.map(Json)).collect::<Vec<_>>())
            .bind(results.iter().map(|r| r.raw_scores.map(Json)).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE submissions SET status = 'done', failure_code = NULL, failure_reason = NULL, updated_at = now() \
             WHERE id = ANY($1) AND status <> 'done'",
        )
        .bind(results.iter().filter(|r| !r.shadow).map(|r| r.submission_id).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    if !batch.already_scored.is_empty() {
        sqlx::query(
            "UPDATE submissions s SET status = 'done', failure_code = NULL, failure_reason = NULL, updated_at = now() \
             WHERE s.id = ANY($1) AND s.status = 'processing' \
               AND EXISTS (SELECT 1 FROM results r WHERE r.submission_id = s.id AND r.model_version = $2 AND NOT r.shadow)",
        )
        .bind(&batch.already_scored)
        .bind(&batch.model_version)
        .execute(&mut *tx)
        .await?;
    }
    mark_failed(&mut *tx, &batch.failures).await?;
    tx.commit().await
}

/// A stored assessment.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ResultRecord {
    pub submission_id: Uuid,
    pub external_id: Option<String>,
    pub model_version: String,
    pub score: f32,
    #[sqlx(flatten)]
    pub scores: RubricScores<f32>,
    #[sqlx(try_from = "String")]
    pub scoring: ScoringMode,
    /// Zero-shot results only.
    pub uncertainty: Option<Json<RubricScores<f32>>>,
    pub critique: String,
    pub new_tokens: i32,
    pub timings: Json<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    /// An organiser's score in place of the model's (`overrides`).
    pub override_score: Option<f32>,
    /// The override, or else the model's score: what the leaderboard ranks by.
    pub effective_score: f32,
}

const RESULT_COLUMNS: &str = "r.submission_id, s.external_id, r.model_version, r.score, r.overall, r.originality, \
     r.color, r.texture, r.composition, r.content, r.scoring, r.uncertainty, r.critique, r.new_tokens, r.timings, r.created_at, \
     o.score AS override_score, COALESCE(o.score, r.score) AS effective_score";

/// Results with their submissions and overrides.
const RESULTS: &str = "results r JOIN submissions s ON s.id = r.submission_id \
     LEFT JOIN overrides o ON o.submission_id = r.submission_id";

/// A submission's result of one model version.
pub async fn for_submission(pool: &PgPool, submission_id: Uuid, model_version: &str) -> Result<Option<ResultRecord>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {RESULT_COLUMNS} FROM {RESULTS} WHERE r.submission_id = $1 AND r.model_version = $2"))
        .bind(submission_id)
        .bind(model_version)
        .fetch_optional(pool)
        .await
}

/// The model version that most recently scored a competition (shadow results do not count).
pub async fn latest_model_version(db: impl sqlx::PgExecutor<'_>, competition_id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT model_version FROM results WHERE competition_id = $1 AND NOT shadow ORDER BY created_at DESC LIMIT 1",
    )
    .bind(competition_id)
    .fetch_optional(db)
    .await
}

/// How far one model version has scored a competition.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct VersionCount {
    pub model_version: String,
    /// Submissions with a primary result of this version.
    pub scored: i64,
    /// Results of a worker's shadow checkpoint.
    pub shadow: i64,
    pub first_scored_at: DateTime<Utc>,
    pub last_scored_at: DateTime<Utc>,
}

/// Every model version that has scored the competition, oldest first.
pub async fn version_counts(pool: &PgPool, competition_id: Uuid) -> Result<Vec<VersionCount>, sqlx::Error> {
    sqlx::query_as(
        "SELECT model_version, count(*) FILTER (WHERE NOT shadow) AS scored, count(*) FILTER (WHERE shadow) AS shadow, \
                min(created_at) AS first_scored_at, max(created_at) AS last_scored_at \
         FROM results WHERE competition_id = $1 GROUP BY model_version ORDER BY min(created_at), model_version",
    )
    .bind(competition_id)
    .fetch_all(pool)
    .await
}

/// Whether the version has a primary (not shadow) result in the competition.
pub async fn has_primary_version(pool: &PgPool, competition_id: Uuid, model_version: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM results WHERE competition_id = $1 AND model_version = $2 AND NOT shadow)",
    )
    .bind(competition_id)
    .bind(model_version)
    .fetch_one(pool)
    .await
}

/// Every (submission, model score) of one version in a competition, in leaderboard order (best
/// first, ties by submission id descending), shadow results included.
pub async fn version_scores(pool: &PgPool, competition_id: Uuid, model_version: &str) -> Result<Vec<(Uuid, f32)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT submission_id, score FROM results WHERE competition_id = $1 AND model_version = $2 \
         ORDER BY score DESC, submission_id DESC",
    )
    .bind(competition_id)
    .bind(model_version)
    .fetch_all(pool)
    .await
}

/// The leaderboard page query (`scripts/bench-leaderboard.sh` explains the same text). Parameters:
/// competition, model version, min score, max score, cursor score, cursor submission, limit.
pub const LEADERBOARD_SQL: &str = include_str!("leaderboard.sql");

/// Where a leaderboard page starts: after this (effective score, submission) in descending order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeaderboardCursor {
    pub score: f32,
    pub submission_id: Uuid,
}

#[derive(Debug, Clone)]
pub struct LeaderboardQuery {
    pub competition_id: Uuid,
    pub model_version: String,
    pub min_score: Option<f32>,
    pub max_score: Option<f32>,
    pub after: Option<LeaderboardCursor>,
    pub limit: i64,
}

/// One page of a competition's leaderboard by effective score (an organiser's override, or
/// the model's score), best first, ties broken by submission id; keyset pagination.
///
/// Two ordered reads merged: the results without an override, in the order of the
/// `results_leaderboard` index, and the few with one. Sorting by `COALESCE(override, score)`
/// in one query would sort the whole competition for every page (47 ms against 0.8 ms a page
/// at 100,000 results, measured on this machine's Postgres 15).
pub async fn leaderboard(pool: &PgPool, query: &LeaderboardQuery) -> Result<Vec<ResultRecord>, sqlx::Error> {
    sqlx::query_as(LEADERBOARD_SQL)
        .bind(query.competition_id)
        .bind(&query.model_version)
        .bind(query.min_score.unwrap_or(f32::NEG_INFINITY))
        .bind(query.max_score.unwrap_or(f32::INFINITY))
        .bind(query.after.map_or(f32::INFINITY, |c| c.score))
        .bind(query.after.map_or(Uuid::max(), |c| c.submission_id))
        .bind(query.limit)
        .fetch_all(pool)
        .await
}

/// A row of an export: every submission of a competition with its result, if any, for one
/// model version. Its fields, in order and with the scores flattened, are the export's columns.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct ExportRow {
    pub submission_id: Uuid,
    pub external_id: Option<String>,
    pub status: String,
    pub failure_code: Option<String>,
    pub model_version: Option<String>,
    pub score: Option<f32>,
    /// Null each where there is no result.
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub scores: RubricScores<Option<f32>>,
    pub critique: Option<String>,
    pub created_at: DateTime<Utc>,
    /// An organiser's score in place of the model's.
    pub override_score: Option<f32>,
    /// The override, or else the model's score (null without either).
    pub effective_score: Option<f32>,
    /// `head` or `zero-shot` (null without a result).
    pub scoring: Option<String>,
    /// Each score's uncertainty (zero-shot results only).
    pub uncertainty: Option<Json<RubricScores<f32>>>,
}

/// Where an export page ends: the last row's creation time and id.
pub type ExportCursor = (DateTime<Utc>, Uuid);

/// A page of a competition's export rows in submission order, after `after` (keyset paging on
/// `submissions_competition_created`). Each page is one short query, so a slow client never
/// holds a pool connection between pages.
pub async fn export_page(
    pool: &PgPool,
    competition_id: Uuid,
    model_version: Option<&str>,
    after: Option<ExportCursor>,
    limit: i64,
) -> Result<Vec<ExportRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.id AS submission_id, s.external_id, s.status, s.failure_code, r.model_version, r.score, r.overall, \
                r.originality, r.color, r.texture, r.composition, r.content, r.critique, s.created_at, \
                o.score AS override_score, COALESCE(o.score, r.score) AS effective_score, r.scoring, r.uncertainty \
         FROM submissions s LEFT JOIN results r ON r.submission_id = s.id AND r.model_version = $2 \
              LEFT JOIN overrides o ON o.submission_id = s.id \
         WHERE s.competition_id = $1 AND ($3::timestamptz IS NULL OR (s.created_at, s.id) > ($3, $4)) \
         ORDER BY s.created_at, s.id LIMIT $5",
    )
    .bind(competition_id)
    .bind(model_version)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// What a browsing page of a leaderboard is ordered by: the effective score (what the
/// leaderboard ranks by) or one of the six rubric outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    #[default]
    Score,
    Overall,
    Originality,
    Color,
    Texture,
    Composition,
    Content,
}

impl SortKey {
    pub const ALL: [SortKey; 7] =
        [SortKey::Score, SortKey::Overall, SortKey::Originality, SortKey::Color, SortKey::Texture, SortKey::Composition, SortKey::Content];

    /// Its name in a query string (`score`, or the rubric output's own name).
    pub fn as_str(self) -> &'static str {
        match self {
            SortKey::Score => "score",
            SortKey::Overall => "overall",
            SortKey::Originality => "originality",
            SortKey::Color => "color",
            SortKey::Texture => "texture",
            SortKey::Composition => "composition",
            SortKey::Content => "content",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }

    /// The SQL expression; from this closed list only, never from the request.
    fn column(self) -> &'static str {
        match self {
            SortKey::Score => "COALESCE(o.score, r.score)",
            SortKey::Overall => "r.overall",
            SortKey::Originality => "r.originality",
            SortKey::Color => "r.color",
            SortKey::Texture => "r.texture",
            SortKey::Composition => "r.composition",
            SortKey::Content => "r.content",
        }
    }
}

/// A page of results to browse: any order, a filter on the entry's id, offset paging.
#[derive(Debug, Clone)]
pub struct BrowseQuery {
    pub competition_id: Uuid,
    pub model_version: String,
    pub sort: SortKey,
    pub ascending: bool,
    /// Entries whose external id contains this text (case-insensitive, taken literally).
    pub external_id_contains: Option<String>,
    /// Entries whose effective score is at least this.
    pub min_score: Option<f32>,
    pub offset: i64,
    pub limit: i64,
}

/// A page of a competition's results in any order (the dashboard's leaderboard), and how many
/// match in all. Unlike [`leaderboard`], a page past the first is found by offset: for people
/// paging through, not for exporting (a deep page sorts every matching result).
pub async fn browse(pool: &PgPool, query: &BrowseQuery) -> Result<(Vec<ResultRecord>, i64), sqlx::Error> {
    let filter = "r.competition_id = $1 AND r.model_version = $2 AND NOT r.shadow \
         AND ($3::text IS NULL OR s.external_id ILIKE '%' || $3 || '%' ESCAPE '\\') \
         AND ($4::real IS NULL OR COALESCE(o.score, r.score) >= $4)";
    let pattern = query.external_id_contains.as_deref().map(escape_like);
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {RESULTS} WHERE {filter}"))
        .bind(query.competition_id)
        .bind(&query.model_version)
        .bind(&pattern)
        .bind(query.min_score)
        .fetch_one(pool)
        .await?;
    let direction = if query.ascending { "ASC" } else { "DESC" };
    let rows = sqlx::query_as(&format!(
        "SELECT {RESULT_COLUMNS} FROM {RESULTS} WHERE {filter} \
         ORDER BY {column} {direction}, r.submission_id {direction} OFFSET $5 LIMIT $6",
        column = query.sort.column()
    ))
    .bind(query.competition_id)
    .bind(&query.model_version)
    .bind(&pattern)
    .bind(query.min_score)
    .bind(query.offset)
    .bind(query.limit)
    .fetch_all(pool)
    .await?;
    Ok((rows, total))
}

/// `text` for a LIKE pattern, matched literally (`\` escapes `%`, `_` and itself).
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Bins of a score histogram: 1–10, 10–20, …, 90–100 (the first bin takes its lower edge).
pub const HISTOGRAM_BINS: usize = 10;

/// Per rubric output (`overall`, then the five criteria), how many of a version's results fall
/// in each of [`HISTOGRAM_BINS`] equal bins of 1–100; counted in Postgres, so a competition of
/// any size costs one small answer.
pub async fn histograms(pool: &PgPool, competition_id: Uuid, model_version: &str) -> Result<RubricScores<[i64; HISTOGRAM_BINS]>, sqlx::Error> {
    let rows: Vec<(String, i32, i64)> = sqlx::query_as(
        "SELECT d.name, least(greatest(floor(d.v / 10.0)::int, 0), 9) AS bin, count(*) \
         FROM results r CROSS JOIN LATERAL (VALUES ('overall', r.overall), ('originality', r.originality), \
             ('color', r.color), ('texture', r.texture), ('composition', r.composition), ('content', r.content)) AS d(name, v) \
         WHERE r.competition_id = $1 AND r.model_version = $2 AND NOT r.shadow GROUP BY 1, 2",
    )
    .bind(competition_id)
    .bind(model_version)
    .fetch_all(pool)
    .await?;
    let mut counts = [[0i64; HISTOGRAM_BINS]; 6];
    let names = RubricScores::names().to_array();
    for (name, bin, count) in rows {
        if let (Some(i), Ok(bin)) = (names.iter().position(|n| *n == name), usize::try_from(bin)) {
            counts[i][bin.min(HISTOGRAM_BINS - 1)] = count;
        }
    }
    Ok(RubricScores::from_array(counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_match_literally() {
        assert_eq!(escape_like("50%_off\\x"), "50\\%\\_off\\\\x");
        assert_eq!(escape_like("entry-1"), "entry-1");
    }

    #[test]
    fn sort_keys_round_trip_their_names() {
        for key in SortKey::ALL {
            assert_eq!(SortKey::parse(key.as_str()), Some(key));
        }
        assert_eq!(SortKey::parse("score; DROP TABLE results"), None);
    }
}
