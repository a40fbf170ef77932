//! A competition's rounds and jurors.

use axum::Json;
use axum::extract::State;
use easel_core::auth::{self, Access, Caller};
use easel_core::db::jurors::{self, Juror};
use easel_core::db::rounds::{self, Round};
use easel_core::http::{ApiError, ApiPath, ErrorBody};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct RoundList {
    /// Oldest first.
    pub items: Vec<Round>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JurorList {
    /// In the order they were added.
    pub items: Vec<Juror>,
}

/// A competition's rounds.
#[utoipa::path(
    get,
    path = "/v1/competitions/{slug}/rounds",
    params(("slug" = String, Path, description = "The competition")),
    responses(
        (status = 200, body = RoundList),
        (status = 400, description = "The slug is not UTF-8", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key may not read this competition", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn rounds(State(state): State<AppState>, caller: Caller, ApiPath(slug): ApiPath<String>) -> Result<Json<RoundList>, ApiError> {
    let (competition, _) = auth::competition(&state.pool, &caller, &slug, Access::Read, false).await?;
    let items = rounds::list(&state.pool, competition.id).await.map_err(ApiError::database)?;
    Ok(Json(RoundList { items }))
}

/// A competition's jurors (never their keys).
#[utoipa::path(
    get,
    path = "/v1/competitions/{slug}/jurors",
    params(("slug" = String, Path, description = "The competition")),
    responses(
        (status = 200, body = JurorList),
        (status = 400, description = "The slug is not UTF-8", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key may not read this competition", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn jurors(State(state): State<AppState>, caller: Caller, ApiPath(slug): ApiPath<String>) -> Result<Json<JurorList>, ApiError> {
    let (competition, _) = auth::competition(&state.pool, &caller, &slug, Access::Read, false).await?;
    let items = jurors::list(&state.pool, competition.id).await.map_err(ApiError::database)?;
    Ok(Json(JurorList { items }))
}
