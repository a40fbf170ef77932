//! The read API's OpenAPI document, served at `/openapi.json`.

use axum::Json;
use easel_core::auth::BearerSecurity;
use utoipa::OpenApi;

use crate::routes::jury::{agreement, calibration, roster, scores_csv, standings};
use crate::routes::{audit, compare, duplicates, export, leaderboard, progress, submissions};

#[derive(OpenApi)]
#[openapi(
    info(title = "Easel API", description = "Submissions, leaderboards, progress and exports of Easel's painting assessments; jury rounds' standings, agreement figures, calibrations of zero-shot scores, score sheets and the audit log."),
    paths(
        submissions::get_submission,
        leaderboard::results,
        progress::progress,
        compare::compare,
        duplicates::duplicates,
        export::export_csv,
        export::export_jsonl,
        roster::rounds,
        roster::jurors,
        standings::standings,
        agreement::agreement,
        calibration::calibration,
        scores_csv::scores_csv,
        audit::audit,
    ),
    components(schemas(easel_core::http::ErrorBody, easel_core::http::ErrorDetail)),
    modifiers(&BearerSecurity)
)]
pub struct ReadApi;

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ReadApi::openapi())
}
