//! `workers`: which model versions the running workers serve (their heartbeats).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// How often a worker writes its heartbeat row.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);

/// A worker counts as serving while its heartbeat is at most this old (six heartbeats, so a slow
/// database or a long batch does not drop it).
pub const SERVING_WITHIN: Duration = Duration::from_secs(180);

/// Records that the worker `name` is alive and serving `model_version` (and a shadow version).
pub async fn heartbeat(pool: &PgPool, name: &str, model_version: &str, shadow_version: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO workers (name, model_version, shadow_version) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET model_version = EXCLUDED.model_version, \
                                          shadow_version = EXCLUDED.shadow_version, seen_at = now()",
    )
    .bind(name)
    .bind(model_version)
    .bind(shadow_version)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Removes the worker's row (a clean shutdown).
pub async fn gone(pool: &PgPool, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM workers WHERE name = $1").bind(name).execute(pool).await.map(|_| ())
}

/// A model version served by the workers seen lately.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Served {
    pub model_version: String,
    pub workers: i64,
    pub last_seen_at: DateTime<Utc>,
}

/// The primary model versions of the workers seen within [`SERVING_WITHIN`], most workers first.
pub async fn served_versions(pool: &PgPool) -> Result<Vec<Served>, sqlx::Error> {
    sqlx::query_as(
        "SELECT model_version, count(*) AS workers, max(seen_at) AS last_seen_at FROM workers \
         WHERE seen_at > now() - make_interval(secs => $1) GROUP BY model_version ORDER BY count(*) DESC, model_version",
    )
    .bind(SERVING_WITHIN.as_secs_f64())
    .fetch_all(pool)
    .await
}
