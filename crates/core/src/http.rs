//! The HTTP pieces every service shares: JSON errors, extractors whose rejections are JSON
//! errors, `/healthz` `/readyz` `/metrics`, request ids, tracing and request metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::FutureExt;
use futures::future::BoxFuture;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::domain::ValidationError;

/// An error response: `{"error": {"code": "...", "message": "..."}}` with a 4xx or 5xx status.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Seconds, for a 429 or 503 (`Retry-After`).
    pub retry_after: Option<u64>,
}

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable (`image.truncated`, `competition.not_found`, …).
    pub code: String,
    /// For people.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { status, code: code.into(), message: message.into(), retry_after: None }
    }

    pub fn bad_request(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// A fault of ours or of a dependency: logged in full, shown to the client in general terms.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(error = %error, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; the request may be retried")
    }

    /// A dependency is down; the client may retry later.
    pub fn unavailable(error: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %error, "dependency unavailable");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "a dependency is unavailable; retry later")
    }

    /// Maps a database error: transient ones are 503, the rest 500.
    pub fn database(error: sqlx::Error) -> Self {
        if crate::db::is_transient(&error) { Self::unavailable(error) } else { Self::internal(error) }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, format!("invalid.{}", e.field), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message } };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer realm=\"easel\""));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        Self::new(rejection.status(), "invalid.body", rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::new(rejection.status(), "invalid.path", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::new(rejection.status(), "invalid.query", rejection.body_text())
    }
}

/// `axum::Json` whose rejection is an [`ApiError`].
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `axum::extract::Path` whose rejection is an [`ApiError`].
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// `axum::extract::Query` whose rejection is an [`ApiError`].
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// The JSON 404 for paths no route matches.
pub async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such endpoint")
}

/// The JSON 405 for a method a route does not take.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not take that method")
}

type CheckFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The dependencies `/readyz` checks, each with a time limit.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, CheckFn)>,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check named `name` (`database`, `rabbitmq`, `s3`, `model`).
    pub fn with<F, Fut, E>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let check: CheckFn = Arc::new(move || check().map(|r| r.map_err(|e| e.to_string())).boxed());
        self.checks.push((name, check));
        self
    }

    /// `database`: a round trip to Postgres.
    pub fn with_database(self, pool: &sqlx::PgPool) -> Self {
        let pool = pool.clone();
        self.with("database", move || {
            let pool = pool.clone();
            async move { crate::db::check(&pool).await }
        })
    }

    /// `s3`: the bucket answers.
    pub fn with_s3(self, store: &crate::storage::ImageStore) -> Self {
        let store = store.clone();
        self.with("s3", move || {
            let store = store.clone();
            async move { store.check().await }
        })
    }

    /// `name`: passes while `flag` is set, else fails with `down`.
    pub fn with_flag(self, name: &'static str, flag: Arc<std::sync::atomic::AtomicBool>, down: &'static str) -> Self {
        self.with(name, move || {
            let up = flag.load(std::sync::atomic::Ordering::Relaxed);
            std::future::ready(if up { Ok(()) } else { Err(down) })
        })
    }

    /// Runs every check at once; `Ok` if all passed, with each check's outcome.
    pub async fn run(&self) -> (bool, serde_json::Map<String, serde_json::Value>) {
        let outcomes = futures::future::join_all(self.checks.iter().map(|(name, check)| async move {
            let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
            };
            (*name, outcome)
        }))
        .await;
        let ready = outcomes.iter().all(|(_, o)| o.is_ok());
        let checks = outcomes
            .into_iter()
            .map(|(name, outcome)| (name.to_string(), serde_json::Value::String(outcome.err().unwrap_or_else(|| "ok".into()))))
            .collect();
        (ready, checks)
    }
}

#[derive(Clone)]
struct OpsState {
    readiness: Readiness,
    liveness: Readiness,
    metrics: PrometheusHandle,
}

/// `/healthz` (the process is up), `/readyz` (its dependencies answer) and `/metrics`.
pub fn ops_router(readiness: Readiness, metrics: PrometheusHandle) -> Router {
    ops_router_with_liveness(readiness, Readiness::new(), metrics)
}

/// As [`ops_router`], with checks behind `/healthz` too: when one fails, `/healthz` answers 503
/// and Kubernetes restarts the container. Only the process's own state belongs there (the
/// worker's drain deadline); a dependency that is down would restart every pod at once.
pub fn ops_router_with_liveness(readiness: Readiness, liveness: Readiness, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(OpsState { readiness, liveness, metrics })
}

async fn healthz(State(state): State<OpsState>) -> Response {
    let (live, checks) = state.liveness.run().await;
    if live {
        return Json(serde_json::json!({ "status": "ok" })).into_response();
    }
    let body = serde_json::json!({ "status": "unhealthy", "checks": checks });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn readyz(State(state): State<OpsState>) -> Response {
    let (ready, checks) = state.readiness.run().await;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::json!({ "status": if ready { "ready" } else { "not_ready" }, "checks": checks });
    (status, Json(body)).into_response()
}

async fn render_metrics(State(state): State<OpsState>) -> String {
    state.metrics.render()
}

/// Adds request metrics (per matched route), request ids (`x-request-id`, generated when the
/// client sends none, echoed back) and a tracing span per request, and the JSON 404.
pub fn instrument(router: Router) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    router
        .route_layer(middleware::from_fn(track_http))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("http", method = %request.method(), uri = %request.uri(), request_id)
        }))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(middleware::from_fn(close_after_refusal))
}

/// A request refused before its body was read (a bad key, an unknown competition, an upload's
/// bad first field) leaves bytes on the connection that the server will not read, so hyper
/// closes it after the response — and a client that put it back in its pool fails its next
/// request on it (`IncompleteMessage`). Every refusal of a request with a body says
/// `Connection: close`, so the client opens a fresh connection instead.
async fn close_after_refusal(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers.get(header::CONTENT_LENGTH).is_some_and(|length| length.as_bytes() != b"0");
    let mut response = next.run(request).await;
    if has_body && (response.status().is_client_error() || response.status().is_server_error()) {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn track_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let path = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let method = request.method().to_string();
    let response = next.run(request).await;
    let labels = [("method", method), ("path", path), ("status", response.status().as_u16().to_string())];
    metrics::counter!(HTTP_REQUESTS_TOTAL_NAME, &labels).increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION_NAME, &labels).record(started.elapsed().as_secs_f64());
    response
}

const HTTP_REQUESTS_TOTAL_NAME: &str = crate::metrics::HTTP_REQUESTS_TOTAL;
const HTTP_REQUEST_DURATION_NAME: &str = crate::metrics::HTTP_REQUEST_DURATION_SECONDS;

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received");
}

/// Serves `router` until `shutdown` resolves, then lets requests in flight finish for up to
/// `grace` before returning; with the time limits of [`ServerLimits`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    limits: crate::server::ServerLimits,
) -> std::io::Result<()> {
    crate::server::serve(listener, router, shutdown, grace, limits).await
}
