//! `/drain`: how Kubernetes stops a worker consuming before SIGTERM (the `preStop` hook runs
//! `easel-worker drain`, [`request`]), and what keeps a drained worker from idling for ever.
//!
//! Whoever reaches the port could otherwise stop every worker, so `POST /drain` must carry the
//! shared secret `worker.drain_token` (`Authorization: Bearer`); with none configured it
//! refuses every request. A drained worker that settles its batches and then gets no SIGTERM
//! within `worker.drain_deadline_seconds` fails `/healthz`, and Kubernetes restarts it.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use easel_core::Settings;
use easel_core::auth::bearer_token;
use easel_core::configuration::WorkerSettings;
use easel_core::http::ApiError;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The drain switch, the secret that works it, and the clock that runs once it has.
#[derive(Clone)]
pub struct Drain {
    /// Turns true on `/drain` or at shutdown: stop consuming.
    stop: watch::Sender<bool>,
    /// SHA-256 of `worker.drain_token`; `None` refuses every request.
    token: Option<[u8; 32]>,
    /// When the drained worker had settled its batches and began to wait for SIGTERM.
    idle_since: Arc<OnceLock<Instant>>,
    deadline: Duration,
}

impl Drain {
    pub fn new(stop: watch::Sender<bool>, settings: &WorkerSettings) -> Self {
        let token = settings.drain_token().map(|t| digest(t.expose_secret()));
        if token.is_none() {
            tracing::warn!("worker.drain_token is not set: /drain refuses every request");
        }
        Self { stop, token, idle_since: Arc::default(), deadline: settings.drain_deadline() }
    }

    /// `POST /drain`; other methods get the JSON 405.
    pub fn router(&self) -> Router {
        Router::new().route("/drain", post(drain)).with_state(self.clone())
    }

    /// The drained worker has nothing left in hand and waits for SIGTERM: the deadline runs.
    pub fn idle(&self) {
        let _ = self.idle_since.set(Instant::now());
    }

    /// The `/healthz` check: fails once the worker has waited `drain_deadline_seconds` for a
    /// SIGTERM that did not come.
    pub fn liveness(&self) -> impl Fn() -> std::future::Ready<Result<(), String>> + Send + Sync + 'static {
        let (idle_since, deadline) = (self.idle_since.clone(), self.deadline);
        move || {
            std::future::ready(match idle_since.get().map(Instant::elapsed) {
                Some(waited) if waited > deadline => Err(format!(
                    "drained {}s ago and no SIGTERM came (worker.drain_deadline_seconds = {})",
                    waited.as_secs(),
                    deadline.as_secs()
                )),
                _ => Ok(()),
            })
        }
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(expected) = &self.token else {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "drain.disabled", "worker.drain_token is not set: /drain is disabled"));
        };
        let presented = headers.get(AUTHORIZATION).and_then(bearer_token);
        // Digests of the same length, compared in constant time: the answer's timing says
        // nothing about how much of a guess was right.
        if presented.is_some_and(|token| bool::from(digest(token).ct_eq(expected))) {
            return Ok(());
        }
        tracing::warn!("refused a /drain request without the drain token");
        Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "send `Authorization: Bearer <worker.drain_token>`"))
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// `POST /drain`: stop consuming (idempotent); `202 {"status": "draining"}`. The process keeps
/// serving its health endpoints and exits on SIGTERM.
async fn drain(State(drain): State<Drain>, headers: HeaderMap) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    drain.authorize(&headers)?;
    if !drain.stop.send_replace(true) {
        tracing::info!("drain requested");
    }
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "status": "draining" }))))
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `easel-worker drain`: asks the worker on this machine (`application.port`, on loopback when
/// it listens on every address) to drain, with the drain token of these settings. Plain
/// HTTP/1.1: the hook runs in the worker's image, which has no HTTP client. Returns the body
/// of the `202`.
pub async fn request(settings: &Settings) -> anyhow::Result<String> {
    let token = settings.worker.drain_token().context("worker.drain_token is not set (APP_WORKER__DRAIN_TOKEN)")?;
    let host = match settings.application.host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) if ip.is_unspecified() => "127.0.0.1".to_string(),
        Ok(IpAddr::V6(ip)) if ip.is_unspecified() => "::1".to_string(),
        _ => settings.application.host.clone(),
    };
    let port = settings.application.port;
    let exchange = async {
        let mut stream = TcpStream::connect((host.as_str(), port)).await.with_context(|| format!("connecting to {host}:{port}"))?;
        let request = format!(
            "POST /drain HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            token.expose_secret()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        anyhow::Ok(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .with_context(|| format!("no answer from {host}:{port} within {REQUEST_TIMEOUT:?}"))??;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split(' ').nth(1).unwrap_or_default();
    if status != "202" {
        bail!("POST /drain answered {:?}: {body}", head.lines().next().unwrap_or_default());
    }
    Ok(body.to_string())
}
