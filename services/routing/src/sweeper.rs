//! The sweeper: processes due timers (offer expiry, widening steps,
//! retries, wrap-up) of every registered center, and refreshes the queue
//! and agent gauges. Every replica runs one; the sweep script removes each
//! timer as it handles it and re-checks the state, so replicas sweeping at
//! the same time never act twice — and a crashed replica's reservations
//! expire on whichever replica sweeps next.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics;
use crate::state::{Center, LiveState, StateError};

/// Timers handled per script call; a busy center is swept in batches so
/// one script never blocks Redis for long.
const BATCH: usize = 200;

/// The clock, injected so tests control time.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Sweeps every registered center once at `now`; returns the offers that
/// expired.
pub async fn sweep_once(state: &LiveState, now_ms: i64) -> Result<u64, StateError> {
    let mut expired = 0;
    for id in state.centers().await? {
        if rapport_kit::validate::id("center", &id).is_err() {
            continue;
        }
        let center = Center::new(&id);
        loop {
            let report = state.sweep(&center, now_ms, BATCH).await?;
            expired += report.expired;
            if report.handled < BATCH as u64 {
                break;
            }
        }
    }
    metrics::offer_expiries(expired);
    Ok(expired)
}

async fn refresh_gauges(state: &LiveState, now_ms: i64) -> Result<(), StateError> {
    for id in state.centers().await? {
        if rapport_kit::validate::id("center", &id).is_err() {
            continue;
        }
        let center = Center::new(&id);
        metrics::queue_gauges(&state.stats(&center, now_ms).await?, now_ms);
        metrics::agent_gauges(&state.agent_counts(&center).await?);
    }
    Ok(())
}

/// Runs until `shutdown` resolves: a sweep every `interval`, the gauges
/// every `gauges_every` sweeps. Redis errors are logged and retried.
pub async fn run(
    state: LiveState,
    clock: Clock,
    interval: Duration,
    gauges_every: u32,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut ticks: u32 = 0;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticker.tick() => {}
        }
        let now = clock();
        if let Err(e) = sweep_once(&state, now).await {
            tracing::warn!(error = %e, "sweep failed; retrying on the next tick");
        }
        // The gauges on the first tick, then every `gauges_every`.
        if gauges_every > 0
            && ticks.is_multiple_of(gauges_every)
            && let Err(e) = refresh_gauges(&state, now).await
        {
            tracing::warn!(error = %e, "refreshing the routing gauges failed");
        }
        ticks = ticks.wrapping_add(1);
    }
}
