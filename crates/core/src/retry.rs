//! Exponential backoff with jitter for transient faults (a restarting Postgres, S3 or broker).

use std::future::Future;
use std::time::{Duration, Instant};

/// Delays of `initial`, doubling up to `max`, for at most `budget` in all.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub budget: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, budget: Duration) -> Self {
        Self { initial, max, budget }
    }

    /// The delay before retry number `attempt` (0-based), with ±25 % jitter so that many
    /// clients of a restarted service do not retry in lock step.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self.initial.saturating_mul(2u32.saturating_pow(attempt.min(20))).min(self.max);
        let jitter = 0.75 + 0.5 * rand::random::<f64>();
        base.mul_f64(jitter)
    }

    /// Runs `op` until it succeeds, fails permanently (`is_transient` false) or the budget is
    /// spent; returns the last error then.
    pub async fn retry<T, E, F, Fut>(&self, what: &str, mut op: F, is_transient: impl Fn(&E) -> bool) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            match op().await {
                Ok(value) => return Ok(value),
                Err(error) if is_transient(&error) && started.elapsed() < self.budget => {
                    let delay = self.delay(attempt);
                    tracing::warn!(%error, attempt, delay_ms = delay.as_millis() as u64, "{what} failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2), Duration::from_secs(10));
        assert!(b.delay(0) <= Duration::from_millis(125));
        assert!(b.delay(0) >= Duration::from_millis(75));
        assert!(b.delay(10) <= Duration::from_millis(2500));
        assert!(b.delay(10) >= Duration::from_millis(1500));
    }
}
