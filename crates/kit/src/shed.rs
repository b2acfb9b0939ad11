//! Server-wide load shedding. At most N RPCs run at once across all
//! connections; beyond that a call is answered RESOURCE_EXHAUSTED at once,
//! so callers fail fast and retry elsewhere instead of queueing until every
//! one of them times out. Health checks and reflection are never shed: an
//! overloaded replica must not look dead to its orchestrator.
//!
//! A service may name methods that finish work already admitted (answering
//! an offer, completing a contact, an agent's heartbeat). Those get a second
//! pool of N permits of their own once the shared one is full: shedding
//! them would keep agents reserved for contacts that are over, so overload
//! would shrink the capacity that could end it. New work (a new contact) is
//! shed first.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::Semaphore;
use tonic::body::Body;

/// Sheds calls beyond `limit` concurrent ones.
#[derive(Clone)]
pub struct ShedLayer {
    pools: Arc<Pools>,
}

struct Pools {
    permits: Arc<Semaphore>,
    /// Taken by `finishing` methods when `permits` is exhausted.
    reserve: Arc<Semaphore>,
    /// Full gRPC paths, `/package.Service/Method`.
    finishing: HashSet<String>,
}

impl ShedLayer {
    pub fn new(limit: usize) -> Self {
        Self::with_finishing(limit, HashSet::new())
    }

    /// `finishing` methods (full paths, `/package.Service/Method`) may also
    /// take one of `limit` reserved permits when the shared ones are gone.
    pub fn with_finishing(limit: usize, finishing: HashSet<String>) -> Self {
        let limit = limit.max(1);
        let reserve = if finishing.is_empty() { 0 } else { limit };
        Self {
            pools: Arc::new(Pools {
                permits: Arc::new(Semaphore::new(limit)),
                reserve: Arc::new(Semaphore::new(reserve)),
                finishing,
            }),
        }
    }
}

impl<S> tower::Layer<S> for ShedLayer {
    type Service = Shed<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Shed {
            inner,
            pools: self.pools.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Shed<S> {
    inner: S,
    pools: Arc<Pools>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Shed<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        if path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.") {
            return Box::pin(self.inner.call(request));
        }
        let pools = &self.pools;
        let permit = pools.permits.clone().try_acquire_owned().or_else(|e| {
            if pools.finishing.contains(path) {
                pools.reserve.clone().try_acquire_owned()
            } else {
                Err(e)
            }
        });
        match permit {
            Ok(permit) => {
                let future = self.inner.call(request);
                Box::pin(async move {
                    let response = future.await;
                    drop(permit);
                    response
                })
            }
            Err(_) => {
                metrics::counter!("rapport_server_shed_total").increment(1);
                let response =
                    tonic::Status::resource_exhausted("server overloaded; retry later").into_http();
                Box::pin(std::future::ready(Ok(response)))
            }
        }
    }
}
