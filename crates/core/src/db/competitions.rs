//! `competitions`.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::domain::{CompetitionSlug, CompetitionTitle, RubricWeights};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Competition {
    pub id: Uuid,
    pub slug: String,
    pub title: String,
    pub rubric_weights: Option<Json<RubricWeights>>,
    /// Leaderboard and progress readable without a key (never descriptions, critiques or files).
    pub public_results: bool,
    /// The model version reads default to (`PATCH /v1/competitions/{slug}`); `None`: the newest
    /// version that scored the competition.
    pub model_version: Option<String>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, slug, title, rubric_weights, public_results, model_version, created_at";

/// Inserts a competition; `None` if the slug is taken.
pub async fn insert(
    pool: &PgPool,
    slug: &CompetitionSlug,
    title: &CompetitionTitle,
    rubric_weights: Option<RubricWeights>,
    public_results: bool,
) -> Result<Option<Competition>, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO competitions (id, slug, title, rubric_weights, public_results) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (slug) DO NOTHING \
         RETURNING {COLUMNS}",
    ))
    .bind(Uuid::now_v7())
    .bind(slug.as_str())
    .bind(title.as_str())
    .bind(rubric_weights.map(Json))
    .bind(public_results)
    .fetch_optional(pool)
    .await
}

pub async fn find_by_slug(db: impl PgExecutor<'_>, slug: &CompetitionSlug) -> Result<Option<Competition>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM competitions WHERE slug = $1"))
        .bind(slug.as_str())
        .fetch_optional(db)
        .await
}

pub async fn find(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Competition>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM competitions WHERE id = $1")).bind(id).fetch_optional(db).await
}

/// Pins the model version reads of the competition default to (`None` unpins); returns the
/// version pinned before.
pub async fn pin_model_version(
    db: impl PgExecutor<'_>,
    id: Uuid,
    model_version: Option<&str>,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE competitions c SET model_version = $2 FROM competitions old \
         WHERE c.id = $1 AND old.id = c.id RETURNING old.model_version",
    )
    .bind(id)
    .bind(model_version)
    .fetch_one(db)
    .await
}

/// The competitions to list for a key: every one for an admin (`slugs` `None`), else those
/// named; at most `limit`, newest first.
pub async fn list(pool: &PgPool, slugs: Option<&[String]>, limit: i64) -> Result<Vec<Competition>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM competitions WHERE $1::text[] IS NULL OR slug = ANY($1) ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(slugs)
    .bind(limit)
    .fetch_all(pool)
    .await
}
