use axum::Json;
use axum::extract::State;
use easel_core::auth::{self, Access, Caller};
use easel_core::db::submissions;
use easel_core::http::{ApiError, ApiPath, ErrorBody};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressView {
    pub competition: String,
    pub queued: i64,
    pub processing: i64,
    pub done: i64,
    pub failed: i64,
    pub total: i64,
}

/// How many of a competition's submissions are queued, processing, done and failed. Needs
/// `competition:<slug>:read`, or no key at all when the competition has `public_results`.
#[utoipa::path(
    get,
    path = "/v1/competitions/{slug}/progress",
    params(("slug" = String, Path, description = "The competition")),
    responses(
        (status = 200, body = ProgressView),
        (status = 400, description = "The slug is not UTF-8", body = ErrorBody),
        (status = 401, description = "No valid API key (and the results are not public)", body = ErrorBody),
        (status = 403, description = "The key may not read this competition", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn progress(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<ProgressView>, ApiError> {
    let (competition, _) = auth::competition(&state.pool, &caller, &slug, Access::Read, true).await?;
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
