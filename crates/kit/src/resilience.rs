//! Resilience for calls to other services: a circuit breaker on every client
//! channel and retries of idempotent reads within a retry budget.
//!
//! - [`CircuitBreaker`] counts consecutive failures of one dependency
//!   (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, UNKNOWN,
//!   transport errors, and calls abandoned before the dependency answered).
//!   After [`BreakerConfig::failure_threshold`] of them it opens: calls fail
//!   at once with UNAVAILABLE instead of spending the caller's budget on a
//!   dependency that is not answering. After [`BreakerConfig::open_for`] it
//!   half-opens and lets exactly one probe through; the probe's success
//!   closes it, its failure opens it again.
//! - [`BreakerLayer`] puts a breaker in a gRPC channel's tower stack
//!   (`client::channel` does it for every channel). A refused call gets a
//!   synthesized trailers-only UNAVAILABLE response carrying the
//!   `rapport-circuit: open` header, so callers handle it like any
//!   unavailable dependency and [`is_circuit_open`] can tell it apart.
//!   Health checks and reflection pass through untouched: readiness must
//!   see the dependency itself.
//! - [`Retries`] retries an idempotent read ([`Retries::read`]) on
//!   UNAVAILABLE, through `tower::retry`, at most
//!   [`RetryConfig::max_retries`] times with a short jittered backoff, only
//!   while the caller's deadline leaves room, and only while the
//!   [`TpsBudget`] allows (retries are a bounded share of the calls), so a
//!   struggling dependency never sees a retry storm. A call refused by an
//!   open circuit is never retried.
//!
//! The breaker state is the gauge `rapport_client_circuit_open{service}`
//! (how many of this process's breakers towards the service are open or
//! probing), with `rapport_client_circuit_transitions_total{service,state}`,
//! `rapport_client_circuit_rejected_total{service}`,
//! `rapport_client_retries_total{service}` and
//! `rapport_client_retry_budget_exhausted_total{service}`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::retry::budget::{Budget as _, TpsBudget};

/// The metadata key (and response header) marking a call refused by an
/// open circuit.
pub const CIRCUIT_HEADER: &str = "rapport-circuit";

/// When a breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open before one probe is let through.
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    /// Five consecutive failures open the circuit for one second: long
    /// enough that a dead dependency costs a RouteCall nothing for most
    /// calls, short enough that a recovered one is back within a second.
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(1),
        }
    }
}

/// The state of a circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls flow; consecutive failures are counted.
    Closed,
    /// Calls are refused at once.
    Open,
    /// One probe is in flight; other calls are refused until it ends.
    HalfOpen,
}

