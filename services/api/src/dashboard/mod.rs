//! The dashboard: server-rendered pages for organisers, jurors and researchers, at `/dashboard`.
//!
//! - Sign-in with an API key makes a session cookie ([`session`]); every page then acts with
//!   the key's own scopes, through the same checks as the JSON API (`easel_core::auth`).
//! - Every form carries the session's CSRF token, and every response a strict
//!   Content-Security-Policy: scripts, styles and images from this origin only, no inline code.
//! - Pages work without JavaScript: charts are SVG drawn on the server ([`charts`]); the one
//!   script (`static/app.js`) only refreshes progress bars and adds keyboard shortcuts.
//! - Images are the thumbnails and previews the pipeline made once per submission (re-encoded
//!   pixels, none of the original's metadata), served with the caller's scopes ([`images`]).

mod assets;
mod charts;
mod images;
mod layout;
mod pages;
pub mod session;
mod viewer;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use crate::state::AppState;

/// Where the dashboard lives.
pub const ROOT: &str = "/dashboard";

/// The largest form body a dashboard page takes.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// What a dashboard response may load: this origin's scripts, styles and images, nothing
/// inline, no frames, forms posting back here only.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's routes. The startup puts two middlewares in front of them and the API:
/// [`session::resolve`] (the session cookie), then `authenticate` (an `Authorization` header, and
/// the rate limit).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/dashboard", get(pages::competitions::page))
        .route("/dashboard/progress.json", get(pages::competitions::progress))
        .route("/dashboard/sign-in", get(session::sign_in_page).post(session::sign_in))
        .route("/dashboard/sign-out", post(session::sign_out))
        .route("/dashboard/static/{file}", get(assets::serve))
        .route("/dashboard/competitions/{slug}", get(pages::leaderboard::page))
        .route("/dashboard/competitions/{slug}/distribution", get(pages::distribution::page))
        .route("/dashboard/competitions/{slug}/audit", get(pages::audit::page))
        .route("/dashboard/competitions/{slug}/entries/{id}", get(pages::entry::page))
        .route("/dashboard/competitions/{slug}/entries/{id}/{file}", get(images::entry_image))
        .route("/dashboard/competitions/{slug}/rounds/{round}", get(pages::round::page))
        .route("/dashboard/competitions/{slug}/rounds/{round}/judge", get(pages::judge::page))
        .route("/dashboard/competitions/{slug}/rounds/{round}/judge/{id}", post(pages::judge::score))
        .route("/dashboard/competitions/{slug}/rounds/{round}/judge/{id}/image.jpg", get(images::juror_image))
        // Forms are small: a sign-in, a score with a note of at most 4000 characters.
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// Headers on every dashboard response: the CSP, no sniffing, no framing, no referrer sent
/// elsewhere, and pages (which hold private data) never cached.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
