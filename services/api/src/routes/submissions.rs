use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use easel_core::auth::{Access, Caller};
use easel_core::db::overrides::{self, Override};
use easel_core::db::{competitions, results, submissions};
use easel_core::domain::SubmissionStatus;
use easel_core::http::{ApiError, ApiPath, ApiQuery, ErrorBody};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use easel_rubric::ScoringMode;

use super::{Scores, model_version};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct SubmissionView {
    pub id: Uuid,
    pub competition: String,
    pub external_id: Option<String>,
    pub status: SubmissionStatus,
    /// Why it failed, when `status` is `failed`.
    pub failure: Option<FailureView>,
    pub image: ImageView,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The assessment by `model_version` (default: the competition's pinned version, else the
    /// newest that scored it), once there is one.
    pub result: Option<ResultView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SubmissionParams {
    /// Default: the competition's pinned model version, else the newest that scored it.
    pub model_version: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FailureView {
    pub code: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImageView {
    pub sha256: String,
    pub format: String,
    pub width: i32,
    pub height: i32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResultView {
    pub model_version: String,
    /// The leaderboard score: the rubric-weighted mean, or the overall score.
    pub score: f32,
    pub scores: Scores,
    /// How the scores were made: `head` (the trained regression head) or `zero-shot` (the
    /// language model's level words).
    pub scoring: ScoringMode,
    /// Each score's uncertainty, a standard deviation on the 1–100 scale (zero-shot only).
    #[schema(value_type = Option<Scores>)]
    pub uncertainty: Option<Scores>,
    /// An organiser's score in place of the model's, with its reason.
    #[serde(rename = "override")]
    #[schema(rename = "override")]
    pub override_: Option<Override>,
    /// The override, or else `score`: what the leaderboard ranks by.
    pub effective_score: f32,
    pub critique: String,
    pub new_tokens: i32,
    /// Milliseconds per stage: fetch, decode, vision, head, generate, and the batch size.
    #[schema(value_type = Object)]
    pub timings: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl ResultView {
    fn new(r: results::ResultRecord, override_: Option<Override>) -> Self {
        Self {
            model_version: r.model_version,
            score: r.score,
            scores: r.scores,
            scoring: r.scoring,
            uncertainty: r.uncertainty.map(|u| u.0),
            override_,
            effective_score: r.effective_score,
            critique: r.critique,
            new_tokens: r.new_tokens,
            timings: r.timings.0,
            created_at: r.created_at,
        }
    }
}

/// A submission: its status, and its scores and critique once it has them. Needs
/// `competition:<slug>:read` for its competition; a key that holds nothing there gets the 404
/// of an unknown submission.
#[utoipa::path(
    get,
    path = "/v1/submissions/{id}",
    params(("id" = Uuid, Path, description = "The submission id ingest returned"), SubmissionParams),
    responses(
        (status = 200, body = SubmissionView),
        (status = 400, description = "Not a UUID, or a bad parameter", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key may not read this competition", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_submission(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<ApiPath<Uuid>, ApiError>,
    params: Result<ApiQuery<SubmissionParams>, ApiError>,
) -> Result<Json<SubmissionView>, ApiError> {
    caller.key()?;
    let ApiPath(id) = id?;
    let ApiQuery(params) = params?;
    let unknown = || ApiError::not_found("submission.not_found", format!("there is no submission {id}"));
    let record = submissions::find(&state.pool, id).await.map_err(ApiError::database)?.ok_or_else(unknown)?;
    caller.require_or_hide(&record.competition_slug, Access::Read, unknown)?;
    let competition =
        competitions::find(&state.pool, record.competition_id).await.map_err(ApiError::database)?.ok_or_else(unknown)?;
    let result = match model_version(&state.pool, &competition, params.model_version).await? {
        Some(version) => results::for_submission(&state.pool, id, &version).await.map_err(ApiError::database)?,
        None => None,
    };
    let override_ = overrides::find(&state.pool, id).await.map_err(ApiError::database)?;
    let status = record.status().map_err(ApiError::internal)?;
    let failure = match (record.failure_code, record.failure_reason) {
        (Some(code), reason) if status == SubmissionStatus::Failed => Some(FailureView { code, reason: reason.unwrap_or_default() }),
        _ => None,
    };
    Ok(Json(SubmissionView {
        id: record.id,
        competition: record.competition_slug,
        external_id: record.external_id,
        status,
        failure,
        image: ImageView { sha256: record.image_sha256, format: record.image_format, width: record.width, height: record.height },
        description: record.description,
        created_at: record.created_at,
        updated_at: record.updated_at,
        result: result.map(|r| ResultView::new(r, override_)),
    }))
}
