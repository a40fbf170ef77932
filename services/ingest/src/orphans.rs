//! Deletes stored images, and the copies made from them (`Derived`), that no submission refers
//! to: what a request left behind when it was
//! refused after some of its files were stored (a bulk request whose last part was bad, a
//! client that went away, an insert that failed). Objects are content-addressed and may be
//! shared, so an object goes only when it is older than `ingest.orphan_after_seconds`, no
//! submission names it, and it has not been written again since it was listed (an upload of
//! the same bytes rewrites it, and its row follows within that request).

use std::time::{Duration, SystemTime};

use easel_core::db::submissions;
use easel_core::metrics::ORPHANS_DELETED_TOTAL;
use easel_core::storage::{DERIVED_PREFIX, Derived, IMAGE_PREFIX, ImageStore, StorageError};
use sqlx::PgPool;
use tokio::sync::watch;

/// Keys listed and checked per round trip.
const PAGE: i32 = 500;

pub struct OrphanSweep {
    pub pool: PgPool,
    pub store: ImageStore,
    pub interval: Duration,
    pub orphan_after: Duration,
}

#[derive(Debug, thiserror::Error)]
enum SweepError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl OrphanSweep {
    /// Sweeps every `interval` until `stop` turns true.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        crate::periodic::every(self.interval, stop, || async {
            match self.sweep().await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "deleted images no submission refers to"),
                Err(e) => tracing::warn!(error = %e, "cannot sweep for orphaned images"),
            }
        })
        .await;
    }

    /// One pass over the bucket; how many objects it deleted.
    async fn sweep(&self) -> Result<usize, SweepError> {
        let originals = self.sweep_prefix(IMAGE_PREFIX, |key| Some(key.to_string())).await?;
        let copies = self.sweep_prefix(DERIVED_PREFIX, Derived::original_of).await?;
        Ok(originals + copies)
    }

    /// Deletes the old objects under `prefix` whose original image (`original_of` the key) no
    /// submission names.
    async fn sweep_prefix(&self, prefix: &str, original_of: impl Fn(&str) -> Option<String>) -> Result<usize, SweepError> {
        let cutoff = SystemTime::now() - self.orphan_after;
        let (mut after, mut deleted) = (None, 0);
        loop {
            let (old, next) = self.store.list_older(prefix, cutoff, after, PAGE).await?;
            let pairs: Vec<(String, String)> = old.into_iter().filter_map(|key| Some((original_of(&key)?, key))).collect();
            let originals: Vec<String> = pairs.iter().map(|(original, _)| original.clone()).collect();
            let orphaned = submissions::unreferenced_image_keys(&self.pool, &originals).await?;
            for (original, key) in pairs.iter().filter(|(original, _)| orphaned.contains(original)) {
                // Written again since the listing: an upload of the same bytes is under way.
                if self.store.last_modified(key).await?.is_none_or(|t| t >= cutoff) {
                    continue;
                }
                if submissions::unreferenced_image_keys(&self.pool, std::slice::from_ref(original)).await?.is_empty() {
                    continue;
                }
                self.store.delete(key).await?;
                metrics::counter!(ORPHANS_DELETED_TOTAL).increment(1);
                deleted += 1;
            }
            match next {
                Some(key) => after = Some(key),
                None => return Ok(deleted),
            }
        }
    }
}
