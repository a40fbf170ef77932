use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use easel_core::http::{Readiness, instrument, ops_router_with_liveness, serve};
use easel_core::storage::ImageStore;
use easel_core::{Settings, db, metrics};
use easel_model::Assessor;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use crate::assess::Assess;
use crate::drain::Drain;
use crate::heartbeat::Heartbeat;
use crate::intake::{Intake, consumer_name};
use crate::record::Record;

/// The worker: its health server up, its model loaded, ready to consume.
pub struct Worker {
    settings: Arc<Settings>,
    pool: PgPool,
    store: ImageStore,
    assessor: Arc<Assessor>,
    /// `worker.shadow`'s checkpoint.
    shadow: Option<Arc<Assessor>>,
    connected: Arc<AtomicBool>,
    health: JoinHandle<()>,
    stop_health: watch::Sender<bool>,
    /// Turns true on `/drain` or at shutdown: stop consuming.
    stop: watch::Sender<bool>,
    drain: Drain,
    port: u16,
}

impl Worker {
    /// Starts the health server (`/healthz`, `/readyz`, `/metrics`, `POST /drain` on
    /// `application.port`), then loads the model; `/readyz` says `model: loading` meanwhile.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        let pool = db::pool(&settings.database)?;
        let store = ImageStore::new(&settings.s3);
        let connected = Arc::new(AtomicBool::new(false));
        let model_loaded = Arc::new(AtomicBool::new(false));
        let readiness = Readiness::new()
            .with_database(&pool)
            .with_s3(&store)
            .with_flag("rabbitmq", connected.clone(), "not consuming")
            .with_flag("model", model_loaded.clone(), "loading");
        let address = format!("{}:{}", settings.application.host, settings.application.port);
        let listener = TcpListener::bind(&address).await.with_context(|| format!("binding {address}"))?;
        let port = listener.local_addr()?.port();
        let (stop_health, mut health_stopped) = watch::channel(false);
        let (stop, _) = watch::channel(false);
        let drain = Drain::new(stop.clone(), &settings.worker);
        let readiness = readiness.with("consuming", draining_check(stop.subscribe()));
        let liveness = Readiness::new().with("drain", drain.liveness());
        let router = instrument(ops_router_with_liveness(readiness, liveness, metrics::install()).merge(drain.router()));
        let limits = settings.application.limits;
        let health = tokio::spawn(async move {
            let stopped = async move {
                let _ = health_stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = serve(listener, router, stopped, Duration::from_secs(1), limits).await {
                tracing::error!(error = %e, "the health server failed");
            }
        });
        tracing::info!(%address, port, "worker health server listening");

        let worker_settings = settings.worker.clone();
        let (assessor, shadow) = tokio::task::spawn_blocking(move || {
            let assessor = crate::model::load(&worker_settings)?;
            let shadow = crate::model::load_shadow(&worker_settings, &assessor)?;
            anyhow::Ok((assessor, shadow))
        })
        .await
        .context("the model loading task failed")??;
        model_loaded.store(true, Ordering::Relaxed);
        tracing::info!(
            model_version = assessor.model_version(),
            shadow_version = shadow.as_ref().map(|s| s.model_version()),
            device = ?settings.worker.device,
            "model loaded"
        );
        let (assessor, shadow) = (Arc::new(assessor), shadow.map(Arc::new));
        Ok(Self { settings, pool, store, assessor, shadow, connected, health, stop_health, stop, drain, port })
    }

    /// The health server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Consumes until `shutdown` resolves; then stops consuming, finishes the batches in hand
    /// (for up to `worker.max_batch_seconds`; what is left then goes back to the queue when the
    /// connection closes) and returns.
    ///
    /// `POST /drain` (the Kubernetes `preStop` hook, with `worker.drain_token`) stops consuming
    /// early: the batches in hand are finished, `/readyz` turns 503, and the worker idles until
    /// `shutdown`; after `worker.drain_deadline_seconds` of that, `/healthz` turns 503 too.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let worker = &self.settings.worker;
        let (batch_tx, batch_rx) = mpsc::channel(1);
        let (settled_tx, settled_rx) = mpsc::channel(1);
        let stop = self.stop.clone();
        let stopped = stop.subscribe();
        let intake = Intake {
            settings: self.settings.clone(),
            store: self.store.clone(),
            processor: self.assessor.processor().clone(),
            limits: Arc::new(self.settings.ingest.decode_limits()),
            decode_slots: Arc::new(Semaphore::new(worker.decode_concurrency)),
            connected: self.connected.clone(),
        };
        let intake = tokio::spawn(intake.run(batch_tx, stopped));
        let heartbeat = Heartbeat {
            pool: self.pool.clone(),
            name: consumer_name(),
            model_version: self.assessor.model_version().to_string(),
            shadow_version: self.shadow.as_ref().map(|s| s.model_version().to_string()),
        };
        let heartbeat = tokio::spawn(heartbeat.run(stop.subscribe()));
        let shadow = self.shadow.clone().zip(worker.shadow.as_ref().map(|s| s.share));
        let assess = Assess::new(self.pool.clone(), self.assessor.clone(), shadow, worker);
        let assess = tokio::spawn(assess.run(batch_rx, settled_tx));
        let record = Record::new(self.pool.clone(), worker.retry_policy(), self.assessor.model_version().to_string());
        let record = tokio::spawn(record.run(settled_rx));

        tokio::pin!(shutdown);
        let mut drained = stop.subscribe();
        let shut_down = tokio::select! {
            _ = &mut shutdown => true,
            _ = drained.wait_for(|s| *s) => false,
        };
        tracing::info!("stopping: no new jobs; finishing the batches in hand");
        stop.send_replace(true);
        let finish = async {
            let _ = heartbeat.await;
            let consumer = intake.await.ok().flatten();
            let _ = assess.await;
            let _ = record.await;
            consumer
        };
        match tokio::time::timeout(worker.max_batch_time(), finish).await {
            Ok(consumer) => {
                if let Some(consumer) = consumer {
                    consumer.close().await;
                }
                tracing::info!("the batches in hand are settled");
            }
            Err(_) => tracing::warn!(
                seconds = worker.max_batch_seconds,
                "the batches in hand did not finish in time; they go back to the queue"
            ),
        }
        if !shut_down {
            tracing::info!(deadline_seconds = worker.drain_deadline_seconds, "drained; waiting for the shutdown signal");
            self.drain.idle();
            shutdown.await;
        }
        tracing::info!("worker stopped");
        let _ = self.stop_health.send(true);
        let _ = self.health.await;
        self.pool.close().await;
        Ok(())
    }
}

/// A readiness check that fails once the worker stops consuming (drain or shutdown).
fn draining_check(stop: watch::Receiver<bool>) -> impl Fn() -> std::future::Ready<Result<(), &'static str>> + Clone + Send + Sync + 'static {
    move || std::future::ready(if *stop.borrow() { Err("draining") } else { Ok(()) })
}
