//! API tokens: `easel_` and 64 hex digits (256 random bits from the operating system). Only the
//! SHA-256 of a token is stored; a token is shown once, when it is made.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const PREFIX: &str = "easel_";
const RANDOM_BYTES: usize = 32;

/// The stored form of a token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Compares in constant time (a defence in depth: the lookup is by hash already).
    pub fn matches(&self, stored: &[u8]) -> bool {
        stored.len() == 32 && bool::from(self.0.ct_eq(stored))
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

/// A new token: the secret to show once, and the hash to store.
pub fn generate() -> Result<(SecretString, TokenHash), getrandom::Error> {
    let token = format!("{PREFIX}{}", random_hex()?);
    let hash = hash(&token);
    Ok((SecretString::from(token), hash))
}

/// The hash of a presented token, or `None` if it cannot be one of ours (checked before any
/// database round trip).
pub fn parse(presented: &str) -> Option<TokenHash> {
    is_random_hex(presented.strip_prefix(PREFIX)?).then(|| hash(presented))
}

/// 256 random bits from the operating system, as 64 lower-case hex digits: the secret part of a
/// key, and a dashboard session's token.
pub(crate) fn random_hex() -> Result<String, getrandom::Error> {
    let mut random = [0u8; RANDOM_BYTES];
    getrandom::fill(&mut random)?;
    Ok(hex::encode(random))
}

/// Whether `raw` has the shape [`random_hex`] gives.
pub(crate) fn is_random_hex(raw: &str) -> bool {
    raw.len() == RANDOM_BYTES * 2 && raw.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn hash(token: &str) -> TokenHash {
    TokenHash(Sha256::digest(token.as_bytes()).into())
}

/// The hash of a token held as a secret.
pub fn hash_secret(token: &SecretString) -> Option<TokenHash> {
    parse(token.expose_secret())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_to_their_hash_and_differ() {
        let (a, hash_a) = generate().unwrap();
        let (b, _) = generate().unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(a.expose_secret().len(), PREFIX.len() + 64);
        assert_eq!(hash_secret(&a), Some(hash_a));
        assert!(hash_a.matches(&hash_a.0));
        assert!(!hash_a.matches(&[0; 32]));
        assert!(!hash_a.matches(&hash_a.0[..31]));
    }

    #[test]
    fn malformed_tokens_are_refused_before_a_lookup() {
        let (good, _) = generate().unwrap();
        let good = good.expose_secret();
        for bad in [
            "",
            "easel_",
            &good[..good.len() - 1],
            &format!("{good}0"),
            &good.to_uppercase(),
            &good.replace("easel_", "other_"),
            "easel_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }
}
