//! The HTTP server loop every service runs: hyper with time limits on each phase of a request,
//! so that no client can hold a connection forever (slowloris), and graceful shutdown.
//!
//! `axum::serve` sets no header-read timeout; this loop is the same thing with hyper-util's
//! builder configured: headers must arrive within `header_read_timeout`, a request body may not
//! pause longer than `body_idle_timeout` between frames, and a handler (body reading included)
//! must answer within `request_timeout` (408 otherwise).

use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use serde::Deserialize;
use tower::ServiceExt;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

/// `application.*` time limits on one request.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct ServerLimits {
    /// The request line and headers must arrive within this.
    pub header_read_timeout_seconds: u64,
    /// A request body may not pause longer than this between two chunks.
    pub body_idle_timeout_seconds: u64,
    /// A handler, reading the body included, must answer within this (408 otherwise). Streamed
    /// response bodies (exports) are not limited by it.
    pub request_timeout_seconds: u64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self { header_read_timeout_seconds: 10, body_idle_timeout_seconds: 30, request_timeout_seconds: 300 }
    }
}

/// Serves `router` until `shutdown` resolves, then lets requests in flight finish for up to
/// `grace` before returning. Handlers see the client's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    limits: ServerLimits,
) -> std::io::Result<()> {
    let router = router
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(limits.request_timeout_seconds)))
        .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(limits.body_idle_timeout_seconds)));
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(limits.header_read_timeout_seconds));
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(Duration::from_secs(30)).keep_alive_timeout(Duration::from_secs(20));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: axum::http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => tracing::warn!("requests still running after the grace period; stopping anyway"),
    }
    Ok(())
}
