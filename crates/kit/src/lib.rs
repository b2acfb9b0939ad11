//! The server kit: everything a Rapport service needs that is not its own
//! domain logic, written once.
//!
//! - [`config::ServerArgs`]: listen address and drain grace, as flags with
//!   `RAPPORT_*` environment fallbacks.
//! - [`server::GrpcServer`]: binds the listener (port 0 works), serves the
//!   service with grpc.health.v1 and server reflection behind one tower
//!   stack, and drains gracefully on shutdown.
//! - [`observe`]: the tower layers that give every RPC a span (chained
//!   across services by W3C trace context) and the `grpc_server_*` /
//!   `grpc_client_*` metrics.
//! - [`admin`]: the admin HTTP port (/metrics, /healthz, /readyz) and the
//!   readiness checks that also drive grpc.health.v1.
//! - [`deadline`]: the caller's deadline (grpc-timeout) carried to every
//!   outgoing call; [`shed`]: server-wide load shedding.
//! - [`security`] and [`authz`]: mTLS (rustls, ring), bearer tokens mapped
//!   to roles, and the per-RPC authorization table.
//! - [`shutdown`]: SIGTERM/SIGINT as a future.
//! - [`client`]: lazily connected channels to other services, each behind
//!   a circuit breaker; [`resilience`]: the breaker and the budgeted
//!   retries of idempotent reads.
//! - [`phone`]: E.164 normalization (the `phonenumber` crate), one
//!   implementation for every service.
//! - [`validate`] and [`status`]: request validation that names the field,
//!   and opaque internal errors that are logged with their cause chain.
//! - [`main`]: the few lines every service binary runs.
//! - `redis` (feature `redis`): the Redis client every service opens,
//!   with `TCP_NODELAY` set.

pub mod admin;
mod alloc;
pub mod authz;
pub mod client;
pub mod config;
pub mod deadline;
pub mod observe;
pub mod phone;
#[cfg(feature = "redis")]
pub mod redis;
pub mod resilience;
pub mod security;
pub mod server;
pub mod shed;
pub mod shutdown;
pub mod status;
pub mod validate;

mod entry;

pub use entry::{Service, main};
