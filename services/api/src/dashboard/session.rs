//! Signing in and out, and the middleware that turns the session cookie into the caller.
//!
//! - `easel_session`: the session token (HttpOnly, SameSite=Strict, Path=/dashboard, Secure
//!   when `dashboard.secure_cookies` is on or the request came over HTTPS through a proxy).
//! - `easel_sign_in`: a one-off token for the sign-in form itself (double-submit), so another
//!   site cannot sign a browser in with a key of its choosing.
//! - Every form post is checked for the session's CSRF token and for a same-origin `Origin`.

use axum::Form;
use axum::extract::{Query, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use easel_core::auth::session::{self as sessions, tokens_equal};
use easel_core::auth::{self, Caller};
use easel_core::http::ApiError;
use maud::html;
use serde::Deserialize;

use super::layout;
use super::viewer::{PageError, PageResult, Viewer};
use super::ROOT;
use crate::state::AppState;

const SESSION_COOKIE: &str = "easel_session";
const SIGN_IN_COOKIE: &str = "easel_sign_in";
/// How long a sign-in form may stay open.
const SIGN_IN_FORM_SECONDS: i64 = 3600;
/// An API key is 70 characters; anything much longer is not one.
const MAX_KEY_CHARS: usize = 200;

/// Resolves the session cookie of a dashboard request into the caller, when the request has no
/// `Authorization` header (which the `authenticate` middleware, inside this one, resolves; it
/// also applies the key's rate limit to a session's requests). An unknown or dead session is
/// simply no session (the page then asks to sign in).
pub async fn resolve(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let dashboard = request.uri().path() == ROOT || request.uri().path().starts_with("/dashboard/");
    if dashboard
        && !request.headers().contains_key(AUTHORIZATION)
        && let Some(token) = cookie_value(request.headers(), SESSION_COOKIE)
    {
        match sessions::find(&state.pool, &token).await {
            Ok(Some(session)) => {
                request.extensions_mut().insert(Caller::Key(session.key.clone()));
                request.extensions_mut().insert(session);
            }
            Ok(None) => {}
            Err(e) => return PageError::database(e).into_response(),
        }
    }
    next.run(request).await
}

/// The value of the cookie `name`, if the request carries it.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

/// Whether the request came from a page of this origin: its `Origin` header, when it has one,
/// names the host it was sent to, and the browser does not call it cross-site.
fn same_origin(headers: &HeaderMap) -> bool {
    if headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()).is_some_and(|site| site == "cross-site") {
        return false;
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin.to_str().ok().and_then(|o| o.split_once("://")).map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// Checks a form post of a signed-in page: it comes from this origin and carries the session's
/// CSRF token. A caller with an `Authorization` header has no session and cannot post forms.
pub fn verify_form(headers: &HeaderMap, viewer: &Viewer, csrf: &str) -> PageResult<()> {
    let valid = viewer.csrf.as_deref().is_some_and(|expected| tokens_equal(expected, csrf));
    if valid && same_origin(headers) {
        Ok(())
    } else {
        Err(PageError(auth::forbidden("this form is out of date or came from another site: reload the page and try again")))
    }
}

fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.dashboard.secure_cookies
        || headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn set_cookie(cookie: Cookie<'_>) -> (axum::http::HeaderName, HeaderValue) {
    (SET_COOKIE, HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static("")))
}

fn cookie<'a>(name: &'a str, value: String, path: &'a str, secure: bool, max_age_seconds: i64) -> Cookie<'a> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .path(path)
        .max_age(cookie::time::Duration::seconds(max_age_seconds))
        .build()
}

/// Where to go after signing in: a dashboard page, never another site or the sign-in itself.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == ROOT || n.starts_with("/dashboard/") || n.starts_with("/dashboard?"))
                && !n.starts_with("/dashboard/sign-")
                && !n.contains("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control)
                && n.len() <= 2000 =>
        {
            n.to_string()
        }
        _ => ROOT.to_string(),
    }
}

#[derive(Debug, Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
}

/// The sign-in page.
pub async fn sign_in_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<SignInQuery>, axum::extract::rejection::QueryRejection>,
) -> PageResult<Response> {
    let next = safe_next(query.as_ref().ok().and_then(|q| q.next.as_deref()));
    sign_in_form(&state, &headers, &next, StatusCode::OK, None)
}

