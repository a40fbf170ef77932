//! The loop ingest's background passes share (the stuck-job sweeper, the orphan sweep).

use std::time::Duration;

use tokio::sync::watch;

/// Runs `pass` every `interval` (the first at once; a slow pass delays the next rather than
/// stacking them) until `stop` turns true.
pub async fn every<F, Fut>(interval: Duration, mut stop: watch::Receiver<bool>, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        pass().await;
    }
}
