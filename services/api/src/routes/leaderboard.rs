use axum::Json;
use axum::extract::State;
use easel_core::auth::{self, Access, Caller, Visibility};
use easel_core::db::results::{self, LeaderboardCursor, LeaderboardQuery};
use easel_core::http::{ApiError, ApiPath, ApiQuery, ErrorBody};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{Scores, model_version};
use crate::state::AppState;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LeaderboardParams {
    /// Page size, 1–500 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only effective scores at or above this.
    pub min_score: Option<f32>,
    /// Only effective scores at or below this.
    pub max_score: Option<f32>,
    /// Default: the model version that most recently scored the competition.
    pub model_version: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeaderboardPage {
    pub competition: String,
    /// The model version ranked (null while nothing is scored).
    pub model_version: Option<String>,
    /// Best effective score first; ties in order of submission id, descending.
    pub items: Vec<LeaderboardEntry>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeaderboardEntry {
    pub submission_id: Uuid,
    pub external_id: Option<String>,
    /// The model's score.
    pub score: f32,
    pub scores: Scores,
    /// An organiser's score in place of the model's (`POST /v1/submissions/{id}/override`).
    pub override_score: Option<f32>,
    /// The override, or else the model's score: what the leaderboard ranks by.
    pub effective_score: f32,
    /// Absent on a public leaderboard read without a key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critique: Option<String>,
}

/// A page of a competition's leaderboard, by keyset pagination (stable while results arrive).
/// Needs `competition:<slug>:read`, or no key at all when the competition has `public_results`
/// (then without critiques).
#[utoipa::path(
    get,
    path = "/v1/competitions/{slug}/results",
    params(("slug" = String, Path, description = "The competition"), LeaderboardParams),
    responses(
        (status = 200, body = LeaderboardPage),
        (status = 400, description = "Bad parameter or cursor", body = ErrorBody),
        (status = 401, description = "No valid API key (and the results are not public)", body = ErrorBody),
        (status = 403, description = "The key may not read this competition", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn results(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(slug): ApiPath<String>,
    params: Result<ApiQuery<LeaderboardParams>, ApiError>,
) -> Result<Json<LeaderboardPage>, ApiError> {
    let (competition, visibility) = auth::competition(&state.pool, &caller, &slug, Access::Read, true).await?;
    let ApiQuery(params) = params?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request("invalid.limit", format!("limit must be 1 to {MAX_LIMIT}")));
    }
    let after = params.cursor.as_deref().map(parse_cursor).transpose()?;
    let Some(model_version) = model_version(&state.pool, &competition, params.model_version).await? else {
        return Ok(Json(LeaderboardPage { competition: competition.slug, model_version: None, items: Vec::new(), next_cursor: None }));
    };
    let query = LeaderboardQuery {
        competition_id: competition.id,
        model_version: model_version.clone(),
        min_score: params.min_score,
        max_score: params.max_score,
        after,
        // One more than a page: whether there is a next page at all.
        limit: limit + 1,
    };
    let mut rows = results::leaderboard(&state.pool, &query).await.map_err(ApiError::database)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = more
        .then(|| rows.last().map(|r| format_cursor(LeaderboardCursor { score: r.effective_score, submission_id: r.submission_id })))
        .flatten();
    let items = rows
        .into_iter()
        .map(|r| LeaderboardEntry {
            submission_id: r.submission_id,
            external_id: r.external_id,
            score: r.score,
            scores: r.scores,
            override_score: r.override_score,
            effective_score: r.effective_score,
            critique: (visibility == Visibility::Full).then_some(r.critique),
        })
        .collect();
    Ok(Json(LeaderboardPage { competition: competition.slug, model_version: Some(model_version), items, next_cursor }))
}

/// `<score>_<submission id>`: the last row of a page. Rust prints an `f32` so that it parses
/// back to the same value, so the cursor is exact.
fn format_cursor(cursor: LeaderboardCursor) -> String {
    format!("{}_{}", cursor.score, cursor.submission_id)
}

fn parse_cursor(raw: &str) -> Result<LeaderboardCursor, ApiError> {
    let bad = || ApiError::bad_request("invalid.cursor", "the cursor is not one this API returned");
    let (score, id) = raw.split_once('_').ok_or_else(bad)?;
    let score: f32 = score.parse().map_err(|_| bad())?;
    if !score.is_finite() {
        return Err(bad());
    }
    Ok(LeaderboardCursor { score, submission_id: id.parse().map_err(|_| bad())? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let cursor = LeaderboardCursor { score: 87.123_46, submission_id: Uuid::now_v7() };
        assert_eq!(parse_cursor(&format_cursor(cursor)).unwrap(), cursor);
        assert!(parse_cursor("nan_00000000-0000-0000-0000-000000000000").is_err());
        assert!(parse_cursor("garbage").is_err());
    }
}