fn sign_in_form(state: &AppState, headers: &HeaderMap, next: &str, status: StatusCode, error: Option<&str>) -> PageResult<Response> {
    let token = sessions::random_token().map_err(|e| PageError(ApiError::internal(e)))?;
    let body = html! {
        h1 { "Sign in" }
        p { "Paste the API key your organiser gave you. It stays in this browser as a session for "
            (state.dashboard.session_hours) " hours, or until the key is revoked." }
        @if let Some(error) = error { p.error role="alert" { (error) } }
        form.sign-in method="post" action={ (ROOT) "/sign-in" } {
            input type="hidden" name="csrf" value=(token);
            input type="hidden" name="next" value=(next);
            label for="key" { "API key" }
            input #key type="password" name="key" autocomplete="current-password" required autofocus
                maxlength=(MAX_KEY_CHARS) placeholder="easel_…";
            button type="submit" { "Sign in" }
        }
    };
    let secure = secure(state, headers);
    let cookie = cookie(SIGN_IN_COOKIE, token, "/dashboard/sign-in", secure, SIGN_IN_FORM_SECONDS);
    Ok((status, [set_cookie(cookie)], layout::page("Sign in", None, body)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    key: String,
    csrf: String,
    next: Option<String>,
}

/// Signs in: the key must be live; the session gets the key's scopes.
pub async fn sign_in(State(state): State<AppState>, headers: HeaderMap, form: Result<Form<SignInForm>, axum::extract::rejection::FormRejection>) -> PageResult<Response> {
    let Form(form) = form.map_err(PageError::form)?;
    let next = safe_next(form.next.as_deref());
    let form_token = cookie_value(&headers, SIGN_IN_COOKIE);
    if !same_origin(&headers) || !form_token.as_deref().is_some_and(|t| tokens_equal(t, &form.csrf)) {
        return sign_in_form(&state, &headers, &next, StatusCode::FORBIDDEN, Some("The sign-in form expired. Please try again."));
    }
    let presented = form.key.trim();
    let key = if presented.len() > MAX_KEY_CHARS { None } else { auth::live_key(&state.pool, presented).await.map_err(PageError::database)? };
    let Some(key) = key else {
        return sign_in_form(&state, &headers, &next, StatusCode::UNAUTHORIZED, Some("That key is not valid: unknown, revoked, expired or mistyped."));
    };
    let ttl = state.dashboard.session_ttl();
    let (token, _csrf) = sessions::create(&state.pool, key.id, ttl).await.map_err(|e| match e {
        sessions::SessionError::Database(e) => PageError::database(e),
        other => PageError(ApiError::internal(other)),
    })?;
    tracing::info!(key = %key.id, "dashboard sign-in");
    let secure = secure(&state, &headers);
    let session = cookie(SESSION_COOKIE, token, ROOT, secure, i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
    let spent = cookie(SIGN_IN_COOKIE, String::new(), "/dashboard/sign-in", secure, 0);
    Ok((AppendHeaders([set_cookie(session), set_cookie(spent)]), Redirect::to(&next)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct SignOutForm {
    csrf: String,
}

/// Signs out: the session is deleted and the cookie cleared.
pub async fn sign_out(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    form: Result<Form<SignOutForm>, axum::extract::rejection::FormRejection>,
) -> PageResult<Response> {
    let Form(form) = form.map_err(PageError::form)?;
    // Only a session's own CSRF token passes, so the request came with its session cookie.
    verify_form(&headers, &viewer, &form.csrf)?;
    if let Some(token) = cookie_value(&headers, SESSION_COOKIE) {
        sessions::delete(&state.pool, &token).await.map_err(PageError::database)?;
    }
    let cleared = cookie(SESSION_COOKIE, String::new(), ROOT, secure(&state, &headers), 0);
    Ok(([set_cookie(cleared)], Redirect::to(&format!("{ROOT}/sign-in"))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dashboard_pages_are_places_to_return_to() {
        for good in ["/dashboard", "/dashboard/competitions/a?sort=color", "/dashboard?x=1"] {
            assert_eq!(safe_next(Some(good)), good);
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/dashboard",
            "/dashboard//evil.example",
            "/dashboard/\\evil",
            "/dashboardx",
            "/dashboard/sign-in",
            "/dashboard/a\nSet-Cookie: x",
            "/v1/competitions",
        ] {
            assert_eq!(safe_next(Some(bad)), ROOT, "{bad:?}");
        }
        assert_eq!(safe_next(None), ROOT);
    }

    #[test]
    fn a_post_from_another_origin_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("127.0.0.1:8081"));
        assert!(same_origin(&headers), "no Origin header: the CSRF token decides");
        headers.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:8081"));
        assert!(same_origin(&headers));
        headers.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&headers));
        headers.insert(ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&headers));
        headers.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:8081"));
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&headers));
    }
}