impl CircuitState {
    fn label(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

impl Inner {
    fn state(&self) -> CircuitState {
        match self {
            Self::Closed { .. } => CircuitState::Closed,
            Self::Open { .. } => CircuitState::Open,
            Self::HalfOpen => CircuitState::HalfOpen,
        }
    }
}

/// A circuit breaker for one dependency, shared by every clone of the
/// channel it guards.
#[derive(Debug)]
pub struct CircuitBreaker {
    service: &'static str,
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    /// A closed breaker for calls to `service` (the metric label).
    pub fn new(service: &'static str, config: BreakerConfig) -> Arc<Self> {
        // Register the gauge so a dashboard shows 0 rather than nothing.
        metrics::gauge!("rapport_client_circuit_open", "service" => service).increment(0.0);
        Arc::new(Self {
            service,
            config: BreakerConfig {
                failure_threshold: config.failure_threshold.max(1),
                ..config
            },
            inner: Mutex::new(Inner::Closed { failures: 0 }),
        })
    }

    /// The dependency's name.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The current state (an open circuit whose time is up still reads
    /// Open until the next call turns it into the probe).
    pub fn state(&self) -> CircuitState {
        self.lock().state()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The state is a plain enum; a panic elsewhere cannot leave it
        // half-written, so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a call, or refuses it (None) while the circuit is open or a
    /// probe is in flight. The permit must be resolved with
    /// [`Permit::success`] or [`Permit::failure`]; dropping it unresolved
    /// counts as a failure (the caller gave up before the dependency
    /// answered).
    pub fn admit(self: &Arc<Self>) -> Option<Permit> {
        let mut inner = self.lock();
        let probe = match &*inner {
            Inner::Closed { .. } => false,
            Inner::Open { until } if Instant::now() < *until => return None,
            Inner::Open { .. } => {
                self.transition(&mut inner, Inner::HalfOpen);
                true
            }
            Inner::HalfOpen => return None,
        };
        Some(Permit {
            breaker: Some(self.clone()),
            probe,
        })
    }

    fn record(&self, probe: bool, ok: bool) {
        let mut inner = self.lock();
        match (&*inner, probe, ok) {
            (Inner::Closed { .. }, false, true) => *inner = Inner::Closed { failures: 0 },
            (Inner::Closed { failures }, false, false) => {
                let failures = failures + 1;
                if failures >= self.config.failure_threshold {
                    let until = Instant::now() + self.config.open_for;
                    tracing::warn!(service = self.service, failures, "circuit opened");
                    self.transition(&mut inner, Inner::Open { until });
                } else {
                    *inner = Inner::Closed { failures };
                }
            }
            (Inner::HalfOpen, true, true) => {
                tracing::info!(service = self.service, "probe succeeded: circuit closed");
                self.transition(&mut inner, Inner::Closed { failures: 0 });
            }
            (Inner::HalfOpen, true, false) => {
                let until = Instant::now() + self.config.open_for;
                tracing::warn!(service = self.service, "probe failed: circuit open again");
                self.transition(&mut inner, Inner::Open { until });
            }
            // Late outcomes of calls admitted before the circuit opened say
            // nothing the breaker has not already concluded.
            _ => {}
        }
    }

    fn transition(&self, inner: &mut Inner, next: Inner) {
        let (before, after) = (inner.state(), next.state());
        *inner = next;
        if before == after {
            return;
        }
        let gauge = metrics::gauge!("rapport_client_circuit_open", "service" => self.service);
        match (before, after) {
            (CircuitState::Closed, _) => gauge.increment(1.0),
            (_, CircuitState::Closed) => gauge.decrement(1.0),
            _ => {}
        }
        metrics::counter!(
            "rapport_client_circuit_transitions_total",
            "service" => self.service,
            "state" => after.label()
        )
        .increment(1);
    }
}

/// Permission to make one call; report its outcome.
#[derive(Debug)]
pub struct Permit {
    breaker: Option<Arc<CircuitBreaker>>,
    probe: bool,
}

impl Permit {
    /// The dependency answered (any status that is not a failure).
    pub fn success(mut self) {
        if let Some(b) = self.breaker.take() {
            b.record(self.probe, true);
        }
    }

    /// The dependency failed or did not answer.
    pub fn failure(mut self) {
        if let Some(b) = self.breaker.take() {
            b.record(self.probe, false);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        // Abandoned: the caller's own deadline (or budget share) ran out
        // while the dependency had not answered, which is what a timeout
        // is. Counting it keeps a hanging dependency from looking healthy
        // because its callers always give up first.
        if let Some(b) = self.breaker.take() {
            b.record(self.probe, false);
        }
    }
}

/// Whether a gRPC status code means the dependency is failing, as opposed
/// to an answer about the request (NOT_FOUND, INVALID_ARGUMENT, ...).
pub fn is_failure_code(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::ResourceExhausted
            | tonic::Code::Internal
            | tonic::Code::Unknown
    )
}

/// Whether this status is a call refused by an open circuit.
pub fn is_circuit_open(status: &tonic::Status) -> bool {
    status.metadata().get(CIRCUIT_HEADER).is_some()
}

/// The tower layer putting a [`CircuitBreaker`] in a channel's stack.
#[derive(Debug, Clone)]
pub struct BreakerLayer {
    breaker: Arc<CircuitBreaker>,
}

impl BreakerLayer {
    /// A layer with a new breaker for `service`.
    pub fn new(service: &'static str, config: BreakerConfig) -> Self {
        Self {
            breaker: CircuitBreaker::new(service, config),
        }
    }

    /// The layer's breaker (shared by every service it wraps).
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }
}

impl<S> tower::Layer<S> for BreakerLayer {
    type Service = Breaker<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Breaker {
            inner,
            breaker: self.breaker.clone(),
        }
    }
}

/// The service produced by [`BreakerLayer`].
#[derive(Debug, Clone)]
pub struct Breaker<S> {
    inner: S,
    breaker: Arc<CircuitBreaker>,
}

impl<S> Breaker<S> {
    /// The breaker guarding this channel.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The gRPC status of a trailers-only response (an error answered at
/// once); a response whose headers carry none is still streaming, and the
/// dependency has answered.
fn header_code(headers: &http::HeaderMap) -> tonic::Code {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32)
        .unwrap_or(tonic::Code::Ok)
}

fn refused(service: &'static str) -> http::Response<tonic::body::Body> {
    let mut status = tonic::Status::unavailable(format!(
        "circuit open: {service} failed repeatedly and is not called until a probe succeeds"
    ));
    status.metadata_mut().insert(
        CIRCUIT_HEADER,
        tonic::metadata::MetadataValue::from_static("open"),
    );
    status.into_http()
}

impl<S, B> tower::Service<http::Request<B>> for Breaker<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        if path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.") {
            return Box::pin(self.inner.call(request));
        }
        let Some(permit) = self.breaker.admit() else {
            metrics::counter!("rapport_client_circuit_rejected_total", "service" => self.breaker.service)
                .increment(1);
            return Box::pin(std::future::ready(Ok(refused(self.breaker.service))));
        };
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            match &result {
                Ok(response) if !is_failure_code(header_code(response.headers())) => {
                    permit.success()
                }
                _ => permit.failure(),
            }
            result
        })
    }
}

