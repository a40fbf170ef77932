//! Per-caller rate limits (GCRA, the `governor` crate): one bucket per API key, and one per
//! client address for anonymous calls. A caller over its limit gets 429 with `Retry-After`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::StatusCode;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::Deserialize;
use uuid::Uuid;

use crate::http::ApiError;

/// `application.rate_limit`: requests per second each caller may make on average, and the
/// burst it may make at once.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Bucket {
    Key(Uuid),
    Address(IpAddr),
    /// Anonymous, address unknown (a server not started with connect info).
    Unknown,
}

/// The limiter the services share between their requests.
#[derive(Clone)]
pub struct RateLimiter {
    limiter: Option<Arc<DefaultKeyedRateLimiter<Bucket>>>,
    checks: Arc<AtomicU64>,
}

/// Forget idle buckets every this many checks, so a flood of addresses cannot grow the map.
const SWEEP_EVERY: u64 = 4096;

impl RateLimiter {
    /// `per_second: 0` turns the limit off.
    pub fn new(limit: RateLimit) -> Self {
        let limiter = NonZeroU32::new(limit.per_second).map(|rate| {
            let burst = NonZeroU32::new(limit.burst).unwrap_or(rate);
            Arc::new(DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)))
        });
        Self { limiter, checks: Arc::new(AtomicU64::new(0)) }
    }

    /// Counts one request of the caller (a key, or else its address); 429 when over the limit.
    pub fn check(&self, key: Option<Uuid>, peer: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
        }
        let bucket = match (key, peer) {
            (Some(id), _) => Bucket::Key(id),
            (None, Some(ip)) => Bucket::Address(ip),
            (None, None) => Bucket::Unknown,
        };
        limiter.check_key(&bucket).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let mut error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; retry in {} ms", wait.as_millis().max(1)),
            );
            error.retry_after = Some(wait.as_secs().max(1));
            error
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_caller_has_its_own_bucket() {
        let limiter = RateLimiter::new(RateLimit { per_second: 1, burst: 2 });
        let (a, b) = (Some(Uuid::now_v7()), Some(Uuid::now_v7()));
        assert!(limiter.check(a, None).is_ok());
        assert!(limiter.check(a, None).is_ok());
        let refused = limiter.check(a, None).unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.retry_after.is_some());
        assert!(limiter.check(b, None).is_ok(), "another key is not limited by the first");
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(limiter.check(None, Some(ip)).is_ok());
        assert!(limiter.check(None, Some(ip)).is_ok());
        assert!(limiter.check(None, Some(ip)).is_err());
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limiter = RateLimiter::new(RateLimit { per_second: 0, burst: 0 });
        assert!((0..1000).all(|_| limiter.check(None, None).is_ok()));
    }
}
