//! From uploaded bytes to a stored image ready for its row: checked before anything is stored.

use axum::http::StatusCode;
use easel_core::db::submissions::NewSubmission;
use easel_core::domain::{Description, ExternalId};
use easel_core::http::ApiError;
use easel_core::metrics::Stage;
use easel_core::storage::{Derived, StorageError, image_key, sha256_hex};
use easel_imaging::phash::PerceptualHash;
use easel_imaging::{DecodeError, DecodeLimits, format_name, mime_type, sniff};
use uuid::Uuid;

use crate::spool::Spooled;
use crate::state::AppState;

/// One painting as a client sent it.
#[derive(Debug)]
pub struct Upload {
    /// On disk until a decode slot is free.
    pub image: Spooled,
    /// The part's `Content-Type`, if the client gave one.
    pub declared_type: Option<String>,
    pub external_id: Option<ExternalId>,
    pub description: Option<Description>,
}

/// What the bytes turned out to be.
struct CheckedImage {
    format: &'static str,
    mime: &'static str,
    width: u32,
    height: u32,
    sha256: String,
    /// The perceptual hash of the decoded pixels (near-duplicate entries).
    phash: PerceptualHash,
    /// The copies people look at (`Derived::ALL`, in that order): fresh JPEGs of the pixels.
    derived: Vec<Vec<u8>>,
}

/// Validates the image (content sniffing, the declared type, size, dimensions checked before
/// any pixel is allocated, a full decode to catch truncation), then stores it under its
/// sha256. Nothing is stored for an image that fails.
pub async fn stage(state: &AppState, competition_id: Uuid, upload: Upload) -> Result<NewSubmission, ApiError> {
    let limits = state.decode_limits.clone();
    let declared = upload.declared_type.clone();
    // The image is in memory only within a decode slot, and a decode holds up to
    // `DecodeLimits::peak_bytes`: a pod decodes only so many at once.
    let slot = state.decode_slots.acquire().await.map_err(ApiError::internal)?;
    let bytes = upload.image.read().await?;
    let image = bytes.clone();
    let checked = Stage::Validate
        .run_blocking(1, move || check_image(&image, declared.as_deref(), &limits))
        .await
        .map_err(ApiError::internal)??;
    let key = image_key(&checked.sha256);
    Stage::Store.time(1, state.store.put(&key, bytes, checked.mime)).await.map_err(storage_error)?;
    // The copies for the dashboard are made once, here, where the pixels are decoded anyway;
    // they are stored before the row that makes them reachable (the orphan sweep removes any
    // whose upload then fails).
    for (derived, jpeg) in Derived::ALL.into_iter().zip(checked.derived) {
        let key = derived.key(&checked.sha256);
        Stage::Store.time(1, state.store.put(&key, jpeg.into(), "image/jpeg")).await.map_err(storage_error)?;
    }
    drop(slot);
    Ok(NewSubmission {
        competition_id,
        external_id: upload.external_id,
        image_key: key,
        image_sha256: checked.sha256,
        image_format: checked.format.to_string(),
        image_bytes: upload.image.len as i64,
        width: checked.width as i32,
        height: checked.height as i32,
        description: upload.description,
        phash: Some(checked.phash.to_bytes()),
    })
}

fn check_image(bytes: &[u8], declared_type: Option<&str>, limits: &DecodeLimits) -> Result<CheckedImage, ApiError> {
    if let (Some(declared), Some(sniffed)) = (declared_type.and_then(declared_image_type), sniff(bytes))
        && declared != mime_type(sniffed)
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "image.content_type_mismatch",
            format!("the part says {declared} but the content is {}", mime_type(sniffed)),
        ));
    }
    let image = easel_imaging::decode(bytes, limits).map_err(image_error)?;
    let (format, width, height) = (image.format, image.width(), image.height());
    let sizes: Vec<(u32, u8)> = Derived::ALL.iter().map(|d| (d.max_side(), d.quality())).collect();
    let derived = easel_imaging::reencode::to_jpegs(&image, &sizes).map_err(image_error)?;
    Ok(CheckedImage {
        derived,
        format: format_name(format),
        mime: mime_type(format),
        width,
        height,
        sha256: sha256_hex(bytes),
        phash: image.perceptual_hash(),
    })
}

/// The declared type if it claims to be an image (`application/octet-stream` claims nothing).
fn declared_image_type(content_type: &str) -> Option<&'static str> {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "image/jpeg" | "image/jpg" | "image/pjpeg" => Some("image/jpeg"),
        "image/png" => Some("image/png"),
        "image/webp" => Some("image/webp"),
        "image/gif" => Some("image/gif"),
        "image/bmp" => Some("image/bmp"),
        "image/tiff" => Some("image/tiff"),
        other if other.starts_with("image/") => Some("image/other"),
        _ => None,
    }
}

/// The client's image was refused: a 4xx that says why.
pub fn image_error(error: DecodeError) -> ApiError {
    let status = match error {
        DecodeError::TooManyBytes { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        DecodeError::NotAnImage | DecodeError::UnsupportedFormat(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        DecodeError::Empty | DecodeError::TooLarge { .. } | DecodeError::AspectRatio { .. } | DecodeError::Truncated | DecodeError::Corrupt(_) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
    };
    ApiError::new(status, format!("image.{}", error.code()), error.to_string())
}

/// A stored image that cannot be read or written: 503 while S3 is unavailable, else ours (500).
pub fn storage_error(error: StorageError) -> ApiError {
    match error {
        StorageError::Unavailable { .. } => ApiError::unavailable(error),
        StorageError::NotFound { .. } | StorageError::TooLarge { .. } => ApiError::internal(error),
    }
}

/// The error for an image over the byte limit, found while reading it.
pub fn too_many_bytes(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "image.too_many_bytes",
        format!("the image is over the limit of {max} bytes"),
    )
}
