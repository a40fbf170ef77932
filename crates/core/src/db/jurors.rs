//! `jurors`: a competition's jurors (or a study's raters).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::domain::Name;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Juror {
    pub id: Uuid,
    pub name: String,
    /// Whether the juror has an API key of their own (jurors from an imported sheet have none).
    pub has_key: bool,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, key_id IS NOT NULL AS has_key, created_at";

/// Adds a juror; `None` if the competition has one of this name.
pub async fn insert(
    db: impl PgExecutor<'_>,
    competition_id: Uuid,
    name: &Name,
    key_id: Option<Uuid>,
) -> Result<Option<Juror>, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO jurors (id, competition_id, name, key_id) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (competition_id, name) DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(competition_id)
    .bind(name.as_str())
    .bind(key_id)
    .fetch_optional(db)
    .await
}

/// The juror whose key this is, in this competition.
pub async fn find_by_key(db: impl PgExecutor<'_>, competition_id: Uuid, key_id: Uuid) -> Result<Option<Juror>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM jurors WHERE competition_id = $1 AND key_id = $2"))
        .bind(competition_id)
        .bind(key_id)
        .fetch_optional(db)
        .await
}

/// The competition's jurors, in the order they were added.
pub async fn list(db: impl PgExecutor<'_>, competition_id: Uuid) -> Result<Vec<Juror>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM jurors WHERE competition_id = $1 ORDER BY created_at, id"))
        .bind(competition_id)
        .fetch_all(db)
        .await
}

/// The ids of the jurors named `names`, adding those the competition does not have yet (without
/// keys). Returns the ids by name and the names added.
pub async fn find_or_create(
    conn: &mut PgConnection,
    competition_id: Uuid,
    names: &[Name],
) -> Result<(HashMap<String, Uuid>, Vec<String>), sqlx::Error> {
    let names: Vec<&str> = names.iter().map(Name::as_str).collect();
    let added: Vec<String> = sqlx::query_scalar(
        "INSERT INTO jurors (id, competition_id, name) \
         SELECT id, $1, name FROM UNNEST($2::uuid[], $3::text[]) AS n (id, name) \
         ON CONFLICT (competition_id, name) DO NOTHING RETURNING name",
    )
    .bind(competition_id)
    .bind(names.iter().map(|_| Uuid::now_v7()).collect::<Vec<_>>())
    .bind(&names)
    .fetch_all(&mut *conn)
    .await?;
    let rows: Vec<(String, Uuid)> = sqlx::query_as("SELECT name, id FROM jurors WHERE competition_id = $1 AND name = ANY($2)")
        .bind(competition_id)
        .bind(&names)
        .fetch_all(&mut *conn)
        .await?;
    Ok((rows.into_iter().collect(), added))
}
