//! What the api handlers share.

use std::sync::Arc;

use easel_core::configuration::DashboardSettings;
use easel_core::storage::ImageStore;
use sqlx::PgPool;
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// The bucket, for the thumbnails and previews the pipeline made (read only).
    pub store: ImageStore,
    pub dashboard: Arc<DashboardSettings>,
    /// One permit per image being read from the bucket (`dashboard.image_reads`), over all
    /// requests: a page of thumbnails cannot open a connection per image.
    pub image_reads: Arc<Semaphore>,
}
