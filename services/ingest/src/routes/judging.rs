//! What a juror does with their `judge` key: walk their queue of a round, look at each entry's
//! image (a fresh copy without any of the file's metadata), and score it.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::Response;
use chrono::{DateTime, Utc};
use easel_core::auth::{self, Access, Caller};
use easel_core::db::juror_scores::{self, StoredScore};
use easel_core::db::rounds::{self, Round, RoundEntry};
use easel_core::db::submissions;
use easel_core::domain::JurorScore;
use easel_core::http::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use easel_core::jury;
use easel_core::metrics::Stage;
use easel_rubric::Rubric;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::staging::{image_error, storage_error};
use crate::state::AppState;

/// The longer side of the copy of an entry's image a juror is shown.
pub const JUROR_IMAGE_MAX_SIDE: u32 = 2048;
const JUROR_IMAGE_QUALITY: u8 = 90;
const QUEUE_DEFAULT: i64 = 100;
const QUEUE_MAX: i64 = 500;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct QueueParams {
    /// Only the entries this juror has not scored yet.
    #[serde(default)]
    pub pending: bool,
    /// Entries to skip (default 0).
    pub offset: Option<i64>,
    /// Entries to return: 1–500, default 100.
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Queue {
    pub round: QueueRound,
    /// Entries in the round.
    pub total: i64,
    /// Entries this juror has scored (or declared a conflict on).
    pub scored: usize,
    /// This juror's order: random, the same on every call.
    pub entries: Vec<QueueEntry>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueRound {
    pub id: Uuid,
    pub name: String,
    pub scale_min: i32,
    pub scale_max: i32,
    pub blind: bool,
    /// A closed round takes no scores.
    pub closed: bool,
}

/// An entry as a juror sees it. In a blind round: the image and its size, and the juror's own
/// score — no entry id of the competition's, no artist's text, no other score.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueEntry {
    pub submission_id: Uuid,
    /// The image without its file's metadata (JPEG, at most 2048 pixels on the longer side).
    pub image_url: String,
    pub width: i32,
    pub height: i32,
    /// This juror's score, once given.
    pub your_score: Option<ScoreView>,
    /// Not in a blind round.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The artist's description; not in a blind round.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The model's score (1–100); not in a blind round.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_score: Option<f32>,
}

/// A juror's score as stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScoreView {
    pub submission_id: Uuid,
    pub score: Option<f64>,
    #[schema(value_type = Option<Object>)]
    pub rubric: Option<Rubric<f64>>,
    pub note: Option<String>,
    pub conflict: bool,
    pub updated_at: DateTime<Utc>,
}

impl From<&StoredScore> for ScoreView {
    fn from(s: &StoredScore) -> Self {
        Self {
            submission_id: s.submission_id,
            score: s.score.score,
            rubric: s.score.rubric,
            note: s.score.note.clone(),
            conflict: s.score.conflict,
            updated_at: s.updated_at,
        }
    }
}

