pub mod bulk;
pub mod competitions;
pub mod submissions;

use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::http::StatusCode;
use bytes::{Bytes, BytesMut};
use easel_core::db::competitions::{Competition, find_by_slug};
use easel_core::domain::CompetitionSlug;
use easel_core::http::ApiError;
use sqlx::PgPool;

/// The competition named by the path, or a 404.
async fn find_competition(pool: &PgPool, slug: &str) -> Result<Competition, ApiError> {
    let unknown = || ApiError::not_found("competition.not_found", format!("there is no competition {slug:?}"));
    let slug = CompetitionSlug::parse(slug).map_err(|_| unknown())?;
    find_by_slug(pool, &slug).await.map_err(ApiError::database)?.ok_or_else(unknown)
}

fn multipart_rejection(rejection: MultipartRejection) -> ApiError {
    ApiError::new(rejection.status(), "invalid.multipart", rejection.body_text())
}

fn multipart_error(error: MultipartError) -> ApiError {
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
