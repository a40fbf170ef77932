//! Who is looking at a page, and how a page fails.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use easel_core::auth::session::Session;
use easel_core::auth::{Caller, KeyCaller};
use easel_core::http::ApiError;

use super::layout;

/// The signed-in key looking at a page. A page asked for without a session (or an API key)
/// redirects to the sign-in page, which comes back here after.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub caller: Caller,
    pub key: KeyCaller,
    /// The session's CSRF token; `None` for a caller with an `Authorization` header, who may
    /// read pages but not post forms.
    pub csrf: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let caller = parts.extensions.get::<Caller>().cloned().unwrap_or(Caller::Anonymous);
        let Caller::Key(key) = &caller else {
            let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or(super::ROOT);
            return Err(sign_in_redirect(next));
        };
        let key = key.clone();
        let csrf = parts.extensions.get::<Session>().map(|s| s.csrf.clone());
        Ok(Self { caller, key, csrf })
    }
}

/// A 303 to the sign-in page that returns to `next` afterwards.
pub fn sign_in_redirect(next: &str) -> Response {
    let query = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
    Redirect::to(&format!("{}/sign-in?{query}", super::ROOT)).into_response()
}

/// A page that could not be shown: the API's error, as a page with the same status.
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl PageError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self(ApiError::bad_request("invalid.query", message))
    }

    /// A query string that could not be read (400).
    pub fn query(rejection: axum::extract::rejection::QueryRejection) -> Self {
        Self(ApiError::new(rejection.status(), "invalid.query", rejection.body_text()))
    }

    /// A form that could not be read: too large (413), not a form (415), or incomplete (400/422).
    pub fn form(rejection: axum::extract::rejection::FormRejection) -> Self {
        Self(ApiError::new(rejection.status(), "invalid.form", rejection.body_text()))
    }

    pub fn database(error: sqlx::Error) -> Self {
        Self(ApiError::database(error))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let ApiError { status, message, code, .. } = self.0;
        let title = match status {
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            s if s.is_client_error() => "Cannot show this",
            _ => "Something went wrong",
        };
        let body = maud::html! {
            h1 { (title) }
            p.error { (message) }
            p.muted { "Code: " code { (code) } }
            p { a href=(super::ROOT) { "Back to the competitions" } }
        };
        (status, layout::page(title, None, body)).into_response()
    }
}

pub type PageResult<T> = Result<T, PageError>;