/// How idempotent reads are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryConfig {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The first backoff; each further retry doubles it, with jitter.
    pub backoff: Duration,
    /// How long deposits stay in the budget (1 to 60 s).
    pub budget_ttl: Duration,
    /// Retries always allowed per second, whatever the traffic.
    pub min_per_sec: u32,
    /// Retries allowed as a share of calls (0.2 = one retry per five calls).
    pub retry_ratio: f32,
}

impl Default for RetryConfig {
    /// Two retries, 5 ms then 10 ms (jittered): an UNAVAILABLE from a
    /// replica that is restarting or a connection that was reset is
    /// answered again well within a RouteCall's 100 ms profile share.
    /// Retries are at most 20 % of calls on top of 10 per second.
    fn default() -> Self {
        Self {
            max_retries: 2,
            backoff: Duration::from_millis(5),
            budget_ttl: Duration::from_secs(10),
            min_per_sec: 10,
            retry_ratio: 0.2,
        }
    }
}

/// Retries of idempotent reads to one dependency, sharing one budget.
#[derive(Clone)]
pub struct Retries {
    service: &'static str,
    config: RetryConfig,
    budget: Arc<TpsBudget>,
}

impl std::fmt::Debug for Retries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retries")
            .field("service", &self.service)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Retries {
    /// Retries for calls to `service` (the metric label).
    pub fn new(service: &'static str, config: RetryConfig) -> Self {
        let ttl = config
            .budget_ttl
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        let ratio = config.retry_ratio.clamp(0.0, 1000.0);
        Self {
            service,
            config,
            budget: Arc::new(TpsBudget::new(ttl, config.min_per_sec, ratio)),
        }
    }

    /// Makes an idempotent read, retrying it on UNAVAILABLE within the
    /// budget. `call` makes one attempt (typically on a clone of a tonic
    /// client); it is only ever given clones of `request`.
    pub async fn read<Req, Res, F, Fut>(
        &self,
        request: Req,
        call: F,
    ) -> Result<tonic::Response<Res>, tonic::Status>
    where
        Req: Clone,
        F: FnMut(Req) -> Fut + Clone,
        Fut: Future<Output = Result<tonic::Response<Res>, tonic::Status>>,
    {
        use tower::ServiceExt as _;
        // Every call earns the budget a fraction of a retry.
        self.budget.deposit();
        let policy = ReadPolicy {
            retries: self.clone(),
            attempt: 0,
        };
        tower::retry::Retry::new(policy, tower::service_fn(call))
            .oneshot(request)
            .await
    }

    /// Whether this failure is worth another attempt: the dependency said
    /// it could not take the call (or the connection failed), not that the
    /// answer is no, and it is not our own circuit refusing.
    pub fn retryable(status: &tonic::Status) -> bool {
        status.code() == tonic::Code::Unavailable && !is_circuit_open(status)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .config
            .backoff
            .saturating_mul(1 << attempt.saturating_sub(1).min(16));
        // Full jitter between half and the whole backoff, so retries of
        // calls that failed together do not arrive together.
        base / 2 + base.mul_f64(jitter() / 2.0)
    }
}

