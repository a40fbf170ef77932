//! Dashboard sessions: an API key typed into the sign-in page becomes a random session token in
//! an HttpOnly cookie. The session carries the key's own scopes — the same rules as the API —
//! and dies with the key (revoked or expired) or at its own expiry, whichever comes first. Only
//! the SHA-256 of the token is stored.

use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::{KeyCaller, Scopes};

/// A live session, resolved from its cookie.
#[derive(Debug, Clone)]
pub struct Session {
    pub key: KeyCaller,
    /// The synchronizer token its forms must carry.
    pub csrf: String,
}

/// Compares two tokens in constant time (for the lengths they have).
pub fn tokens_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A fresh random token: 64 hex digits from the operating system's generator (as a key's).
pub fn random_token() -> Result<String, getrandom::Error> {
    super::token::random_hex()
}

/// Whether `raw` has the shape of a token of ours (checked before any database round trip).
pub fn is_token(raw: &str) -> bool {
    super::token::is_random_hex(raw)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the operating system's random generator failed: {0}")]
    Random(getrandom::Error),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A new session for the key `key_id`, valid for `ttl`: the cookie's token and the session's CSRF
/// token. Expired sessions are deleted on the way.
pub async fn create(pool: &PgPool, key_id: Uuid, ttl: Duration) -> Result<(String, String), SessionError> {
    let token = random_token().map_err(SessionError::Random)?;
    let csrf = random_token().map_err(SessionError::Random)?;
    sqlx::query("DELETE FROM dashboard_sessions WHERE expires_at < now()").execute(pool).await?;
    sqlx::query(
        "INSERT INTO dashboard_sessions (token_sha256, key_id, csrf_token, expires_at) \
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
    )
    .bind(&digest(&token)[..])
    .bind(key_id)
    .bind(&csrf)
    .bind(ttl.as_secs_f64())
    .execute(pool)
    .await?;
    Ok((token, csrf))
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    name: String,
    scopes: Vec<String>,
    csrf_token: String,
}

/// The live session of the cookie token `token`: not expired, its key neither revoked nor
/// expired, the key's scopes still valid.
pub async fn find(pool: &PgPool, token: &str) -> Result<Option<Session>, sqlx::Error> {
    if !is_token(token) {
        return Ok(None);
    }
    let row: Option<Row> = sqlx::query_as(
        "SELECT k.id, k.name, k.scopes, s.csrf_token FROM dashboard_sessions s JOIN api_keys k ON k.id = s.key_id \
         WHERE s.token_sha256 = $1 AND s.expires_at > now() \
           AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())",
    )
    .bind(&digest(token)[..])
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|row| {
        let scopes = Scopes::parse(&row.scopes).ok()?;
        Some(Session { key: KeyCaller { id: row.id, name: row.name, scopes }, csrf: row.csrf_token })
    }))
}

/// Ends the session of `token` (signing out); nothing if there is none.
pub async fn delete(pool: &PgPool, token: &str) -> Result<(), sqlx::Error> {
    if !is_token(token) {
        return Ok(());
    }
    sqlx::query("DELETE FROM dashboard_sessions WHERE token_sha256 = $1").bind(&digest(token)[..]).execute(pool).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_compare_exactly() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_ne!(a, b);
        assert!(is_token(&a) && is_token(&b));
        assert!(tokens_equal(&a, &a.clone()));
        assert!(!tokens_equal(&a, &b));
        assert!(!tokens_equal(&a, &a[..63]));
        for bad in ["", "zz", &a.to_uppercase(), &format!("{a}0"), "easel_0123"] {
            assert!(!is_token(bad), "{bad:?}");
        }
    }
}
