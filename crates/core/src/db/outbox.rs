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