/// A juror's queue for a round.
#[utoipa::path(
    get,
    path = "/v1/competitions/{slug}/rounds/{round}/queue",
    params(("slug" = String, Path, description = "The competition"), ("round" = Uuid, Path, description = "The round"), QueueParams),
    responses(
        (status = 200, body = Queue),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Not a juror's key", body = ErrorBody),
        (status = 404, description = "No such competition or round", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn queue(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<ApiPath<(String, Uuid)>, ApiError>,
    params: Result<ApiQuery<QueueParams>, ApiError>,
) -> Result<Json<Queue>, ApiError> {
    let ApiPath((slug, round_id)) = path?;
    let (competition, juror) = jury::juror(&state.pool, &caller, &slug).await?;
    let ApiQuery(params) = params?;
    let offset = params.offset.unwrap_or(0);
    let limit = params.limit.unwrap_or(QUEUE_DEFAULT);
    if offset < 0 || !(1..=QUEUE_MAX).contains(&limit) {
        return Err(ApiError::bad_request("invalid.query", format!("offset must be ≥ 0 and limit 1 to {QUEUE_MAX}")));
    }
    let round = jury::round(&state.pool, &competition, round_id).await?;
    let model_version = if round.blind {
        None
    } else {
        easel_core::versions::default(&state.pool, &competition).await?
    };
    let entries = rounds::queue(&state.pool, round.id, juror.id, model_version.as_deref(), params.pending, offset, limit)
        .await
        .map_err(ApiError::database)?;
    let mine = juror_scores::of_juror(&state.pool, round.id, juror.id).await.map_err(ApiError::database)?;
    let entries = entries
        .into_iter()
        .map(|e| {
            let own = mine.get(&e.submission_id);
            queue_entry(&slug, &round, e, own)
        })
        .collect();
    Ok(Json(Queue {
        total: round.entries,
        scored: mine.len(),
        round: QueueRound {
            id: round.id,
            name: round.name,
            scale_min: round.scale_min,
            scale_max: round.scale_max,
            blind: round.blind,
            closed: round.closed_at.is_some(),
        },
        entries,
    }))
}

fn queue_entry(slug: &str, round: &Round, entry: RoundEntry, mine: Option<&StoredScore>) -> QueueEntry {
    let open = !round.blind;
    QueueEntry {
        submission_id: entry.submission_id,
        image_url: format!("/v1/competitions/{slug}/rounds/{}/entries/{}/image", round.id, entry.submission_id),
        width: entry.width,
        height: entry.height,
        your_score: mine.map(ScoreView::from),
        external_id: entry.external_id.filter(|_| open),
        description: entry.description.filter(|_| open),
        model_score: entry.model_score.filter(|_| open),
    }
}

/// An entry's image for the jury: a fresh JPEG of the pixels (no EXIF, XMP, IPTC or comments),
/// at most 2048 pixels on its longer side. For the round's jurors and the competition's readers.
#[utoipa::path(
    get,
    path = "/v1/competitions/{slug}/rounds/{round}/entries/{submission_id}/image",
    params(
        ("slug" = String, Path, description = "The competition"),
        ("round" = Uuid, Path, description = "The round"),
        ("submission_id" = Uuid, Path, description = "The entry"),
    ),
    responses(
        (status = 200, content_type = "image/jpeg", description = "The image"),
        (status = 400, description = "Not a UUID", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Neither a juror's key nor one that may read the competition", body = ErrorBody),
        (status = 404, description = "No such competition, round or entry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn image(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<ApiPath<(String, Uuid, Uuid)>, ApiError>,
) -> Result<Response, ApiError> {
    let ApiPath((slug, round_id, submission_id)) = path?;
    let competition = if caller.key()?.scopes.allows(&slug, Access::Read) {
        auth::competition(&state.pool, &caller, &slug, Access::Read, false).await?.0
    } else {
        jury::juror(&state.pool, &caller, &slug).await?.0
    };
    let round = jury::round(&state.pool, &competition, round_id).await?;
    jury::entry_in_round(&state.pool, &round, submission_id).await?;
    let submission = submissions::find(&state.pool, submission_id)
        .await
        .map_err(ApiError::database)?
        .ok_or_else(|| jury::entry_not_in_round(submission_id))?;

    let slot = state.decode_slots.acquire().await.map_err(ApiError::internal)?;
    let bytes = state
        .store
        .get_limited(&submission.image_key, state.decode_limits.max_bytes)
        .await
        .map_err(storage_error)?;
    let limits = state.decode_limits.clone();
    let jpeg = Stage::Validate
        .run_blocking(1, move || {
            let image = easel_imaging::decode(&bytes, &limits).map_err(image_error)?;
            easel_imaging::reencode::to_jpeg(&image, JUROR_IMAGE_MAX_SIDE, JUROR_IMAGE_QUALITY).map_err(image_error)
        })
        .await
        .map_err(ApiError::internal)??;
    drop(slot);
    Response::builder()
        .header(CONTENT_TYPE, "image/jpeg")
        .header(CACHE_CONTROL, "private, max-age=3600")
        .body(Body::from(jpeg))
        .map_err(ApiError::internal)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreInput {
    /// On the round's scale (fractions allowed); may be left out only with `conflict: true`.
    pub score: Option<f64>,
    /// The five rubric criteria, each on the round's scale.
    #[schema(value_type = Option<Object>)]
    pub rubric: Option<Rubric<f64>>,
    /// Up to 4000 characters, for the organisers.
    pub note: Option<String>,
    /// A declared conflict of interest: recorded, and left out of every figure.
    #[serde(default)]
    pub conflict: bool,
}

/// A juror scores an entry of a round (again: the new score replaces theirs, and the change
/// is in the audit log).
#[utoipa::path(
    put,
    path = "/v1/competitions/{slug}/rounds/{round}/scores/{submission_id}",
    params(
        ("slug" = String, Path, description = "The competition"),
        ("round" = Uuid, Path, description = "The round"),
        ("submission_id" = Uuid, Path, description = "The entry"),
    ),
    request_body = ScoreInput,
    responses(
        (status = 200, body = ScoreView),
        (status = 400, description = "The body is not JSON, or an id is not a UUID", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Not a juror's key", body = ErrorBody),
        (status = 404, description = "No such competition, round or entry", body = ErrorBody),
        (status = 409, description = "The round is closed", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "A score off the round's scale, or a bad note", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn put_score(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<ApiPath<(String, Uuid, Uuid)>, ApiError>,
    body: Result<ApiJson<ScoreInput>, ApiError>,
) -> Result<Json<ScoreView>, ApiError> {
    let ApiPath((slug, round_id, submission_id)) = path?;
    let (competition, juror) = jury::juror(&state.pool, &caller, &slug).await?;
    let key = caller.key()?;
    let round = jury::round(&state.pool, &competition, round_id).await?;
    jury::entry_in_round(&state.pool, &round, submission_id).await?;
    let ApiJson(body) = body?;
    let score = JurorScore::parse(round.scale(), body.score, body.rubric, body.note.as_deref(), body.conflict)?;
    let stored = jury::record_score(&state.pool, key, &competition, &juror, &round, submission_id, score).await?;
    Ok(Json(ScoreView::from(&stored)))
}
