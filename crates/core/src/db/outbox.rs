//! `outbox`: jobs written with their submissions, waiting to be published.

use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Transaction};

use crate::domain::JobMessage;

/// A job waiting to be published.
#[derive(Debug, sqlx::FromRow)]
pub struct PendingJob {
    pub id: i64,
    pub payload: Json<JobMessage>,
}

/// Writes `jobs` to be published, in the caller's transaction (with the change that needs them).
pub async fn insert(tx: &mut Transaction<'_, Postgres>, jobs: &[JobMessage]) -> Result<(), sqlx::Error> {
    if jobs.is_empty() {
        return Ok(());
    }
    sqlx::query("INSERT INTO outbox (submission_id, payload) SELECT * FROM UNNEST($1::uuid[], $2::jsonb[])")
        .bind(jobs.iter().map(|j| j.submission_id).collect::<Vec<_>>())
        .bind(jobs.iter().cloned().map(Json).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Locks up to `limit` of the oldest pending jobs for this transaction; other relays skip them.
pub async fn lock_pending(tx: &mut Transaction<'_, Postgres>, limit: i64) -> Result<Vec<PendingJob>, sqlx::Error> {
    sqlx::query_as("SELECT id, payload FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED")
        .bind(limit)
        .fetch_all(&mut **tx)
        .await
}

/// Removes published jobs.
pub async fn delete(tx: &mut Transaction<'_, Postgres>, ids: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM outbox WHERE id = ANY($1)").bind(ids).execute(&mut **tx).await?;
    Ok(())
}

/// Jobs not yet published.
pub async fn depth(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(pool).await
}
