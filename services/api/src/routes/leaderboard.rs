use axum::Json;
use axum::extract::State;
use easel_core::auth::{self, Access, Caller, Visibility};
use easel_core::db::results::{self, LeaderboardCursor, LeaderboardQuery};
use easel_core::http::{ApiError, ApiPath, ApiQuery, ErrorBody};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use easel_rubric::ScoringMode;

use super::{Scores, model_version};
use crate::state::AppState;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LeaderboardParams {
    /// Page size, 1–500 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page (it carries the page's model version).
    pub cursor: Option<String>,
    /// Only effective scores at or above this.
    pub min_score: Option<f32>,
    /// Only effective scores at or below this.
    pub max_score: Option<f32>,
    /// Default: the competition's pinned model version, else the newest that scored it; with a
    /// `cursor`, the cursor's version (naming another is a 400).
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
    /// How the scores were made: `head` or `zero-shot`.
    pub scoring: ScoringMode,
    /// Each score's uncertainty, a standard deviation on the 1–100 scale (zero-shot only).
    #[schema(value_type = Option<Scores>)]
    pub uncertainty: Option<Scores>,
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
    let cursor = params.cursor.as_deref().map(parse_cursor).transpose()?;
    let asked = match (&cursor, params.model_version) {
        (Some(cursor), Some(asked)) if asked != cursor.model_version => {
            return Err(ApiError::bad_request("invalid.cursor", "the cursor belongs to another model version's leaderboard"));
        }
        (Some(cursor), _) => Some(cursor.model_version.clone()),
        (None, asked) => asked,
    };
    let after = cursor.map(|c| c.after);
    let Some(model_version) = model_version(&state.pool, &competition, asked).await? else {
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
        .then(|| {
            rows.last().map(|r| {
                let after = LeaderboardCursor { score: r.effective_score, submission_id: r.submission_id };
                format_cursor(&PageCursor { after, model_version: model_version.clone() })
            })
        })
        .flatten();
    let items = rows
        .into_iter()
        .map(|r| LeaderboardEntry {
            submission_id: r.submission_id,
            external_id: r.external_id,
            score: r.score,
            scores: r.scores,
            scoring: r.scoring,
            uncertainty: r.uncertainty.map(|u| u.0),
            override_score: r.override_score,
            effective_score: r.effective_score,
            critique: (visibility == Visibility::Full).then_some(r.critique),
        })
        .collect();
    Ok(Json(LeaderboardPage { competition: competition.slug, model_version: Some(model_version), items, next_cursor }))
}

/// Where the next page starts, on which version's leaderboard.
#[derive(Debug, Clone, PartialEq)]
struct PageCursor {
    after: LeaderboardCursor,
    model_version: String,
}

/// `<score>_<submission id>_<model version>`: the last row of a page and the version ranked.
/// Rust prints an `f32` so that it parses back to the same value, so the cursor is exact; the
/// version is last, so it may hold `_` itself.
fn format_cursor(cursor: &PageCursor) -> String {
    format!("{}_{}_{}", cursor.after.score, cursor.after.submission_id, cursor.model_version)
}

fn parse_cursor(raw: &str) -> Result<PageCursor, ApiError> {
    let bad = || ApiError::bad_request("invalid.cursor", "the cursor is not one this API returned");
    let mut parts = raw.splitn(3, '_');
    let (Some(score), Some(id), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let score: f32 = score.parse().map_err(|_| bad())?;
    if !score.is_finite() {
        return Err(bad());
    }
    let model_version = easel_core::versions::parse("cursor", version).map_err(|_| bad())?;
    Ok(PageCursor { after: LeaderboardCursor { score, submission_id: id.parse().map_err(|_| bad())? }, model_version })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let after = LeaderboardCursor { score: 87.123_46, submission_id: Uuid::now_v7() };
        for version in ["easel-v1", "qwen2_vl_7b_2026", "v 2 (shadow)"] {
            let cursor = PageCursor { after, model_version: version.into() };
            assert_eq!(parse_cursor(&format_cursor(&cursor)).unwrap(), cursor);
        }
        assert!(parse_cursor("nan_00000000-0000-0000-0000-000000000000_v1").is_err());
        // A cursor of the versionless format (before model versions were pinned) is refused.
        assert!(parse_cursor("87.5_00000000-0000-0000-0000-000000000000").is_err());
        assert!(parse_cursor("87.5_00000000-0000-0000-0000-000000000000_").is_err());
        assert!(parse_cursor("87.5_00000000-0000-0000-0000-000000000000_v\u{0}1").is_err());
        assert!(parse_cursor("garbage").is_err());
    }
}
