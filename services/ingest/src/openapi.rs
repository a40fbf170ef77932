//! The ingest API's OpenAPI document, served at `/openapi.json`.

use axum::Json;
use easel_core::auth::BearerSecurity;
use utoipa::OpenApi;

use crate::routes::{bulk, competitions, judging, jurors, keys, overrides, rounds, score_sheet, submissions};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Easel ingest",
        description = "Competitions and submissions in; validated, stored and queued for scoring. Juries: jurors, rounds, scores, overrides."
    ),
    paths(
        keys::create, keys::list, keys::revoke, competitions::create, competitions::change, competitions::rescore,
        submissions::submit, bulk::submit_bulk,
        jurors::create, rounds::create, rounds::change, judging::queue, judging::image, judging::put_score,
        score_sheet::import, overrides::set, overrides::clear,
    ),
    components(schemas(easel_core::http::ErrorBody, easel_core::http::ErrorDetail)),
    modifiers(&BearerSecurity)
)]
pub struct IngestApi;

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(IngestApi::openapi())
}
