//! The ingest API's routes: the table ([`router`]) and the handlers, one module per resource.

pub mod bulk;
pub mod competitions;
pub mod judging;
pub mod jurors;
pub mod keys;
pub mod overrides;
pub mod rounds;
pub mod score_sheet;
pub mod submissions;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post, put};
use bytes::{Bytes, BytesMut};
use easel_core::auth::{self, Access, Caller};
use easel_core::db::competitions::Competition;
use easel_core::http::ApiError;

use crate::state::AppState;

/// Every route of the ingest API (the caller is resolved by the `authenticate` middleware the
/// startup puts in front).
pub fn router(state: AppState) -> Router {
    let limits = &state.limits;
    // A single upload is an image plus two short text fields; a bulk request may be large.
    let single_limit = limits.max_image_bytes + limits.max_description_bytes + limits.max_external_id_bytes + 64 * 1024;
    let bulk_limit = limits.max_bulk_bytes;
    Router::new()
        .route("/v1/keys", post(keys::create).get(keys::list))
        .route("/v1/keys/{id}", delete(keys::revoke))
        .route("/v1/competitions", post(competitions::create))
        .route("/v1/competitions/{slug}", patch(competitions::change))
        .route("/v1/competitions/{slug}/rescore", post(competitions::rescore))
        .route("/v1/competitions/{slug}/submissions", post(submissions::submit).layer(DefaultBodyLimit::max(single_limit)))
        .route("/v1/competitions/{slug}/bulk", post(bulk::submit_bulk).layer(DefaultBodyLimit::max(bulk_limit)))
        .route("/v1/competitions/{slug}/jurors", post(jurors::create))
        .route("/v1/competitions/{slug}/rounds", post(rounds::create))
        .route("/v1/competitions/{slug}/rounds/{round}", patch(rounds::change))
        .route("/v1/competitions/{slug}/rounds/{round}/queue", get(judging::queue))
        .route("/v1/competitions/{slug}/rounds/{round}/entries/{submission_id}/image", get(judging::image))
        .route("/v1/competitions/{slug}/rounds/{round}/scores/{submission_id}", put(judging::put_score))
        .route(
            "/v1/competitions/{slug}/rounds/{round}/scores.csv",
            post(score_sheet::import).layer(DefaultBodyLimit::max(score_sheet::MAX_SHEET_BYTES)),
        )
        .route("/v1/submissions/{id}/override", post(overrides::set).delete(overrides::clear))
        .route("/openapi.json", get(crate::openapi::serve))
        // Key management bodies are small JSON.
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(state)
}

/// The competition named by the path, if the caller may submit to it (else 401/403/404).
async fn competition_to_submit(state: &AppState, caller: &Caller, slug: &str) -> Result<Competition, ApiError> {
    auth::competition(&state.pool, caller, slug, Access::Submit, false).await.map(|(competition, _)| competition)
}

fn multipart_rejection(rejection: MultipartRejection) -> ApiError {
    ApiError::new(rejection.status(), "invalid.multipart", rejection.body_text())
}

pub(crate) fn multipart_error(error: MultipartError) -> ApiError {
    let status = error.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(status, "request.too_large", "the request body is over the size limit")
    } else {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid.multipart", error.body_text())
    }
}

/// Reads a part; `Ok(None)` once it is over `max` bytes (the rest is not read).
async fn read_limited(field: &mut Field<'_>, max: usize) -> Result<Option<Bytes>, ApiError> {
    let mut buffer = BytesMut::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if buffer.len() + chunk.len() > max {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(Some(buffer.freeze()))
}

/// Reads a short text part, which must be UTF-8 and at most `max` bytes.
async fn read_text(field: &mut Field<'_>, name: &'static str, max: usize) -> Result<Bytes, ApiError> {
    read_limited(field, max).await?.ok_or_else(|| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("invalid.{name}"), format!("{name}: over the limit of {max} bytes"))
    })
}

fn utf8<'a>(bytes: &'a [u8], name: &'static str) -> Result<&'a str, ApiError> {
    std::str::from_utf8(bytes).map_err(|_| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("invalid.{name}"), format!("{name}: is not valid UTF-8"))
    })
}

fn duplicate_field(name: &str) -> ApiError {
    ApiError::bad_request("invalid.multipart", format!("the field {name:?} appears twice"))
}

fn unknown_field(name: &str, expected: &str) -> ApiError {
    ApiError::bad_request("invalid.multipart", format!("unknown field {name:?}; expected {expected}"))
}

fn missing_field(name: &str) -> ApiError {
    ApiError::bad_request("missing_field", format!("the field {name:?} is required"))
}
