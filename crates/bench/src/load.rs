//! The load generator: one `Op` driven open-loop (a fixed arrival rate,
//! latency measured from each request's *scheduled* start, so a slow server
//! cannot slow the arrivals down — no coordinated omission) or closed-loop
//! (`n` requests in flight: 1 for the unloaded latency, many for the
//! saturated throughput). Latencies go into an HDR histogram in
//! microseconds; only requests scheduled after the warm-up count.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Work to run after the measured part of a request (e.g. accepting and
/// completing the contact RouteCall reserved). Not timed, but it holds the
/// request's in-flight slot.
pub type FollowUp = BoxFuture<'static, ()>;

/// One kind of request. `call(i)` is timed; its follow-up is not.
pub trait Op: Send + Sync + 'static {
    fn call(&self, i: u64) -> BoxFuture<'static, Result<Option<FollowUp>, tonic::Code>>;
}

/// How to drive an op.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Mode {
    /// `rate` requests/s on a fixed schedule, at most `max_in_flight` open.
    Open { rate: f64, max_in_flight: usize },
    /// `in_flight` workers, each issuing its next request when the last ends.
    Closed { in_flight: usize },
}

#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub warmup: Duration,
    pub duration: Duration,
}

/// When request `i` is due, relative to the start, at `rate` per second.
pub fn scheduled_offset(i: u64, rate: f64) -> Duration {
    assert!(rate > 0.0, "rate must be positive");
    Duration::from_nanos(((i as f64) * 1e9 / rate).round() as u64)
}

/// How many requests an open-loop run of `total` at `rate` schedules.
pub fn scheduled_count(total: Duration, rate: f64) -> u64 {
    (total.as_secs_f64() * rate).ceil() as u64
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub name: String,
    #[serde(flatten)]
    pub mode: Mode,
    /// Requests counted (scheduled or started after the warm-up).
    pub count: u64,
    pub ok: u64,
    /// Failed requests by gRPC code.
    pub errors: BTreeMap<String, u64>,
    /// Successful requests per second over the measured window.
    pub rps: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
    pub measured_s: f64,
    /// How long failed requests took to fail (p99), e.g. how fast excess
    /// load is refused; 0 without failures.
    pub error_p99_us: u64,
}

struct Recorder {
    hist: Histogram<u64>,
    errors_hist: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
}

impl Recorder {
    fn new() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds"),
            errors_hist: Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds"),
            ok: 0,
            errors: BTreeMap::new(),
        }
    }

    fn record(&mut self, latency: Duration, result: &Result<Option<FollowUp>, tonic::Code>) {
        let us = (latency.as_micros() as u64).clamp(1, 120_000_000);
        match result {
            Ok(_) => {
                self.ok += 1;
                self.hist.saturating_record(us);
            }
            Err(code) => {
                *self.errors.entry(format!("{code:?}")).or_default() += 1;
                self.errors_hist.saturating_record(us);
            }
        }
    }

    fn stats(&self, name: &str, mode: Mode, measured: Duration) -> Stats {
        let count = self.ok + self.errors.values().sum::<u64>();
        let q = |q: f64| {
            if self.hist.is_empty() {
                0
            } else {
                self.hist.value_at_quantile(q)
            }
        };
        Stats {
            name: name.to_owned(),
            mode,
            count,
            ok: self.ok,
            errors: self.errors.clone(),
            rps: self.ok as f64 / measured.as_secs_f64().max(1e-9),
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: self.hist.max(),
            mean_us: self.hist.mean(),
            measured_s: measured.as_secs_f64(),
            error_p99_us: if self.errors_hist.is_empty() {
                0
            } else {
                self.errors_hist.value_at_quantile(0.99)
            },
        }
    }
}

/// The arrivals of an open-loop run: request `i` with the instant it is
/// due, each sent when it falls due. A dedicated thread keeps the schedule
/// because tokio's timer has millisecond granularity and fires late by up
/// to a millisecond, and latency counts from `due`: paced by the runtime's
/// timer, every open-loop figure carried up to 1 ms of the generator's own
/// lateness (an echo p50 of 1.1 ms at 300/s against 0.09 ms unloaded). A
/// thread sleep on Linux wakes within tens of microseconds.
fn pace(
    t0: Instant,
    rate: f64,
    total: u64,
) -> tokio::sync::mpsc::UnboundedReceiver<(u64, Instant)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let t0 = t0.into_std();
    std::thread::Builder::new()
        .name("bench-pacer".into())
        .spawn(move || {
            for i in 0..total {
                let due = t0 + scheduled_offset(i, rate);
                if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
                    std::thread::sleep(wait);
                }
                if tx.send((i, Instant::from_std(due))).is_err() {
                    return;
                }
            }
        })
        .expect("failed to start the pacer thread");
    rx
}

