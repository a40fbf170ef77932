use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use easel_core::configuration::IngestSettings;
use easel_core::http::{Readiness, instrument, ops_router, serve};
use easel_core::queue::Publisher;
use easel_core::storage::ImageStore;
use easel_core::{Service, Settings, db, metrics};
use easel_imaging::DecodeLimits;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::relay::OutboxRelay;
use crate::routes;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub store: ImageStore,
    pub limits: Arc<IngestSettings>,
    pub decode_limits: Arc<DecodeLimits>,
    /// Woken after every commit that wrote jobs, so the relay publishes them at once.
    pub jobs_written: Arc<Notify>,
}

/// The ingest service, bound and ready to run.
pub struct Application {
    port: u16,
    listener: TcpListener,
    router: Router,
    relay: OutboxRelay,
    publisher: Arc<Publisher>,
    shutdown_grace: Duration,
}

impl Application {
    /// Connects (lazily) to its dependencies and binds `application.host:port` (port 0 picks a
    /// free one, see [`Application::port`]).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = db::pool(&settings.database)?;
        Self::build_with_pool(settings, pool).await
    }

    /// As [`Application::build`], over an existing pool.
    pub async fn build_with_pool(settings: Settings, pool: PgPool) -> anyhow::Result<Self> {
        let store = ImageStore::new(&settings.s3);
        if settings.s3.create_bucket
            && let Err(e) = store.ensure_bucket().await
        {
            tracing::warn!(error = %e, bucket = store.bucket(), "cannot create the bucket yet");
        }
        let publisher = Arc::new(Publisher::new(&settings.rabbitmq, Service::Ingest.name()));
        let jobs_written = Arc::new(Notify::new());
        let state = AppState {
            pool: pool.clone(),
            store: store.clone(),
            limits: Arc::new(settings.ingest.clone()),
            decode_limits: Arc::new(settings.ingest.decode_limits()),
            jobs_written: jobs_written.clone(),
        };
        // Not the broker: while it is away, uploads still commit and their jobs wait in the
        // outbox (`easel_outbox_depth` shows them), so ingest stays in service.
        let readiness = Readiness::new().with_database(&pool).with_s3(&store);

        // A single upload is an image plus two short text fields; a bulk request may be large.
        let single_limit = settings.ingest.max_image_bytes
            + settings.ingest.max_description_bytes
            + settings.ingest.max_external_id_bytes
            + 64 * 1024;
        let api = Router::new()
            .route("/v1/competitions", post(routes::competitions::create))
            .route(
                "/v1/competitions/{slug}/submissions",
                post(routes::submissions::submit).layer(DefaultBodyLimit::max(single_limit)),
            )
            .route(
                "/v1/competitions/{slug}/bulk",
                post(routes::bulk::submit_bulk).layer(DefaultBodyLimit::max(settings.ingest.max_bulk_bytes)),
            )
            .route("/openapi.json", get(crate::openapi::serve))
            .with_state(state);
        let router = instrument(api.merge(ops_router(readiness, metrics::install())));

        let relay = OutboxRelay::new(
            pool,
            publisher.clone(),
            jobs_written,
            settings.ingest.outbox_batch,
            Duration::from_millis(settings.ingest.outbox_poll_ms),
        );
        let address = format!("{}:{}", settings.application.host, settings.application.port);
        let listener = TcpListener::bind(&address).await.with_context(|| format!("binding {address}"))?;
        let port = listener.local_addr()?.port();
        tracing::info!(%address, port, "ingest listening");
        Ok(Self {
            port,
            listener,
            router,
            relay,
            publisher,
            shutdown_grace: Duration::from_secs(settings.application.shutdown_grace_seconds),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` resolves, then stops taking requests, lets those in flight finish
    /// (within the grace period), publishes what the outbox holds and closes the connections.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (stop_relay, relay_stopped) = watch::channel(false);
        let relay = tokio::spawn(self.relay.run(relay_stopped));
        let served = serve(self.listener, self.router, shutdown, self.shutdown_grace).await;
        let _ = stop_relay.send(true);
        if let Err(e) = relay.await {
            tracing::error!(error = %e, "the outbox relay panicked");
        }
        self.publisher.close().await;
        tracing::info!("ingest stopped");
        served.context("serving HTTP")
    }
}
