//! Access control: API keys (`Authorization: Bearer <token>`), their scopes, and the checks the
//! routes make. A middleware ([`authenticate`]) turns the header into a [`Caller`] — anonymous,
//! or a live key — and applies the per-caller rate limit; a handler then asks the caller for
//! what it needs ([`Caller::require_admin`], [`competition`]).
//!
//! The answers follow one rule: 401 when there is no valid key, 403 when the key lacks the
//! scope, and 404 — as for a competition that does not exist — when the key holds nothing in the
//! competition it names, so a key learns nothing about competitions that are not its own.

mod rate;
mod scope;
pub mod session;
mod token;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sqlx::PgPool;
use uuid::Uuid;

pub use rate::{RateLimit, RateLimiter};
pub use scope::{Access, MAX_SCOPES, Scope, Scopes, is_key_name_char, parse_key_name};
pub use token::{TokenHash, generate as generate_token, hash_secret, parse as parse_token};

use crate::db;
use crate::db::competitions::Competition;
use crate::domain::CompetitionSlug;
use crate::http::ApiError;

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No `Authorization` header.
    Anonymous,
    Key(KeyCaller),
}

/// A live API key.
#[derive(Debug, Clone)]
pub struct KeyCaller {
    pub id: Uuid,
    pub name: String,
    pub scopes: Scopes,
}

impl Caller {
    /// The key, or 401.
    pub fn key(&self) -> Result<&KeyCaller, ApiError> {
        match self {
            Caller::Key(key) => Ok(key),
            Caller::Anonymous => Err(key_required()),
        }
    }

    /// An `admin` key, or 401/403.
    pub fn require_admin(&self) -> Result<&KeyCaller, ApiError> {
        let key = self.key()?;
        if key.scopes.is_admin() { Ok(key) } else { Err(forbidden("this needs the `admin` scope")) }
    }

    /// Checks the key may do `access` in the competition `slug` (before looking it up): 401
    /// without a key, 404 for a competition the key holds nothing in, 403 without the scope.
    pub fn require(&self, slug: &str, access: Access) -> Result<&KeyCaller, ApiError> {
        self.require_or_hide(slug, access, || competition_not_found(slug))
    }

    /// [`Caller::require`] for something that belongs to the competition `slug` (a submission):
    /// a key that holds nothing in the competition gets `unknown`, the 404 of a thing that does
    /// not exist.
    pub fn require_or_hide(&self, slug: &str, access: Access, unknown: impl FnOnce() -> ApiError) -> Result<&KeyCaller, ApiError> {
        let key = self.key()?;
        if !key.scopes.knows(slug) {
            return Err(unknown());
        }
        if !key.scopes.allows(slug, access) {
            return Err(forbidden(&format!("this needs the `competition:{slug}:{}` scope", access.as_str())));
        }
        Ok(key)
    }

    pub fn key_id(&self) -> Option<Uuid> {
        match self {
            Caller::Key(key) => Some(key.id),
            Caller::Anonymous => None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::internal("a route that reads the caller is not behind the authenticate middleware"))
    }
}

/// What a caller may see of a competition's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// A key with the scope: everything.
    Full,
    /// Anonymous, on a competition with `public_results`: scores and ranks, never descriptions,
    /// critiques or files.
    Public,
}

/// The competition `slug` if the caller may do `access` in it. With `public_ok`, an anonymous
/// caller may read a competition that has `public_results` (and gets [`Visibility::Public`]);
/// otherwise, and for a competition that does not exist, it gets the same 401.
pub async fn competition(
    pool: &PgPool,
    caller: &Caller,
    slug: &str,
    access: Access,
    public_ok: bool,
) -> Result<(Competition, Visibility), ApiError> {
    if matches!(caller, Caller::Anonymous) && public_ok {
        if let Ok(parsed) = CompetitionSlug::parse(slug)
            && let Some(competition) = db::competitions::find_by_slug(pool, &parsed).await.map_err(ApiError::database)?
            && competition.public_results
        {
            return Ok((competition, Visibility::Public));
        }
        return Err(key_required());
    }
    caller.require(slug, access)?;
    let parsed = CompetitionSlug::parse(slug).map_err(|_| competition_not_found(slug))?;
    let competition =
        db::competitions::find_by_slug(pool, &parsed).await.map_err(ApiError::database)?.ok_or_else(|| competition_not_found(slug))?;
    Ok((competition, Visibility::Full))
}

