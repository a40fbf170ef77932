use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::{Router, middleware};
use easel_core::auth::{Authenticator, authenticate};
use easel_core::server::ServerLimits;
use easel_core::http::{Readiness, instrument, ops_router, serve};
use easel_core::queue::Publisher;
use easel_core::storage::ImageStore;
use easel_core::{Service, Settings, db, metrics};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::dead_letters::DeadLetters;
use crate::relay::OutboxRelay;
use crate::orphans::OrphanSweep;
use crate::sweeper::Sweeper;
use crate::routes;
use crate::state::AppState;

/// The ingest service, bound and ready to run.
pub struct Application {
    port: u16,
    listener: TcpListener,
    router: Router,
    relay: OutboxRelay,
    sweeper: Sweeper,
    orphans: OrphanSweep,
    /// Absent when `ingest.consume_dead_letters` is off.
    dead_letters: Option<DeadLetters>,
    publisher: Arc<Publisher>,
    shutdown_grace: Duration,
    limits: ServerLimits,
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
            decode_slots: Arc::new(tokio::sync::Semaphore::new(settings.ingest.decode_concurrency)),
            bulk_slots: Arc::new(tokio::sync::Semaphore::new(settings.ingest.bulk_requests)),
        };
        // Not the broker: while it is away, uploads still commit and their jobs wait in the
        // outbox (`easel_outbox_depth` shows them), so ingest stays in service.
        let readiness = Readiness::new().with_database(&pool).with_s3(&store);
        let authenticator = Authenticator::new(pool.clone(), settings.application.rate_limit);
        let api = routes::router(state).layer(middleware::from_fn_with_state(authenticator, authenticate));
        let router = instrument(api.merge(ops_router(readiness, metrics::install())));

        let sweeper = Sweeper::new(
            pool.clone(),
            jobs_written.clone(),
            settings.ingest.sweep_interval(),
            settings.ingest.stuck_after(),
            settings.ingest.outbox_batch,
        );
        let orphans = OrphanSweep {
            pool: pool.clone(),
            store: store.clone(),
            interval: Duration::from_secs(settings.ingest.orphan_sweep_interval_seconds),
            orphan_after: Duration::from_secs(settings.ingest.orphan_after_seconds),
        };
        let dead_letters =
            settings.ingest.consume_dead_letters.then(|| DeadLetters::new(pool.clone(), settings.rabbitmq.clone()));
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
            sweeper,
            orphans,
            dead_letters,
            publisher,
            shutdown_grace: Duration::from_secs(settings.application.shutdown_grace_seconds),
            limits: settings.application.limits,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` resolves, then stops taking requests, lets those in flight finish
    /// (within the grace period), publishes what the outbox holds and closes the connections.
    /// The sweeper and the dead-letter consumer run beside the relay and stop with it.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (stop_relay, relay_stopped) = watch::channel(false);
        let sweeper = tokio::spawn(self.sweeper.run(relay_stopped.clone()));
        let orphans = tokio::spawn(self.orphans.run(relay_stopped.clone()));
        let dead_letters = self.dead_letters.map(|d| tokio::spawn(d.run(relay_stopped.clone())));
        let relay = tokio::spawn(self.relay.run(relay_stopped));
        let served = serve(self.listener, self.router, shutdown, self.shutdown_grace, self.limits).await;
        let _ = stop_relay.send(true);
        if let Err(e) = sweeper.await {
            tracing::error!(error = %e, "the sweeper panicked");
        }
        if let Err(e) = orphans.await {
            tracing::error!(error = %e, "the orphan sweep panicked");
        }
        if let Some(task) = dead_letters
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "the dead-letter consumer panicked");
        }
        if let Err(e) = relay.await {
            tracing::error!(error = %e, "the outbox relay panicked");
        }
        self.publisher.close().await;
        tracing::info!("ingest stopped");
        served.context("serving HTTP")
    }
}
