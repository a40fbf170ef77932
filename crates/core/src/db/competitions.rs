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
    pub created_at: DateTime<Utc>,
}

/// Inserts a competition; `None` if the slug is taken.
pub async fn insert(
    pool: &PgPool,
    slug: &CompetitionSlug,
    title: &CompetitionTitle,
    rubric_weights: Option<RubricWeights>,
    public_results: bool,
) -> Result<Option<Competition>, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO competitions (id, slug, title, rubric_weights, public_results) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (slug) DO NOTHING \
         RETURNING id, slug, title, rubric_weights, public_results, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(slug.as_str())
    .bind(title.as_str())
    .bind(rubric_weights.map(Json))
    .bind(public_results)
    .fetch_optional(pool)
    .await
}

pub async fn find_by_slug(db: impl PgExecutor<'_>, slug: &CompetitionSlug) -> Result<Option<Competition>, sqlx::Error> {
    sqlx::query_as("SELECT id, slug, title, rubric_weights, public_results, created_at FROM competitions WHERE slug = $1")
        .bind(slug.as_str())
        .fetch_optional(db)
        .await
}
