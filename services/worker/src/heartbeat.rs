//! Tells Postgres which model versions this worker serves (`workers`), so that a rescore knows
//! the version the workers now serve: a row written at start and every
//! [`workers::HEARTBEAT_INTERVAL`], deleted when the worker stops consuming (drain or shutdown).

use easel_core::db::workers;
use sqlx::PgPool;
use tokio::sync::watch;

pub struct Heartbeat {
    pub pool: PgPool,
    pub name: String,
    pub model_version: String,
    pub shadow_version: Option<String>,
}

impl Heartbeat {
    /// Beats until `stop` turns true, then removes the worker's row.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(workers::HEARTBEAT_INTERVAL);
        loop {
            let stopped = tokio::select! {
                _ = tick.tick() => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            if stopped {
                break;
            }
            if let Err(e) = workers::heartbeat(&self.pool, &self.name, &self.model_version, self.shadow_version.as_deref()).await {
                tracing::warn!(error = %e, "cannot write the worker's heartbeat");
            }
        }
        if let Err(e) = workers::gone(&self.pool, &self.name).await {
            tracing::warn!(error = %e, "cannot remove the worker's heartbeat row");
        }
    }
}
