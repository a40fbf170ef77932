//! Jurors: an organiser adds a juror and hands them the `judge` key made with them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use easel_core::auth::{self, Access, Caller, Scopes, generate_token};
use easel_core::db::audit::{self, Action, NewEntry};
use easel_core::db::{jurors, keys};
use easel_core::domain::Name;
use easel_core::http::{ApiError, ApiJson, ApiPath, ErrorBody};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewJuror {
    /// 1–100 printable characters; unique in the competition.
    #[schema(example = "Anna Müller")]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JurorCreated {
    pub id: Uuid,
    pub name: String,
    /// The juror's own key (`competition:<slug>:judge`, nothing else): shown this once.
    pub token: String,
}

/// Adds a juror (or a study's rater) with a `judge` key for this competition only.
#[utoipa::path(
    post,
    path = "/v1/competitions/{slug}/jurors",
    params(("slug" = String, Path, description = "The competition")),
    request_body = NewJuror,
    responses(
        (status = 201, body = JurorCreated),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key may not manage this competition (`admin` or `competition:<slug>:manage`)", body = ErrorBody),
        (status = 404, description = "No such competition", body = ErrorBody),
        (status = 409, description = "The competition has a juror of this name", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Invalid name", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(slug): ApiPath<String>,
    body: Result<ApiJson<NewJuror>, ApiError>,
) -> Result<(StatusCode, Json<JurorCreated>), ApiError> {
    let (competition, _) = auth::competition(&state.pool, &caller, &slug, Access::Manage, false).await?;
    let admin = caller.key()?;
    let ApiJson(body) = body?;
    let name = Name::parse("name", &body.name)?;
    let scopes = Scopes::parse(&[format!("competition:{}:{}", competition.slug, Access::Judge.as_str())]).map_err(ApiError::internal)?;
    let (token, hash) = generate_token().map_err(ApiError::internal)?;

    let mut tx = state.pool.begin().await.map_err(ApiError::database)?;
    let key = keys::insert(&mut *tx, &name.key_name(), &scopes, None, Some(admin.id), &hash).await.map_err(ApiError::database)?;
    let juror = jurors::insert(&mut *tx, competition.id, &name, Some(key.id)).await.map_err(ApiError::database)?.ok_or_else(|| {
        ApiError::new(StatusCode::CONFLICT, "juror.exists", format!("the competition has a juror named {:?}", name.as_str()))
    })?;
    let entry = NewEntry::by(admin, competition.id, Action::JurorCreated, json!({ "juror_id": juror.id }))
        .change(None::<()>, Some(json!({ "name": juror.name, "key_id": key.id })));
    audit::append(&mut *tx, &[entry]).await.map_err(ApiError::database)?;
    tx.commit().await.map_err(ApiError::database)?;

    tracing::info!(juror = %juror.id, key = %key.id, competition = %competition.slug, "juror added");
    Ok((StatusCode::CREATED, Json(JurorCreated { id: juror.id, name: juror.name, token: token.expose_secret().to_string() })))
}
