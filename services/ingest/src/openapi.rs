//! The ingest API's OpenAPI document, served at `/openapi.json`.

use axum::Json;
use easel_core::auth::BearerSecurity;
use utoipa::OpenApi;

use crate::routes::{bulk, competitions, keys, submissions};

#[derive(OpenApi)]
#[openapi(
    info(title = "Easel ingest", description = "Competitions and submissions in; validated, stored and queued for scoring."),
    paths(keys::create, keys::list, keys::revoke, competitions::create, submissions::submit, bulk::submit_bulk),
    components(schemas(easel_core::http::ErrorBody, easel_core::http::ErrorDetail)),
    modifiers(&BearerSecurity)
)]
pub struct IngestApi;

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(IngestApi::openapi())
}
