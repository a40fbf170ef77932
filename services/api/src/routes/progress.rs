use axum::Json;
use axum::extract::State;
use easel_core::auth::{self, Access, Caller};
use chrono::{DateTime, Utc};
use easel_core::db::{results, submissions};
use easel_core::http::{ApiError, ApiPath, ApiQuery, ErrorBody};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::model_version;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ProgressParams {
    /// The version `scored` counts. Default: the competition's pinned model version, else the
    /// newest that scored it.
    pub model_version: Option<String>,
}

/// Submissions by status — the status of each one's latest scoring request (its upload, or a
/// rescore) — and how far each model version has scored the competition.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressView {
    pub competition: String,
    pub queued: i64,
    pub processing: i64,
    pub done: i64,
    pub failed: i64,
    pub total: i64,
    /// The version `scored` counts (null while nothing is scored).
    pub model_version: Option<String>,
    /// Submissions with a result of `model_version`.
    pub scored: i64,
    /// The version reads default to, if an organiser pinned one.
    pub pinned_model_version: Option<String>,
    /// Every version that has scored the competition, oldest first.
    pub versions: Vec<VersionProgress>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionProgress {
    pub model_version: String,
    /// Submissions it has scored.
    pub scored: i64,
    /// Results of a worker's shadow checkpoint (`worker.shadow`): never a competition's default.
    pub shadow: i64,
    pub first_scored_at: DateTime<Utc>,
    pub last_scored_at: DateTime<Utc>,
}

/// How many of a competition's submissions are queued, processing, done and failed, and how
/// many each model version has scored (a rescore's progress). Needs `competition:<slug>:read`,
/// or no key at all when the competition has `public_results`.
#[utoipa::path(
    get,
    path = "/v1/competitions/{slug}/progress",
    params(("slug" = String, Path, description = "The competition"), ProgressParams),
    responses(
        (status = 200, body = ProgressView),
        (status = 400, description = "The slug is not UTF-8, or a bad parameter", body = ErrorBody),
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
    params: Result<ApiQuery<ProgressParams>, ApiError>,
) -> Result<Json<ProgressView>, ApiError> {
    let (competition, _) = auth::competition(&state.pool, &caller, &slug, Access::Read, true).await?;
    let ApiQuery(params) = params?;
    let version = model_version(&state.pool, &competition, params.model_version).await?;
    let p = submissions::progress(&state.pool, competition.id).await.map_err(ApiError::database)?;
    let versions: Vec<VersionProgress> = results::version_counts(&state.pool, competition.id)
        .await
        .map_err(ApiError::database)?
        .into_iter()
        .map(|v| VersionProgress {
            model_version: v.model_version,
            scored: v.scored,
            shadow: v.shadow,
            first_scored_at: v.first_scored_at,
            last_scored_at: v.last_scored_at,
        })
        .collect();
    let scored = versions.iter().find(|v| Some(&v.model_version) == version.as_ref()).map_or(0, |v| v.scored + v.shadow);
    Ok(Json(ProgressView {
        competition: competition.slug,
        queued: p.queued,
        processing: p.processing,
        done: p.done,
        failed: p.failed,
        total: p.total(),
        model_version: version,
        scored,
        pinned_model_version: competition.model_version,
        versions,
    }))
}
