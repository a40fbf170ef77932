//! `overrides`: an organiser's score for an entry in place of the model's.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::domain::{Reason, Score};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Override {
    pub score: f32,
    pub reason: String,
    /// The key that set it.
    pub key_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "score, reason, key_id, created_at";

/// Sets (or replaces) the override of a submission; returns the one it replaced.
pub async fn set(
    conn: &mut PgConnection,
    submission_id: Uuid,
    score: Score,
    reason: &Reason,
    key_id: Uuid,
) -> Result<(Option<Override>, Override), sqlx::Error> {
    let before = lock(&mut *conn, submission_id).await?;
    let after = sqlx::query_as(&format!(
        "INSERT INTO overrides (submission_id, score, reason, key_id) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (submission_id) DO UPDATE SET score = EXCLUDED.score, reason = EXCLUDED.reason, \
             key_id = EXCLUDED.key_id, created_at = now() \
         RETURNING {COLUMNS}"
    ))
    .bind(submission_id)
    .bind(score.value())
    .bind(reason.as_str())
    .bind(key_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok((before, after))
}

/// Removes the override of a submission; returns it (`None`: there was none).
pub async fn clear(conn: &mut PgConnection, submission_id: Uuid) -> Result<Option<Override>, sqlx::Error> {
    sqlx::query_as(&format!("DELETE FROM overrides WHERE submission_id = $1 RETURNING {COLUMNS}"))
        .bind(submission_id)
        .fetch_optional(conn)
        .await
}

pub async fn find(db: impl PgExecutor<'_>, submission_id: Uuid) -> Result<Option<Override>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM overrides WHERE submission_id = $1"))
        .bind(submission_id)
        .fetch_optional(db)
        .await
}

async fn lock(conn: &mut PgConnection, submission_id: Uuid) -> Result<Option<Override>, sqlx::Error> {
    // The submission row is the lock: two overrides of one entry at once are recorded one
    // after the other, each with the right "before".
    sqlx::query("SELECT 1 FROM submissions WHERE id = $1 FOR UPDATE").bind(submission_id).execute(&mut *conn).await?;
    find(&mut *conn, submission_id).await
}
