//! `api_keys`.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::auth::{Scopes, TokenHash};

/// A key as listed (never its token or hash): also the API's view of it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// To the minute.
    pub last_used_at: Option<DateTime<Utc>>,
    /// The key that made it (null: made with `easel keys create`).
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// A key that authenticated a request: live (not revoked, not expired).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActiveKey {
    pub id: Uuid,
    pub name: String,
    pub scopes: Vec<String>,
    pub token_sha256: Vec<u8>,
    /// Whether `last_used_at` is over a minute old (so the caller updates it).
    pub stale_last_use: bool,
}

const COLUMNS: &str = "id, name, scopes, expires_at, revoked_at, last_used_at, created_by, created_at";

/// Stores a new key under the hash of its token.
pub async fn insert(
    db: impl PgExecutor<'_>,
    name: &str,
    scopes: &Scopes,
    expires_at: Option<DateTime<Utc>>,
    created_by: Option<Uuid>,
    hash: &TokenHash,
) -> Result<ApiKey, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO api_keys (id, name, token_sha256, scopes, expires_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(name)
    .bind(&hash.0[..])
    .bind(scopes.to_strings())
    .bind(expires_at)
    .bind(created_by)
    .fetch_one(db)
    .await
}

/// The live key with this token hash.
pub async fn find_active(db: impl PgExecutor<'_>, hash: &TokenHash) -> Result<Option<ActiveKey>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, scopes, token_sha256, \
                (last_used_at IS NULL OR last_used_at < now() - interval '1 minute') AS stale_last_use \
         FROM api_keys \
         WHERE token_sha256 = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
    )
    .bind(&hash.0[..])
    .fetch_optional(db)
    .await
}

/// Records that a key was used now.
pub async fn touch(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE api_keys SET last_used_at = now() WHERE id = $1").bind(id).execute(db).await.map(|_| ())
}

/// Every key, newest first (at most `limit`).
pub async fn list(pool: &PgPool, limit: i64) -> Result<Vec<ApiKey>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_at DESC, id DESC LIMIT $1"))
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// Revokes a key; `None` if there is none with this id. Revoking twice keeps the first time.
pub async fn revoke(pool: &PgPool, id: Uuid) -> Result<Option<ApiKey>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}
