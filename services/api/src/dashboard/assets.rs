//! The dashboard's stylesheet and script, compiled into the binary (no CDN, no build step).

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use easel_core::http::ApiError;

use super::viewer::PageError;

const FILES: [(&str, &str, &str); 2] = [
    ("app.css", "text/css; charset=utf-8", include_str!("static/app.css")),
    ("app.js", "text/javascript; charset=utf-8", include_str!("static/app.js")),
];

/// `GET /dashboard/static/{file}`: public (a sign-in page needs its style), and nothing in it
/// is private.
pub async fn serve(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, mime, body)) => ([(CONTENT_TYPE, *mime), (CACHE_CONTROL, "public, max-age=300")], *body).into_response(),
        None => PageError(ApiError::not_found("asset.not_found", "there is no such file")).into_response(),
    }
}
