use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use easel_core::auth::Caller;
use easel_core::db::submissions::{self, Inserted};
use easel_core::domain::{Description, ExternalId, SubmissionStatus};
use easel_core::http::{ApiError, ApiPath, ErrorBody};
use easel_core::metrics::{SUBMISSIONS_TOTAL, Stage};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    competition_to_submit, duplicate_field, missing_field, multipart_rejection, multipart_error, read_text,
    unknown_field, utf8,
};
use crate::spool::spool;
use crate::staging::{Upload, stage, too_many_bytes};
use crate::state::AppState;

/// The multipart form of one submission (for the OpenAPI document).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SubmissionForm {
    /// JPEG, PNG or WebP; the format is read from the content, not the part's type.
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
    /// The artist's text (UTF-8).
    description: Option<String>,
    /// The competition's own id for the entry; repeating it with the same image returns the
    /// existing submission, with another image is a 409 `submission.conflict`.
    external_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubmissionAccepted {
    pub id: Uuid,
    pub status: SubmissionStatus,
    /// True when the external id was already taken: this is the existing submission.
    pub duplicate: bool,
}

impl From<Inserted> for SubmissionAccepted {
    fn from(inserted: Inserted) -> Self {
        Self { id: inserted.id, status: inserted.status, duplicate: !inserted.created }
    }
}

/// Submits one painting.
#[utoipa::path(
    post,
    path = "/v1/competitions/{slug}/submissions",
    params(("slug" = String, Path, description = "The competition")),
    request_body(content = SubmissionForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "Stored and queued", body = SubmissionAccepted),
        (status = 200, description = "The external id was already submitted with this image: the existing submission", body = SubmissionAccepted),
        (status = 400, description = "Malformed form or missing field", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key may not submit to this competition", body = ErrorBody),
        (status = 404, description = "Unknown competition (or one the key holds nothing in)", body = ErrorBody),
        (status = 409, description = "The external id was already submitted with another image", body = ErrorBody),
        (status = 413, description = "Image or request over the size limit", body = ErrorBody),
        (status = 415, description = "Not a JPEG, PNG or WebP, or not what its part type says", body = ErrorBody),
        (status = 422, description = "Truncated, corrupt or oversized image; invalid text field", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(slug): ApiPath<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<SubmissionAccepted>), ApiError> {
    let result = accept(&state, &caller, &slug, multipart).await;
    let outcome = match &result {
        Ok((StatusCode::ACCEPTED, _)) => "accepted",
        Ok(_) => "duplicate",
        Err(_) => "rejected",
    };
    metrics::counter!(SUBMISSIONS_TOTAL, "outcome" => outcome).increment(1);
    result
}

async fn accept(
    state: &AppState,
    caller: &Caller,
    slug: &str,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<SubmissionAccepted>), ApiError> {
    let competition = competition_to_submit(state, caller, slug).await?;
    let mut multipart = multipart.map_err(multipart_rejection)?;
    let limits = &state.limits;
    let (mut image, mut declared_type, mut description, mut external_id) = (None, None, None, None);
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "image" if image.is_some() => return Err(duplicate_field(&name)),
            "image" => {
                declared_type = field.content_type().map(str::to_string);
                image = Some(spool(&mut field, limits.max_image_bytes).await?.ok_or_else(|| too_many_bytes(limits.max_image_bytes))?);
            }
            "description" if description.is_some() => return Err(duplicate_field(&name)),
            "description" => {
                let bytes = read_text(&mut field, "description", limits.max_description_bytes).await?;
                description = Some(Description::parse_bytes(&bytes, limits.max_description_bytes)?);
            }
            "external_id" if external_id.is_some() => return Err(duplicate_field(&name)),
            "external_id" => {
                let bytes = read_text(&mut field, "external_id", limits.max_external_id_bytes).await?;
                external_id = Some(ExternalId::parse(utf8(&bytes, "external_id")?, limits.max_external_id_bytes)?);
            }
            _ => return Err(unknown_field(&name, "image, description, external_id")),
        }
    }
    let image = image.ok_or_else(|| missing_field("image"))?;

    if let Some(external_id) = &external_id {
        if let Some(existing) = submissions::find_by_external_id(&state.pool, competition.id, external_id, &image.sha256)
            .await
            .map_err(ApiError::database)?
        {
            return answer(existing);
        }
    }
    let upload = Upload { image, declared_type, external_id, description };
    let staged = stage(state, competition.id, upload).await?;
    let inserted = Stage::Insert
        .time(1, submissions::insert_with_jobs(&state.pool, std::slice::from_ref(&staged)))
        .await
        .map_err(ApiError::database)?;
    state.jobs_written.notify_one();
    let inserted = inserted.into_iter().next().ok_or_else(|| ApiError::internal("the insert returned no row"))?;
    answer(inserted)
}

/// 202 for a new submission, 200 for the same image under a taken external id, 409 for another.
fn answer(inserted: Inserted) -> Result<(StatusCode, Json<SubmissionAccepted>), ApiError> {
    if inserted.conflict {
        return Err(conflict());
    }
    let status = if inserted.created { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((status, Json(inserted.into())))
}

/// The external id is taken by a submission of another image.
pub fn conflict() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "submission.conflict",
        "this external id was already submitted with a different image; use another external id",
    )
}
