//! The scheduler's clock, injected so tests control due times, calling
//! windows and lease expiry.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

/// Now, as the scheduler sees it.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Arc::new(Utc::now))
    }

    /// A clock that reads `f`.
    pub fn from_fn(f: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }

    pub fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

/// A clock tests set and advance by hand.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn at(t: DateTime<Utc>) -> Self {
        Self(Arc::new(AtomicI64::new(t.timestamp_millis())))
    }

    pub fn set(&self, t: DateTime<Utc>) {
        self.0.store(t.timestamp_millis(), Ordering::SeqCst);
    }

    pub fn advance(&self, by: chrono::Duration) {
        self.0.fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }

    pub fn clock(&self) -> Clock {
        let ms = self.0.clone();
        Clock::from_fn(move || {
            DateTime::from_timestamp_millis(ms.load(Ordering::SeqCst)).unwrap_or_default()
        })
    }
}
