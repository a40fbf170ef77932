//! The read API's routes: the table ([`router`]) and the handlers, one module per resource.

pub mod audit;
pub mod compare;
pub mod duplicates;
pub mod export;
pub mod jury;
pub mod leaderboard;
pub mod progress;
pub mod submissions;

use axum::Router;
use axum::routing::get;
use easel_core::db::competitions::Competition;
use easel_core::http::ApiError;
use easel_rubric::RubricScores;
use sqlx::PgPool;

use crate::state::AppState;

/// Every route of the read API (the caller is resolved by the `authenticate` middleware the
/// startup puts in front).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/submissions/{id}", get(submissions::get_submission))
        .route("/v1/competitions/{slug}/results", get(leaderboard::results))
        .route("/v1/competitions/{slug}/progress", get(progress::progress))
        .route("/v1/competitions/{slug}/compare", get(compare::compare))
        .route("/v1/competitions/{slug}/duplicates", get(duplicates::duplicates))
        .route("/v1/competitions/{slug}/export.csv", get(export::export_csv))
        .route("/v1/competitions/{slug}/export.jsonl", get(export::export_jsonl))
        .route("/v1/competitions/{slug}/audit", get(audit::audit))
        .route("/v1/competitions/{slug}/jurors", get(jury::roster::jurors))
        .route("/v1/competitions/{slug}/rounds", get(jury::roster::rounds))
        .route("/v1/competitions/{slug}/rounds/{round}/standings", get(jury::standings::standings))
        .route("/v1/competitions/{slug}/rounds/{round}/agreement", get(jury::agreement::agreement))
        .route("/v1/competitions/{slug}/rounds/{round}/calibration", get(jury::calibration::calibration))
        .route("/v1/competitions/{slug}/rounds/{round}/scores.csv", get(jury::scores_csv::scores_csv))
        .route("/openapi.json", get(crate::openapi::serve))
        .with_state(state)
}

/// The model version asked for, or the competition's default (`easel_core::versions`).
async fn model_version(pool: &PgPool, competition: &Competition, asked: Option<String>) -> Result<Option<String>, ApiError> {
    easel_core::versions::resolve(pool, competition, asked.as_deref()).await
}

/// The overall score and the five rubric scores, each in 1..=100, as the API serves them: six
/// flat fields. A plain name because utoipa's derive composes the schema of a generic field type
/// itself, and would miss the flat one the rubric crate gives `RubricScores<f32>`.
pub type Scores = RubricScores<f32>;
