use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::{Router, middleware};
use easel_core::auth::{Authenticator, authenticate};
use easel_core::server::ServerLimits;
use easel_core::http::{Readiness, instrument, ops_router, serve};
use easel_core::storage::ImageStore;
use easel_core::{Settings, db, metrics};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::{dashboard, routes};
use crate::state::AppState;

/// The api service, bound and ready to run.
pub struct Application {
    port: u16,
    listener: TcpListener,
    router: Router,
    shutdown_grace: Duration,
    limits: ServerLimits,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = db::pool(&settings.database)?;
        Self::build_with_pool(settings, pool).await
    }

    pub async fn build_with_pool(settings: Settings, pool: PgPool) -> anyhow::Result<Self> {
        let readiness = Readiness::new().with_database(&pool);
        let authenticator = Authenticator::new(pool.clone(), settings.application.rate_limit);
        let state = AppState {
            pool,
            store: ImageStore::new(&settings.s3),
            image_reads: Arc::new(Semaphore::new(settings.dashboard.image_reads)),
            dashboard: Arc::new(settings.dashboard.clone()),
        };
        let pages = dashboard::router(state.clone());
        let api = routes::router(state.clone())
            .merge(pages)
            .layer(middleware::from_fn_with_state(authenticator, authenticate))
            .layer(middleware::from_fn_with_state(state, dashboard::session::resolve));
        let router = instrument(api.merge(ops_router(readiness, metrics::install())));
        let address = format!("{}:{}", settings.application.host, settings.application.port);
        let listener = TcpListener::bind(&address).await.with_context(|| format!("binding {address}"))?;
        let port = listener.local_addr()?.port();
        tracing::info!(%address, port, "api listening");
        Ok(Self { port, listener, router, shutdown_grace: Duration::from_secs(settings.application.shutdown_grace_seconds),
            limits: settings.application.limits })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` resolves, then lets requests in flight finish within the grace
    /// period (a long export is cut off after it).
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        serve(self.listener, self.router, shutdown, self.shutdown_grace, self.limits).await.context("serving HTTP")?;
        tracing::info!("api stopped");
        Ok(())
    }
}
