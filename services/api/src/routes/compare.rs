//! What switching a competition from one model version to another would change.

use axum::Json;
use axum::extract::State;
use easel_agreement::versions::{self, Comparison};
use easel_core::auth::{self, Access, Caller};
use easel_core::db::results;
use easel_core::http::{ApiError, ApiPath, ApiQuery, ErrorBody};
use easel_core::versions::parse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::state::AppState;

const DEFAULT_MOVERS: usize = 20;
const MAX_MOVERS: usize = 500;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CompareParams {
    /// The version now ranked (e.g. the pinned one).
    pub from: String,
    /// The version to compare with (e.g. a rescore's, or a shadow checkpoint's).
    pub to: String,
    /// How many of the biggest movers to list, 0–500 (default 20).
    pub movers: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompareView {
    pub competition: String,
    pub from: String,
    pub to: String,
    #[serde(flatten)]
    pub comparison: Comparison,
}

/// Two model versions' leaderboards of a competition side by side, by the model's scores
/// (overrides left out): how many entries both scored, Spearman and Pearson of their scores, the
/// mean shift, and the entries whose rank changes most (ranks on each version's whole
/// leaderboard). A figure that cannot be computed is null, with its reason under `reasons`.
/// Needs `competition:<slug>:read`.
#[utoipa::path(
    get,
    path = "/v1/competitions/{slug}/compare",
    params(("slug" = String, Path, description = "The competition"), CompareParams),
    responses(
        (status = 200, body = CompareView),
        (status = 400, description = "A missing or bad parameter", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key may not read this competition", body = ErrorBody),
        (status = 404, description = "No such competition", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn compare(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(slug): ApiPath<String>,
    params: Result<ApiQuery<CompareParams>, ApiError>,
) -> Result<Json<CompareView>, ApiError> {
    let (competition, _) = auth::competition(&state.pool, &caller, &slug, Access::Read, false).await?;
    let ApiQuery(params) = params?;
    let from = parse("from", &params.from)?;
    let to = parse("to", &params.to)?;
    let movers = params.movers.unwrap_or(DEFAULT_MOVERS);
    if movers > MAX_MOVERS {
        return Err(ApiError::bad_request("invalid.movers", format!("movers must be 0 to {MAX_MOVERS}")));
    }
    let ranking = |version: String| {
        let pool = state.pool.clone();
        let id = competition.id;
        async move {
            let rows = results::version_scores(&pool, id, &version).await.map_err(ApiError::database)?;
            Ok::<_, ApiError>(rows.into_iter().map(|(id, score)| (id, f64::from(score))).collect::<Vec<_>>())
        }
    };
    let (ranked_from, ranked_to) = tokio::try_join!(ranking(from.clone()), ranking(to.clone()))?;
    // Ranks and correlations of a large competition (100,000 entries) take tens of milliseconds.
    let comparison = tokio::task::spawn_blocking(move || versions::compare(&ranked_from, &ranked_to, movers))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(CompareView { competition: competition.slug, from, to, comparison }))
}