/// Runs `op` in `mode` for warm-up + duration and returns what the measured
/// part saw. Follow-ups still running at the end are awaited (bounded by the
/// in-flight limit) but do not count.
pub async fn run(name: &str, op: Arc<dyn Op>, mode: Mode, timing: Timing) -> Stats {
    let rec = Arc::new(Mutex::new(Recorder::new()));
    let t0 = Instant::now();
    let measure_from = t0 + timing.warmup;
    let end = measure_from + timing.duration;
    match mode {
        Mode::Open {
            rate,
            max_in_flight,
        } => {
            let slots = Arc::new(Semaphore::new(max_in_flight.max(1)));
            let total = scheduled_count(timing.warmup + timing.duration, rate);
            let mut arrivals = pace(t0, rate, total);
            let mut tasks = tokio::task::JoinSet::new();
            while let Some((i, due)) = arrivals.recv().await {
                // Waiting for a slot delays the send, never the schedule: the
                // wait is part of the latency measured from `due`.
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                let (op, rec) = (op.clone(), rec.clone());
                tasks.spawn(async move {
                    let result = op.call(i).await;
                    let latency = due.elapsed();
                    if due >= measure_from {
                        rec.lock().expect("recorder").record(latency, &result);
                    }
                    if let Ok(Some(follow)) = result {
                        follow.await;
                    }
                    drop(slot);
                });
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        }
        Mode::Closed { in_flight } => {
            let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let mut workers = tokio::task::JoinSet::new();
            for _ in 0..in_flight.max(1) {
                let (op, rec, next) = (op.clone(), rec.clone(), next.clone());
                workers.spawn(async move {
                    while Instant::now() < end {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let start = Instant::now();
                        let result = op.call(i).await;
                        let latency = start.elapsed();
                        if start >= measure_from && start < end {
                            rec.lock().expect("recorder").record(latency, &result);
                        }
                        if let Ok(Some(follow)) = result {
                            follow.await;
                        }
                    }
                });
            }
            while workers.join_next().await.is_some() {}
        }
    }
    rec.lock()
        .expect("recorder")
        .stats(name, mode, timing.duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_scheduled_evenly_from_the_start() {
        assert_eq!(scheduled_offset(0, 1000.0), Duration::ZERO);
        assert_eq!(scheduled_offset(1, 1000.0), Duration::from_millis(1));
        assert_eq!(scheduled_offset(1500, 1000.0), Duration::from_millis(1500));
        assert_eq!(scheduled_offset(3, 3.0), Duration::from_secs(1));
        // Fractional rates.
        assert_eq!(scheduled_offset(1, 0.5), Duration::from_secs(2));
        // The schedule never drifts: request i is due at exactly i/rate.
        let rate = 7_777.0;
        let i = 1_000_000;
        let expect = i as f64 / rate;
        assert!((scheduled_offset(i, rate).as_secs_f64() - expect).abs() < 1e-6);
    }

    #[test]
    fn the_run_schedules_rate_times_duration_requests() {
        assert_eq!(scheduled_count(Duration::from_secs(10), 100.0), 1000);
        assert_eq!(scheduled_count(Duration::from_millis(1500), 3.0), 5);
        assert_eq!(scheduled_count(Duration::ZERO, 100.0), 0);
    }

    #[test]
    fn latency_counts_from_the_schedule_and_errors_by_code() {
        let mut rec = Recorder::new();
        for ms in 1..=100 {
            rec.record(Duration::from_millis(ms), &Ok(None));
        }
        rec.record(Duration::from_millis(1), &Err(tonic::Code::Unavailable));
        rec.record(Duration::from_millis(1), &Err(tonic::Code::Unavailable));
        let s = rec.stats("x", Mode::Closed { in_flight: 1 }, Duration::from_secs(10));
        assert_eq!(s.count, 102);
        assert_eq!(s.ok, 100);
        assert_eq!(s.errors.get("Unavailable"), Some(&2));
        assert!((s.rps - 10.0).abs() < 1e-9);
        // 3 significant digits.
        assert!((49_900..=50_100).contains(&s.p50_us), "{}", s.p50_us);
        assert!((98_900..=99_100).contains(&s.p99_us), "{}", s.p99_us);
        assert!((99_900..=100_100).contains(&s.max_us), "{}", s.max_us);
        // Failures are timed apart from successes.
        assert!(
            (990..=1_010).contains(&s.error_p99_us),
            "{}",
            s.error_p99_us
        );
    }
}
