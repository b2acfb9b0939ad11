//! The admin HTTP port every service exposes beside gRPC: `/metrics`
//! (Prometheus), `/healthz` (the process is alive) and `/readyz` (its
//! dependencies answer). Readiness is also reported on grpc.health.v1, so
//! Kubernetes probes and load balancers see the same thing.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type CheckFn = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// How long one dependency check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// A service's dependency checks and their latest results.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<Check>,
    latest: Arc<RwLock<Vec<CheckResult>>>,
}

/// A check with its latest outcome.
type CheckResult = (Check, Result<(), String>);

/// Whether a failing check makes the service unready, or only degraded
/// (it keeps answering, e.g. routing without classification).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Required,
    Degrades,
}

#[derive(Clone)]
struct Check {
    name: String,
    severity: Severity,
    run: CheckFn,
}

impl Readiness {
    /// Adds a named check (e.g. `redis`, `database`, `profile`).
    pub fn add<F, Fut>(&mut self, name: &str, severity: Severity, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let run: CheckFn = Arc::new(move || Box::pin(check()));
        self.checks.push(Check {
            name: name.to_owned(),
            severity,
            run,
        });
    }

    /// Runs every check once, concurrently, and records the results.
    /// Returns whether all passed.
    pub async fn refresh(&self) -> bool {
        let runs = self.checks.iter().map(|check| {
            let check = check.clone();
            async move {
                let result = match tokio::time::timeout(CHECK_TIMEOUT, (check.run)()).await {
                    Ok(result) => result,
                    Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
                };
                (check, result)
            }
        });
        let results = futures::future::join_all(runs).await;
        let ready = results
            .iter()
            .all(|(c, r)| r.is_ok() || c.severity == Severity::Degrades);
        for (check, result) in &results {
            if let Err(e) = result {
                tracing::warn!(dependency = %check.name, severity = ?check.severity, error = %e, "dependency check failed");
            }
        }
        if let Ok(mut latest) = self.latest.write() {
            *latest = results;
        }
        ready
    }

    /// The latest results as text, one check per line, and whether all
    /// passed. Before the first refresh nothing has failed.
    pub fn report(&self) -> (bool, String) {
        let Ok(latest) = self.latest.read() else {
            return (false, "readiness state unavailable\n".into());
        };
        let mut text = String::new();
        let mut ready = true;
        for (check, result) in latest.iter() {
            let name = &check.name;
            match (result, check.severity) {
                (Ok(()), _) => text.push_str(&format!("{name}: ok\n")),
                (Err(e), Severity::Degrades) => {
                    text.push_str(&format!("{name}: degraded: {e}\n"));
                }
                (Err(e), Severity::Required) => {
                    ready = false;
                    text.push_str(&format!("{name}: {e}\n"));
                }
            }
        }
        (ready, text)
    }
}

async fn metrics() -> String {
    rapport_telemetry::prometheus()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(readiness): State<Readiness>) -> (StatusCode, String) {
    let (ready, report) = readiness.report();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        format!("{}\n{report}", if ready { "ready" } else { "not ready" }),
    )
}

/// Serves the admin endpoints on `listener` until `shutdown` resolves.
pub(crate) async fn serve(
    listener: TcpListener,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(readiness);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds the admin listener.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
