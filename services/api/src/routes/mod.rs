//! The read API's routes: the table ([`router`]) and the handlers, one module per resource.

pub mod export;
pub mod leaderboard;
pub mod progress;
pub mod submissions;

use axum::Router;
use axum::routing::get;
use easel_core::db::competitions::Competition;
use easel_core::db::results;
use easel_core::http::ApiError;
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use crate::state::AppState;

/// Every route of the read API (the caller is resolved by the `authenticate` middleware the
/// startup puts in front).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/submissions/{id}", get(submissions::get_submission))
        .route("/v1/competitions/{slug}/results", get(leaderboard::results))
        .route("/v1/competitions/{slug}/progress", get(progress::progress))
        .route("/v1/competitions/{slug}/export.csv", get(export::export_csv))
        .route("/v1/competitions/{slug}/export.jsonl", get(export::export_jsonl))
        .route("/openapi.json", get(crate::openapi::serve))
        .with_state(state)
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