/// The 404 for a competition that does not exist, or that the caller may not know of.
pub fn competition_not_found(slug: &str) -> ApiError {
    ApiError::not_found("competition.not_found", format!("there is no competition {slug:?}"))
}

/// The 401 for a call without a key.
fn key_required() -> ApiError {
    unauthorized("auth.required", "this endpoint needs an API key: `Authorization: Bearer <token>`")
}

fn unauthorized(code: &str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

pub fn forbidden(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "auth.forbidden", message)
}

/// Adds the `bearer` security scheme (an API key as `Authorization: Bearer <token>`) to an
/// OpenAPI document: `#[openapi(modifiers(&BearerSecurity))]`.
pub struct BearerSecurity;

impl utoipa::Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An Easel API key: `easel_` and 64 hex digits"))
                    .build(),
            ),
        );
    }
}

/// What the [`authenticate`] middleware needs.
#[derive(Clone)]
pub struct Authenticator {
    pool: PgPool,
    limiter: RateLimiter,
}

impl Authenticator {
    pub fn new(pool: PgPool, limit: RateLimit) -> Self {
        Self { pool, limiter: RateLimiter::new(limit) }
    }
}

/// Resolves the `Authorization` header into a [`Caller`] for the handlers, and applies the rate
/// limit (per key, or per client address for anonymous calls). A header that is there but not a
/// live key is a 401 whatever the route: a client with a revoked key learns so at once.
///
/// A request without the header keeps a key an outer layer already resolved (the api's
/// dashboard session), so that its rate limit is the key's too.
pub async fn authenticate(State(auth): State<Authenticator>, mut request: Request, next: Next) -> Response {
    let header = request.headers().get(AUTHORIZATION).cloned();
    let caller = match (header, request.extensions().get::<Caller>()) {
        (None, Some(Caller::Key(key))) => Caller::Key(key.clone()),
        (header, _) => match resolve(&auth.pool, header).await {
            Ok(caller) => caller,
            Err(error) => return error.into_response(),
        },
    };
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if let Err(error) = auth.limiter.check(caller.key_id(), peer) {
        return error.into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case); `None` for
/// any other header value.
pub fn bearer_token(header: &axum::http::HeaderValue) -> Option<&str> {
    header
        .to_str()
        .ok()
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

async fn resolve(pool: &PgPool, header: Option<axum::http::HeaderValue>) -> Result<Caller, ApiError> {
    let Some(header) = header else {
        return Ok(Caller::Anonymous);
    };
    let presented =
        bearer_token(&header).ok_or_else(|| unauthorized("auth.invalid_header", "send `Authorization: Bearer <token>`"))?;
    let key = live_key(pool, presented).await.map_err(ApiError::database)?;
    key.map(Caller::Key)
        .ok_or_else(|| unauthorized("auth.invalid_key", "the API key is not valid (unknown, revoked, expired or malformed)"))
}

/// The live key whose token is `presented`: `None` when it is malformed, unknown, revoked,
/// expired, or its stored scopes no longer parse (refused rather than half-trusted).
pub async fn live_key(pool: &PgPool, presented: &str) -> Result<Option<KeyCaller>, sqlx::Error> {
    let Some(hash) = token::parse(presented) else {
        return Ok(None);
    };
    let Some(key) = db::keys::find_active(pool, &hash).await? else {
        return Ok(None);
    };
    if !hash.matches(&key.token_sha256) {
        return Ok(None);
    }
    let Ok(scopes) = Scopes::parse(&key.scopes) else {
        return Ok(None);
    };
    if key.stale_last_use
        && let Err(e) = db::keys::touch(pool, key.id).await
    {
        tracing::warn!(error = %e, key = %key.id, "cannot record the key's last use");
    }
    Ok(Some(KeyCaller { id: key.id, name: key.name, scopes }))
}
