//! Observation of every RPC, as tower layers: a server span (child of the
//! caller's W3C trace context) or a client span (whose context is injected
//! into the outgoing metadata), and the conventional gRPC metrics
//! (`grpc_server_*` / `grpc_client_*` with `grpc_service`, `grpc_method`,
//! `grpc_code`). The server also returns the trace id in the `x-trace-id`
//! response header.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tracing::Instrument as _;

/// Which side of the call is observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
}

/// A tower layer that observes gRPC calls on one side.
#[derive(Debug, Clone, Copy)]
pub struct ObserveLayer {
    side: Side,
}

impl ObserveLayer {
    pub fn server() -> Self {
        Self { side: Side::Server }
    }
    pub fn client() -> Self {
        Self { side: Side::Client }
    }
}

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observe<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            side: self.side,
        }
    }
}

/// The service produced by [`ObserveLayer`].
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
    side: Side,
}

/// `/rapport.v1.RoutingService/RouteCall` → (`rapport.v1.RoutingService`, `RouteCall`).
fn split_path(path: &str) -> (String, String) {
    let trimmed = path.trim_start_matches('/');
    match trimmed.split_once('/') {
        Some((service, method)) => (service.to_owned(), method.to_owned()),
        None => ("unknown".to_owned(), trimmed.to_owned()),
    }
}

/// Health checks and reflection are infrastructure: counted, not traced,
/// so traces stay about calls.
fn is_infrastructure(service: &str) -> bool {
    service.starts_with("grpc.health.") || service.starts_with("grpc.reflection.")
}

/// The gRPC status code name for metrics. Errors travel in the headers of a
/// trailers-only response; a response whose headers carry no grpc-status
/// is counted as OK (a stream that fails later is not re-counted).
fn code_of(headers: &http::HeaderMap) -> (i32, &'static str) {
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0);
    (code, code_name(code))
}

fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "Canceled",
        2 => "Unknown",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        9 => "FailedPrecondition",
        10 => "Aborted",
        11 => "OutOfRange",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        15 => "DataLoss",
        16 => "Unauthenticated",
        _ => "Unknown",
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for Observe<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Send,
    S::Future: Send + 'static,
    S::Error: 'static,
    B: Send + 'static,
    R: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let (service, method) = split_path(request.uri().path());
        let side = self.side;
        let span = if is_infrastructure(&service) {
            tracing::Span::none()
        } else {
            let name = format!("{service}/{method}");
            let span = match side {
                Side::Server => tracing::info_span!(
                    "grpc.server",
                    otel.name = %name,
                    otel.kind = "server",
                    rpc.system = "grpc",
                    rpc.service = %service,
                    rpc.method = %method,
                    rpc.grpc.status_code = tracing::field::Empty,
                ),
                Side::Client => tracing::info_span!(
                    "grpc.client",
                    otel.name = %name,
                    otel.kind = "client",
                    rpc.system = "grpc",
                    rpc.service = %service,
                    rpc.method = %method,
                    rpc.grpc.status_code = tracing::field::Empty,
                ),
            };
            match side {
                Side::Server => {
                    rapport_telemetry::propagation::set_parent_from(&span, request.headers())
                }
                Side::Client => {
                    rapport_telemetry::propagation::inject_from(&span, request.headers_mut())
                }
            }
            span
        };
        let deadline = match side {
            Side::Server => request
                .headers()
                .get("grpc-timeout")
                .and_then(|v| v.to_str().ok())
                .and_then(crate::deadline::parse_grpc_timeout)
                .map(|t| Instant::now() + t),
            Side::Client => {
                crate::deadline::apply_to(request.headers_mut());
                None
            }
        };
        let trace_id = match side {
            Side::Server => span
                .in_scope(rapport_telemetry::current_trace_id)
                .and_then(|id| http::HeaderValue::from_str(&id).ok()),
            Side::Client => None,
        };

        let prefix = match side {
            Side::Server => "grpc_server",
            Side::Client => "grpc_client",
        };
        metrics::counter!(
            format!("{prefix}_started_total"),
            "grpc_service" => service.clone(),
            "grpc_method" => method.clone()
        )
        .increment(1);
        let started = Instant::now();
        let future =
            crate::deadline::scope(deadline, self.inner.call(request)).instrument(span.clone());
        Box::pin(async move {
            let result = future.await;
            let (code_number, code) = match &result {
                Ok(response) => code_of(response.headers()),
                // A transport failure: the call never got a gRPC status.
                Err(_) => (14, "Unavailable"),
            };
            span.record("rpc.grpc.status_code", code_number);
            metrics::counter!(
                format!("{prefix}_handled_total"),
                "grpc_service" => service.clone(),
                "grpc_method" => method.clone(),
                "grpc_code" => code
            )
            .increment(1);
            metrics::histogram!(
                format!("{prefix}_handling_seconds"),
                "grpc_service" => service,
                "grpc_method" => method
            )
            .record(started.elapsed().as_secs_f64());
            result.map(|mut response| {
                if let Some(id) = trace_id {
                    response.headers_mut().insert("x-trace-id", id);
                }
                response
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            split_path("/rapport.v1.RoutingService/RouteCall"),
            (
                "rapport.v1.RoutingService".to_owned(),
                "RouteCall".to_owned()
            )
        );
        assert_eq!(split_path("/odd").0, "unknown");
    }

    #[test]
    fn codes_come_from_grpc_status() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(code_of(&headers), (0, "OK"));
        headers.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(code_of(&headers), (5, "NotFound"));
        assert!(is_infrastructure("grpc.health.v1.Health"));
        assert!(!is_infrastructure("rapport.v1.ProfileService"));
    }
}
