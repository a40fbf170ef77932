use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use easel_core::auth::Caller;
use easel_core::db::competitions;
use easel_core::domain::{CompetitionSlug, CompetitionTitle, RubricWeights};
use easel_core::http::{ApiError, ApiJson, ErrorBody};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCompetition {
    /// 3–64 of `a-z`, `0-9`, `-`.
    #[schema(example = "spring-salon-2026")]
    pub slug: String,
    pub title: String,
    /// Leaderboard weights of the rubric scores (normalised to sum to 1); without them the
    /// leaderboard ranks by the overall score.
    pub rubric_weights: Option<RubricWeights>,
    /// The leaderboard and progress are readable without a key (never descriptions, critiques
    /// or files). Default false.
    #[serde(default)]
    pub public_results: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompetitionCreated {
    pub id: uuid::Uuid,
    pub slug: String,
    pub title: String,
    pub rubric_weights: Option<RubricWeights>,
    pub public_results: bool,
    pub created_at: DateTime<Utc>,
}

/// Creates a competition.
#[utoipa::path(
    post,
    path = "/v1/competitions",
    request_body = NewCompetition,
    responses(
        (status = 201, body = CompetitionCreated),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key is not `admin`", body = ErrorBody),
        (status = 409, description = "The slug is taken", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Invalid slug, title or weights", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<NewCompetition>, ApiError>,
) -> Result<(StatusCode, Json<CompetitionCreated>), ApiError> {
    caller.require_admin()?;
    let ApiJson(body) = body?;
    let slug = CompetitionSlug::parse(&body.slug)?;
    let title = CompetitionTitle::parse(&body.title)?;
    let weights = body.rubric_weights.map(RubricWeights::parse).transpose()?;
    let competition = competitions::insert(&state.pool, &slug, &title, weights, body.public_results)
        .await
        .map_err(ApiError::database)?
        .ok_or_else(|| {
            ApiError::new(StatusCode::CONFLICT, "competition.exists", format!("the slug {slug} is taken"))
        })?;
    Ok((
        StatusCode::CREATED,
        Json(CompetitionCreated {
            id: competition.id,
            slug: competition.slug,
            title: competition.title,
            rubric_weights: competition.rubric_weights.map(|w| w.0),
            public_results: competition.public_results,
            created_at: competition.created_at,
        }),
    ))
}
