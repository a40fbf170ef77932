//! A competition's audit log: overrides, juror score changes and round changes — which key,
//! when, what, old → new, why. Append-only: the database refuses to change or delete an entry.

use axum::Json;
use axum::extract::State;
use easel_core::auth::{self, Access, Caller};
use easel_core::db::audit::{self, Entry};
use easel_core::http::{ApiError, ApiPath, ApiQuery, ErrorBody};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::state::AppState;

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Entries after this id (`next_after` of the previous page); default from the start.
    pub after: Option<i64>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Oldest first.
    pub items: Vec<Entry>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<i64>,
}

/// A page of a competition's audit log.
#[utoipa::path(
    get,
    path = "/v1/competitions/{slug}/audit",
    params(("slug" = String, Path, description = "The competition"), AuditParams),
    responses(
        (status = 200, body = AuditPage),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key may not read this competition (a juror's may not)", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(slug): ApiPath<String>,
    params: Result<ApiQuery<AuditParams>, ApiError>,
) -> Result<Json<AuditPage>, ApiError> {
    let (competition, _) = auth::competition(&state.pool, &caller, &slug, Access::Read, false).await?;
    let ApiQuery(params) = params?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request("invalid.query", format!("limit must be 1 to {MAX_LIMIT}")));
    }
    let items = audit::page(&state.pool, competition.id, params.after.unwrap_or(0), limit + 1).await.map_err(ApiError::database)?;
    let (items, next_after) = if items.len() as i64 > limit {
        let items: Vec<Entry> = items.into_iter().take(limit as usize).collect();
        let last = items.last().map(|e| e.id);
        (items, last)
    } else {
        (items, None)
    };
    Ok(Json(AuditPage { items, next_after }))
}