/// A number in [0, 1) that differs from call to call.
fn jitter() -> f64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    h.write_u128(now.map_or(0, |d| d.as_nanos()));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The `tower::retry` policy of one read.
#[derive(Clone)]
struct ReadPolicy {
    retries: Retries,
    attempt: u32,
}

impl<Req: Clone, Res> tower::retry::Policy<Req, tonic::Response<Res>, tonic::Status>
    for ReadPolicy
{
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _request: &mut Req,
        result: &mut Result<tonic::Response<Res>, tonic::Status>,
    ) -> Option<Self::Future> {
        let status = result.as_ref().err()?;
        if !Retries::retryable(status) || self.attempt >= self.retries.config.max_retries {
            return None;
        }
        let wait = self.retries.backoff(self.attempt + 1);
        // A retry that cannot finish before the caller's deadline only
        // adds load.
        if crate::deadline::remaining().is_some_and(|left| left <= wait * 2) {
            return None;
        }
        if !self.retries.budget.withdraw() {
            metrics::counter!(
                "rapport_client_retry_budget_exhausted_total",
                "service" => self.retries.service
            )
            .increment(1);
            return None;
        }
        self.attempt += 1;
        metrics::counter!("rapport_client_retries_total", "service" => self.retries.service)
            .increment(1);
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, request: &Req) -> Option<Req> {
        Some(request.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn config() -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 3,
            open_for: Duration::from_secs(2),
        }
    }

    fn fail(breaker: &Arc<CircuitBreaker>, n: u32) {
        for _ in 0..n {
            breaker.admit().expect("admitted").failure();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_then_probes_and_closes() {
        let breaker = CircuitBreaker::new("test", config());
        fail(&breaker, 2);
        // A success in between resets the count: failures must be
        // consecutive.
        breaker.admit().expect("admitted").success();
        fail(&breaker, 2);
        assert_eq!(breaker.state(), CircuitState::Closed);
        fail(&breaker, 1);
        assert_eq!(breaker.state(), CircuitState::Open);
        assert!(breaker.admit().is_none(), "open: refused at once");

        tokio::time::advance(Duration::from_millis(1_999)).await;
        assert!(breaker.admit().is_none(), "still open just before open_for");
        tokio::time::advance(Duration::from_millis(1)).await;
        let probe = breaker.admit().expect("one probe after open_for");
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        assert!(breaker.admit().is_none(), "only one probe at a time");
        probe.success();
        assert_eq!(breaker.state(), CircuitState::Closed);
        assert!(breaker.admit().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_again_for_another_period() {
        let breaker = CircuitBreaker::new("test", config());
        fail(&breaker, 3);
        tokio::time::advance(Duration::from_secs(2)).await;
        breaker.admit().expect("probe").failure();
        assert_eq!(breaker.state(), CircuitState::Open);
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert!(
            breaker.admit().is_none(),
            "the new period counts from the probe"
        );
        tokio::time::advance(Duration::from_millis(500)).await;
        breaker.admit().expect("next probe").success();
        assert_eq!(breaker.state(), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn abandoned_calls_count_as_failures_and_free_the_probe() {
        let breaker = CircuitBreaker::new("test", config());
        for _ in 0..3 {
            drop(breaker.admit().expect("admitted"));
        }
        assert_eq!(breaker.state(), CircuitState::Open, "timeouts open it");
        tokio::time::advance(Duration::from_secs(2)).await;
        // A probe whose caller gives up does not leave the breaker stuck
        // half-open.
        drop(breaker.admit().expect("probe"));
        assert_eq!(breaker.state(), CircuitState::Open);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(breaker.admit().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn late_outcomes_do_not_flip_an_open_circuit() {
        let breaker = CircuitBreaker::new("test", config());
        let slow = breaker.admit().expect("admitted before opening");
        fail(&breaker, 3);
        slow.success();
        assert_eq!(breaker.state(), CircuitState::Open);
    }

    /// The gauge of one breaker's service, rendered as Prometheus text.
    fn gauge(handle: &metrics_exporter_prometheus::PrometheusHandle) -> f64 {
        handle
            .render()
            .lines()
            .find(|l| l.starts_with("rapport_client_circuit_open{service=\"gauged\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(f64::NAN)
    }

    #[tokio::test(start_paused = true)]
    async fn the_gauge_follows_the_circuit() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let breaker = metrics::with_local_recorder(&recorder, || {
            let breaker = CircuitBreaker::new("gauged", config());
            fail(&breaker, 3);
            breaker
        });
        assert_eq!(gauge(&handle), 1.0, "open");
        tokio::time::advance(Duration::from_secs(2)).await;
        let probe = metrics::with_local_recorder(&recorder, || breaker.admit().expect("probe"));
        assert_eq!(gauge(&handle), 1.0, "half-open still counts as open");
        metrics::with_local_recorder(&recorder, || probe.success());
        assert_eq!(gauge(&handle), 0.0, "closed");
    }

    /// A tower service answering with the given gRPC status codes in turn
    /// (OK = a normal response), counting calls.
    #[derive(Clone)]
    struct Scripted {
        codes: Arc<Mutex<Vec<tonic::Code>>>,
        calls: Arc<AtomicU32>,
    }

    impl tower::Service<http::Request<()>> for Scripted {
        type Response = http::Response<tonic::body::Body>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let code = self
                .codes
                .lock()
                .expect("codes")
                .pop()
                .unwrap_or(tonic::Code::Ok);
            let response = if code == tonic::Code::Ok {
                http::Response::new(tonic::body::Body::default())
            } else {
                tonic::Status::new(code, "scripted").into_http()
            };
            std::future::ready(Ok(response))
        }
    }

    fn request(path: &str) -> http::Request<()> {
        http::Request::builder()
            .uri(format!("http://dep{path}"))
            .body(())
            .expect("request")
    }

    #[tokio::test(start_paused = true)]
    async fn the_layer_refuses_with_a_marked_unavailable_and_passes_health_through() {
        use tower::{Layer as _, ServiceExt as _};
        let calls = Arc::new(AtomicU32::new(0));
        let inner = Scripted {
            codes: Arc::new(Mutex::new(vec![
                tonic::Code::Unavailable,
                tonic::Code::DeadlineExceeded,
                tonic::Code::Unavailable,
                // NOT_FOUND is an answer, not a failure.
                tonic::Code::NotFound,
            ])),
            calls: calls.clone(),
        };
        let layer = BreakerLayer::new("dep", config());
        let service = layer.layer(inner);
        for _ in 0..4 {
            let _ = service
                .clone()
                .oneshot(request("/rapport.v1.ProfileService/GetProfile"))
                .await;
        }
        assert_eq!(layer.breaker().state(), CircuitState::Open);
        let response = service
            .clone()
            .oneshot(request("/rapport.v1.ProfileService/GetProfile"))
            .await
            .expect("infallible");
        assert_eq!(calls.load(Ordering::SeqCst), 4, "refused without calling");
        let status = tonic::Status::from_header_map(response.headers()).expect("a status");
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(response.headers()[CIRCUIT_HEADER], "open");
        // Health checks still reach the dependency, and do not probe.
        let _ = service
            .clone()
            .oneshot(request("/grpc.health.v1.Health/Check"))
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 5);
        assert_eq!(layer.breaker().state(), CircuitState::Open);
    }

    fn unavailable() -> tonic::Status {
        tonic::Status::unavailable("down")
    }

    #[tokio::test(start_paused = true)]
    async fn reads_are_retried_on_unavailable_only() {
        let retries = Retries::new("dep", RetryConfig::default());
        let attempts = Arc::new(AtomicU32::new(0));
        let a = attempts.clone();
        let answer = retries
            .read(7u32, move |n| {
                let a = a.clone();
                async move {
                    if a.fetch_add(1, Ordering::SeqCst) < 2 {
                        Err(unavailable())
                    } else {
                        Ok(tonic::Response::new(n * 2))
                    }
                }
            })
            .await
            .expect("third attempt answers");
        assert_eq!(answer.into_inner(), 14);
        assert_eq!(attempts.load(Ordering::SeqCst), 3);

        // Not retried: an answer about the request, or an open circuit.
        for status in [
            tonic::Status::not_found("nobody"),
            tonic::Status::deadline_exceeded("slow"),
            {
                let mut s = unavailable();
                s.metadata_mut().insert(
                    CIRCUIT_HEADER,
                    tonic::metadata::MetadataValue::from_static("open"),
                );
                s
            },
        ] {
            let attempts = Arc::new(AtomicU32::new(0));
            let a = attempts.clone();
            let result: Result<tonic::Response<()>, _> = retries
                .read((), move |()| {
                    a.fetch_add(1, Ordering::SeqCst);
                    let status = status.clone();
                    async move { Err(status) }
                })
                .await;
            assert!(result.is_err());
            assert_eq!(attempts.load(Ordering::SeqCst), 1, "no retry");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_at_the_limit_and_at_the_budget() {
        let retries = Retries::new(
            "dep",
            RetryConfig {
                min_per_sec: 3,
                retry_ratio: 0.0,
                budget_ttl: Duration::from_secs(1),
                ..RetryConfig::default()
            },
        );
        let attempts = Arc::new(AtomicU32::new(0));
        let always_down = {
            let a = attempts.clone();
            move |()| {
                a.fetch_add(1, Ordering::SeqCst);
                async { Err::<tonic::Response<()>, _>(unavailable()) }
            }
        };
        // First read: 1 + max_retries attempts.
        assert!(retries.read((), always_down.clone()).await.is_err());
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
        // The budget held 3 retries (min_per_sec × ttl; with a 0 ratio
        // deposits add nothing): the next reads get the one left and then
        // stop retrying.
        let mut total = 0;
        for _ in 0..20 {
            attempts.store(0, Ordering::SeqCst);
            let _ = retries.read((), always_down.clone()).await;
            total += attempts.load(Ordering::SeqCst) - 1;
        }
        assert_eq!(total, 1, "retries bounded by the budget");
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_when_the_deadline_leaves_no_room() {
        let retries = Retries::new("dep", RetryConfig::default());
        let attempts = Arc::new(AtomicU32::new(0));
        let a = attempts.clone();
        let deadline = std::time::Instant::now() + Duration::from_millis(5);
        let result: Result<tonic::Response<()>, _> =
            crate::deadline::scope(Some(deadline), async {
                retries
                    .read((), move |()| {
                        a.fetch_add(1, Ordering::SeqCst);
                        async { Err(unavailable()) }
                    })
                    .await
            })
            .await;
        assert!(result.is_err());
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
    }
}
