//! The read API's OpenAPI document, served at `/openapi.json`.

use axum::Json;
use easel_core::auth::BearerSecurity;
use utoipa::OpenApi;

use crate::routes::{export, leaderboard, progress, submissions};

#[derive(OpenApi)]
#[openapi(
    info(title = "Easel API", description = "Submissions, leaderboards, progress and exports of Easel's painting assessments."),
    paths(
        submissions::get_submission,
        leaderboard::results,
        progress::progress,
        export::export_csv,
        export::export_jsonl,
    ),
    components(schemas(easel_core::http::ErrorBody, easel_core::http::ErrorDetail)),
    modifiers(&BearerSecurity)
)]
pub struct ReadApi;

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ReadApi::openapi())
}
