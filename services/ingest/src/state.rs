//! What the ingest handlers share.

use std::sync::Arc;

use easel_core::configuration::IngestSettings;
use easel_core::storage::ImageStore;
use easel_imaging::DecodeLimits;
use sqlx::PgPool;
use tokio::sync::{Notify, Semaphore};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub store: ImageStore,
    pub limits: Arc<IngestSettings>,
    pub decode_limits: Arc<DecodeLimits>,
    /// Woken after every commit that wrote jobs, so the relay publishes them at once.
    pub jobs_written: Arc<Notify>,
    /// One permit per image being decoded (`ingest.decode_concurrency`), over all requests.
    pub decode_slots: Arc<Semaphore>,
    /// One permit per bulk request being served (`ingest.bulk_requests`).
    pub bulk_slots: Arc<Semaphore>,
}
