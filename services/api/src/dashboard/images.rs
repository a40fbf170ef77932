//! The images people see: the thumbnail and preview the pipeline made once per submission
//! (`easel_core::storage::Derived`), read from the bucket with the caller's scopes. Never the
//! original file, so never its metadata.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::Response;
use easel_core::auth::Access;
use easel_core::db::submissions::{self, SubmissionRecord};
use easel_core::http::ApiError;
use easel_core::jury;
use easel_core::storage::{Derived, StorageError};
use uuid::Uuid;

use super::viewer::{PageError, PageResult, Viewer};
use crate::state::AppState;

/// No copy is larger (a 1600-pixel JPEG is a few hundred kilobytes).
const MAX_COPY_BYTES: usize = 16 * 1024 * 1024;

/// `…/entries/{id}/thumbnail.jpg` and `…/entries/{id}/preview.jpg`, for a key that may read the
/// competition.
pub async fn entry_image(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((slug, id, file)): Path<(String, String, String)>,
) -> PageResult<Response> {
    let unknown = || ApiError::not_found("submission.not_found", "there is no such entry");
    let derived = match file.as_str() {
        "thumbnail.jpg" => Derived::Thumbnail,
        "preview.jpg" => Derived::Preview,
        _ => return Err(PageError(unknown())),
    };
    let id = Uuid::parse_str(&id).map_err(|_| PageError(unknown()))?;
    viewer.caller.require_or_hide(&slug, Access::Read, unknown)?;
    let submission = submission_in(&state, id, &slug).await?.ok_or_else(|| PageError(unknown()))?;
    serve(&state, &submission, derived).await
}

/// `…/rounds/{round}/judge/{id}/image.jpg`: the preview, for a juror of the round.
pub async fn juror_image(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((slug, round_id, id)): Path<(String, Uuid, Uuid)>,
) -> PageResult<Response> {
    let (competition, _) = jury::juror(&state.pool, &viewer.caller, &slug).await?;
    let round = jury::round(&state.pool, &competition, round_id).await?;
    jury::entry_in_round(&state.pool, &round, id).await?;
    let submission = submission_in(&state, id, &slug).await?.ok_or_else(|| PageError(jury::entry_not_in_round(id)))?;
    serve(&state, &submission, Derived::Preview).await
}

/// The submission `id` if it is an entry of the competition `slug`.
pub(super) async fn submission_in(state: &AppState, id: Uuid, slug: &str) -> PageResult<Option<SubmissionRecord>> {
    let found = submissions::find(&state.pool, id).await.map_err(PageError::database)?;
    Ok(found.filter(|s| s.competition_slug == slug))
}

async fn serve(state: &AppState, submission: &SubmissionRecord, derived: Derived) -> PageResult<Response> {
    let _permit = state.image_reads.acquire().await.map_err(|e| PageError(ApiError::internal(e)))?;
    let bytes = state.store.get_limited(&derived.key(&submission.image_sha256), MAX_COPY_BYTES).await.map_err(|e| match e {
        StorageError::NotFound { .. } => PageError(ApiError::not_found(
            "image.not_found",
            "this entry has no copy to show (it was uploaded before the pipeline made them)",
        )),
        StorageError::Unavailable { .. } => PageError(ApiError::unavailable(e)),
        StorageError::TooLarge { .. } => PageError(ApiError::internal(e)),
    })?;
    Response::builder()
        .header(CONTENT_TYPE, "image/jpeg")
        .header(CACHE_CONTROL, "private, max-age=3600")
        .body(Body::from(bytes))
        .map_err(|e| PageError(ApiError::internal(e)))
}
