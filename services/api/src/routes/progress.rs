use axum::Json;
use axum::extract::State;
use easel_core::db::submissions;
use easel_core::http::{ApiError, ApiPath, ErrorBody};
use serde::Serialize;
use utoipa::ToSchema;

use super::find_competition;
use crate::startup::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressView {
    pub competition: String,
    pub queued: i64,
    pub processing: i64,
    pub done: i64,
    pub failed: i64,
    pub total: i64,
}

/// How many of a competition's submissions are queued, processing, done and failed.
#[utoipa::path(
    get,
    path = "/v1/competitions/{slug}/progress",
    params(("slug" = String, Path, description = "The competition")),
    responses((status = 200, body = ProgressView), (status = 404, body = ErrorBody))
)]
pub async fn progress(State(state): State<AppState>, ApiPath(slug): ApiPath<String>) -> Result<Json<ProgressView>, ApiError> {
    let competition = find_competition(&state.pool, &slug).await?;
    let p = submissions::progress(&state.pool, competition.id).await.map_err(ApiError::database)?;
    Ok(Json(ProgressView {
        competition: competition.slug,
        queued: p.queued,
        processing: p.processing,
        done: p.done,
        failed: p.failed,
        total: p.total(),
    }))
}
