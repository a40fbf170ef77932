//! Which model version a read of a competition means. Every read takes `model_version`; without
//! it, the competition's pinned version (`PATCH /v1/competitions/{slug}`), else the newest version
//! that scored the competition (shadow results never count). A read shows one version, never a
//! mix.

use sqlx::PgPool;

use crate::db::competitions::Competition;
use crate::db::results;
use crate::http::ApiError;

/// Longest model version accepted in a request (the checkpoints' `easel.json` names are short).
pub const MAX_VERSION_CHARS: usize = 200;

/// A model version named in a request: 1–200 printable characters.
pub fn parse(field: &str, raw: &str) -> Result<String, ApiError> {
    let ok = !raw.is_empty() && raw.chars().count() <= MAX_VERSION_CHARS && !raw.chars().any(char::is_control);
    if ok {
        Ok(raw.to_string())
    } else {
        Err(ApiError::bad_request(
            "invalid.model_version",
            format!("{field}: a model version is 1 to {MAX_VERSION_CHARS} characters, without control characters"),
        ))
    }
}

/// The version asked for, or the competition's default: its pinned version, else the newest
/// version that scored it (`None` while nothing is scored).
pub async fn resolve(pool: &PgPool, competition: &Competition, asked: Option<&str>) -> Result<Option<String>, ApiError> {
    if let Some(asked) = asked {
        return parse("model_version", asked).map(Some);
    }
    default(pool, competition).await
}

/// The competition's default version: pinned, else the newest that scored it.
pub async fn default(pool: &PgPool, competition: &Competition) -> Result<Option<String>, ApiError> {
    if let Some(pinned) = &competition.model_version {
        return Ok(Some(pinned.clone()));
    }
    results::latest_model_version(pool, competition.id).await.map_err(ApiError::database)
}
