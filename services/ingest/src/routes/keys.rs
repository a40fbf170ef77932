//! API keys: made, listed and revoked by an `admin` key. A token is shown once, in the answer
//! that makes it; only its hash is stored.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use easel_core::auth::{Caller, Scopes, generate_token, parse_key_name};
use easel_core::db::keys::{self, ApiKey};
use easel_core::domain::ValidationError;
use easel_core::http::{ApiError, ApiJson, ApiPath, ErrorBody};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::state::AppState;

/// The most keys `GET /v1/keys` lists.
const LIST_LIMIT: i64 = 1000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// A label for people (1–100 letters, digits, spaces and `- _ . : @ ( ) ' /`).
    pub name: String,
    /// `admin`, or `competition:<slug>:submit|read|judge|manage` (1–64 of them).
    #[schema(example = json!(["competition:spring-salon:submit"]))]
    pub scopes: Vec<String>,
    /// When the key stops working (must be in the future); none: never.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyCreated {
    pub id: Uuid,
    /// The secret: shown this once, never again. Send it as `Authorization: Bearer <token>`.
    pub token: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// Newest first.
    pub items: Vec<ApiKey>,
}

/// Makes an API key.
#[utoipa::path(
    post,
    path = "/v1/keys",
    request_body = NewKey,
    responses(
        (status = 201, body = KeyCreated),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key is not `admin`", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Invalid name, scope or expiry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<NewKey>, ApiError>,
) -> Result<(StatusCode, Json<KeyCreated>), ApiError> {
    let admin = caller.require_admin()?;
    let ApiJson(body) = body?;
    let name = parse_key_name(&body.name)?;
    let scopes = Scopes::parse(&body.scopes)?;
    if body.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(ValidationError::new("expires_at", "must be in the future").into());
    }
    let (token, hash) = generate_token().map_err(ApiError::internal)?;
    let key = keys::insert(&state.pool, &name, &scopes, body.expires_at, Some(admin.id), &hash)
        .await
        .map_err(ApiError::database)?;
    tracing::info!(key = %key.id, by = %admin.id, scopes = ?key.scopes, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(KeyCreated {
            id: key.id,
            token: token.expose_secret().to_string(),
            name: key.name,
            scopes: key.scopes,
            expires_at: key.expires_at,
            created_at: key.created_at,
        }),
    ))
}

/// Lists the API keys (never their tokens).
#[utoipa::path(
    get,
    path = "/v1/keys",
    responses(
        (status = 200, body = KeyList),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key is not `admin`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<KeyList>, ApiError> {
    caller.require_admin()?;
    let keys = keys::list(&state.pool, LIST_LIMIT).await.map_err(ApiError::database)?;
    Ok(Json(KeyList { items: keys }))
}

/// Revokes an API key at once (revoking twice is harmless).
#[utoipa::path(
    delete,
    path = "/v1/keys/{id}",
    params(("id" = Uuid, Path, description = "The key's id")),
    responses(
        (status = 200, body = ApiKey),
        (status = 400, description = "Not a UUID", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key is not `admin`", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<ApiPath<Uuid>, ApiError>,
) -> Result<Json<ApiKey>, ApiError> {
    let admin = caller.require_admin()?;
    let ApiPath(id) = id?;
    let key = keys::revoke(&state.pool, id)
        .await
        .map_err(ApiError::database)?
        .ok_or_else(|| ApiError::not_found("key.not_found", format!("there is no key {id}")))?;
    tracing::info!(key = %key.id, by = %admin.id, "API key revoked");
    Ok(Json(key))
}
