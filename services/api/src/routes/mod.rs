pub mod export;
pub mod leaderboard;
pub mod progress;
pub mod submissions;

use easel_core::db::competitions::{Competition, find_by_slug};
use easel_core::db::results;
use easel_core::domain::CompetitionSlug;
use easel_core::http::ApiError;
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

/// The competition named by the path, or a 404.
async fn find_competition(pool: &PgPool, slug: &str) -> Result<Competition, ApiError> {
    let unknown = || ApiError::not_found("competition.not_found", format!("there is no competition {slug:?}"));
    let slug = CompetitionSlug::parse(slug).map_err(|_| unknown())?;
    find_by_slug(pool, &slug).await.map_err(ApiError::database)?.ok_or_else(unknown)
}

/// The model version asked for, or the one that most recently scored the competition.
async fn model_version(pool: &PgPool, competition: &Competition, asked: Option<String>) -> Result<Option<String>, ApiError> {
    match asked {
        Some(version) => Ok(Some(version)),
        None => results::latest_model_version(pool, competition.id).await.map_err(ApiError::database),
    }
}

/// The overall score and the five rubric scores, each in 1..=100.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct ScoresView {
    pub overall: f32,
    pub originality: f32,
    pub color: f32,
    pub texture: f32,
    pub composition: f32,
    pub content: f32,
}

impl From<&results::ResultRecord> for ScoresView {
    fn from(r: &results::ResultRecord) -> Self {
        Self {
            overall: r.overall,
            originality: r.originality,
            color: r.color,
            texture: r.texture,
            composition: r.composition,
            content: r.content,
        }
    }
}
