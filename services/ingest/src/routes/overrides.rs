//! Overrides: an organiser puts their own score (1–100, the model's scale) on an entry, with a
//! reason; results then show the model's score, the override and the effective score. Every
//! override and its removal is in the audit log.

use axum::Json;
use axum::extract::State;
use easel_core::auth::{Access, Caller, KeyCaller};
use easel_core::db::audit::{self, Action, NewEntry};
use easel_core::db::overrides::{self, Override};
use easel_core::db::submissions;
use easel_core::domain::{Reason, Score};
use easel_core::http::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOverride {
    /// The score that counts instead of the model's: 1–100.
    pub score: f32,
    /// Why (1–2000 characters); kept in the audit log.
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OverrideView {
    pub submission_id: Uuid,
    /// The override now in force; none after a removal.
    #[serde(rename = "override")]
    pub current: Option<Override>,
}

/// Overrides an entry's score.
#[utoipa::path(
    post,
    path = "/v1/submissions/{id}/override",
    params(("id" = Uuid, Path, description = "The submission")),
    request_body = NewOverride,
    responses(
        (status = 200, body = OverrideView),
        (status = 400, description = "The body is not JSON, or the id is not a UUID", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key may not manage the submission's competition (`admin` or `competition:<slug>:manage`)", body = ErrorBody),
        (status = 404, description = "No such submission", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "A score outside 1–100, or no reason", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn set(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<ApiPath<Uuid>, ApiError>,
    body: Result<ApiJson<NewOverride>, ApiError>,
) -> Result<Json<OverrideView>, ApiError> {
    let ApiPath(id) = id?;
    let (competition_id, admin) = manage(&state, &caller, id).await?;
    let ApiJson(body) = body?;
    let score = Score::parse(body.score)?;
    let reason = Reason::parse(&body.reason)?;
    let mut tx = state.pool.begin().await.map_err(ApiError::database)?;
    let (before, after) = overrides::set(&mut tx, id, score, &reason, admin.id).await.map_err(ApiError::database)?;
    let entry = NewEntry::by(admin, competition_id, Action::OverrideSet, json!({ "submission_id": id }))
        .change(before.map(|b| b.score), Some(after.score))
        .reason(reason.as_str());
    audit::append(&mut *tx, &[entry]).await.map_err(ApiError::database)?;
    tx.commit().await.map_err(ApiError::database)?;
    tracing::info!(submission = %id, score = after.score, by = %admin.id, "score overridden");
    Ok(Json(OverrideView { submission_id: id, current: Some(after) }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ClearParams {
    /// Why the override goes (1–2000 characters); kept in the audit log.
    pub reason: String,
}

/// Removes an entry's override: the model's score counts again.
#[utoipa::path(
    delete,
    path = "/v1/submissions/{id}/override",
    params(("id" = Uuid, Path, description = "The submission"), ClearParams),
    responses(
        (status = 200, body = OverrideView),
        (status = 400, description = "No reason, or the id is not a UUID", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key may not manage the submission's competition (`admin` or `competition:<slug>:manage`)", body = ErrorBody),
        (status = 404, description = "No such submission, or it has no override", body = ErrorBody),
        (status = 422, description = "An empty or hostile reason", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn clear(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<ApiPath<Uuid>, ApiError>,
    params: Result<ApiQuery<ClearParams>, ApiError>,
) -> Result<Json<OverrideView>, ApiError> {
    let ApiPath(id) = id?;
    let (competition_id, admin) = manage(&state, &caller, id).await?;
    let ApiQuery(params) = params?;
    let reason = Reason::parse(&params.reason)?;
    let mut tx = state.pool.begin().await.map_err(ApiError::database)?;
    let removed = overrides::clear(&mut tx, id)
        .await
        .map_err(ApiError::database)?
        .ok_or_else(|| ApiError::not_found("override.not_found", format!("submission {id} has no override")))?;
    let entry = NewEntry::by(admin, competition_id, Action::OverrideCleared, json!({ "submission_id": id }))
        .change(Some(removed.score), None::<f32>)
        .reason(reason.as_str());
    audit::append(&mut *tx, &[entry]).await.map_err(ApiError::database)?;
    tx.commit().await.map_err(ApiError::database)?;
    Ok(Json(OverrideView { submission_id: id, current: None }))
}

/// The submission's competition, if the caller may manage it: 401 without a key, 404 for a
/// submission that does not exist or whose competition the key holds nothing in, 403 without
/// `admin` or `competition:<slug>:manage`.
async fn manage<'c>(state: &AppState, caller: &'c Caller, id: Uuid) -> Result<(Uuid, &'c KeyCaller), ApiError> {
    caller.key()?;
    let unknown = || ApiError::not_found("submission.not_found", format!("there is no submission {id}"));
    let submission = submissions::find(&state.pool, id).await.map_err(ApiError::database)?.ok_or_else(unknown)?;
    let key = caller.require_or_hide(&submission.competition_slug, Access::Manage, unknown)?;
    Ok((submission.competition_id, key))
}
