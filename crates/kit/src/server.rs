//! Hosting a gRPC service: one listener, one tower stack, health, reflection
//! and graceful shutdown, identical for every Rapport service.

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use crate::admin::Readiness;
pub use crate::admin::Severity;
use crate::authz::AuthLayer;
use crate::config::ServerArgs;
use crate::observe::ObserveLayer;
use crate::security::Security;
use crate::shed::ShedLayer;
use anyhow::Context as _;
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// The grpc.health.v1 service name for liveness probes: SERVING while the
/// process runs, whatever its dependencies say.
pub const LIVENESS: &str = "liveness";

/// How often dependency checks refresh readiness.
const READINESS_INTERVAL: Duration = Duration::from_secs(2);

/// A bound gRPC server that has not started serving yet.
///
/// Binding happens in [`GrpcServer::bind`] so that `App::build` fails early
/// on a taken port and callers can read [`GrpcServer::local_addr`] before
/// serving (port 0 works).
pub struct GrpcServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    admin_listener: TcpListener,
    admin_addr: SocketAddr,
    readiness: Readiness,
    routes: RoutesBuilder,
    services: Vec<&'static str>,
    health: HealthReporter,
    grace: Duration,
    max_concurrent: usize,
    max_connection_age: Option<Duration>,
    security: Security,
    /// Methods that finish admitted work, with reserved permits (see
    /// `shed`).
    finishing: HashSet<String>,
}

impl GrpcServer {
    /// Binds the listener (on `default_port` unless an address is
    /// configured) and prepares health and reflection.
    pub async fn bind(args: &ServerArgs, default_port: u16) -> anyhow::Result<Self> {
        let security = Security::from_args(args).context("invalid security configuration")?;
        let addr = args.listen_addr(default_port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("failed to listen on {addr}"))?;
        let local_addr = listener
            .local_addr()
            .context("failed to read the bound address")?;
        let admin = args.admin_addr(default_port);
        let admin_listener = crate::admin::bind(admin)
            .await
            .with_context(|| format!("failed to listen on {admin} (admin port)"))?;
        let admin_addr = admin_listener
            .local_addr()
            .context("failed to read the bound admin address")?;
        let (health, health_service) = tonic_health::server::health_reporter();
        let mut routes = RoutesBuilder::default();
        routes.add_service(health_service);
        Ok(Self {
            listener,
            local_addr,
            admin_listener,
            admin_addr,
            readiness: Readiness::default(),
            routes,
            services: Vec::new(),
            health,
            grace: args.shutdown_grace,
            max_concurrent: args.max_concurrent_requests,
            max_connection_age: args.max_connection_age,
            security,
            finishing: HashSet::new(),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound admin HTTP address (/metrics, /healthz, /readyz).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Adds a dependency check. While a `Required` check fails, the
    /// service reports NOT_SERVING on grpc.health.v1 and 503 on /readyz (it
    /// keeps answering requests it can); a failing `Degrades` check is only
    /// reported on /readyz.
    pub fn readiness_check<F, Fut>(mut self, name: &str, severity: Severity, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.readiness.add(name, severity, check);
        self
    }

    /// Marks methods of `service` (its gRPC name, e.g.
    /// `rapport.v1.RoutingService`) as finishing work already admitted:
    /// under overload they are shed only after a second `--max-concurrent-
    /// requests` of their own is also in use, so ending contacts and keeping
    /// agents logged in never competes with new contacts for permits.
    pub fn finishing_methods(mut self, service: &str, methods: &[&str]) -> Self {
        self.finishing
            .extend(methods.iter().map(|m| format!("/{service}/{m}")));
        self
    }

    /// Adds a gRPC service. It is reported SERVING once the server starts
    /// and listed by reflection.
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.routes.add_service(service);
        self.services.push(S::NAME);
        self
    }

    /// Serves until `shutdown` resolves, then reports NOT_SERVING, stops
    /// accepting connections and lets in-flight RPCs finish within the grace
    /// period.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Self {
            listener,
            local_addr,
            admin_listener,
            admin_addr,
            readiness,
            mut routes,
            services,
            health,
            grace,
            max_concurrent,
            max_connection_age,
            security,
            finishing,
        } = self;

        let reflection_v1 = reflection(&services)
            .build_v1()
            .context("failed to build the reflection service")?;
        let reflection_v1alpha = reflection(&services)
            .build_v1alpha()
            .context("failed to build the reflection service")?;
        routes.add_service(reflection_v1);
        routes.add_service(reflection_v1alpha);

        // Readiness: checked once before reporting SERVING, then every few
        // seconds; the same result drives grpc.health.v1 and /readyz.
        let ready = readiness.refresh().await;
        set_health(&health, &services, ready).await;
        // Liveness is separate from readiness: a dependency outage makes the
        // service unready, never "dead" (restarting it would not help).
        health
            .set_service_status(LIVENESS, ServingStatus::Serving)
            .await;
        let (stop_checks, mut checks_stopped) = tokio::sync::watch::channel(false);
        let readiness_loop = {
            let readiness = readiness.clone();
            let health = health.clone();
            let services = services.clone();
            tokio::spawn(async move {
                let mut last = ready;
                loop {
                    tokio::select! {
                        _ = checks_stopped.changed() => break,
                        () = tokio::time::sleep(READINESS_INTERVAL) => {}
                    }
                    rapport_telemetry::run_metrics_upkeep();
                    let now = readiness.refresh().await;
                    if now != last {
                        tracing::info!(ready = now, "readiness changed");
                        set_health(&health, &services, now).await;
                        last = now;
                    }
                }
            })
        };
        let mut admin_stop = stop_checks.subscribe();
        let admin = tokio::spawn(crate::admin::serve(admin_listener, readiness, async move {
            let _ = admin_stop.changed().await;
        }));

        // Observe first, so shed calls are traced and counted with their
        // RESOURCE_EXHAUSTED code.
        // Authentication comes before shedding, so unauthenticated floods
        // cannot take the permits of real callers.
        let stack = tower::ServiceBuilder::new()
            .layer(ObserveLayer::server())
            .option_layer(security.tokens().map(AuthLayer::new))
            .layer(ShedLayer::with_finishing(max_concurrent, finishing));
        let mut builder = tonic::transport::Server::builder();
        if let Some(age) = max_connection_age {
            builder = builder
                .max_connection_age(age)
                .max_connection_age_grace(Duration::from_secs(5));
        }
        if let Some(tls) = security.server_tls() {
            builder = builder
                .tls_config(tls)
                .context("invalid TLS certificate or key")?;
        }
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let serve = builder
            .layer(stack)
            .add_routes(routes.routes())
            // Nagle's algorithm with the peer's delayed ACKs stalls every
            // small response by ~40 ms; the builder's tcp_nodelay does not
            // apply to our own listener, so it is set on the incoming stream.
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                async {
                    let _ = stop_rx.await;
                },
            );
        tokio::pin!(serve);
        tracing::info!(addr = %local_addr, admin = %admin_addr, services = ?services, "serving");

        tokio::select! {
            result = &mut serve => {
                let _ = stop_checks.send(true);
                return result.context("gRPC server failed");
            }
            () = shutdown => {}
        }

        // Tell load balancers first, then stop accepting and drain.
        let _ = stop_checks.send(true);
        let _ = readiness_loop.await;
        set_health(&health, &services, false).await;
        health
            .set_service_status(LIVENESS, ServingStatus::NotServing)
            .await;
        let _ = stop_tx.send(());
        match tokio::time::timeout(grace, &mut serve).await {
            Ok(result) => result.context("gRPC server failed while draining")?,
            Err(_) => tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "drain grace period elapsed; dropping remaining connections"
            ),
        }
        if let Ok(Err(e)) = admin.await {
            tracing::warn!(error = %e, "admin server failed");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

async fn set_health(health: &HealthReporter, services: &[&'static str], serving: bool) {
    let status = if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    for name in services.iter().copied().chain([""]) {
        health.set_service_status(name, status).await;
    }
}

/// Reflection lists exactly the services this server hosts (plus health),
/// not every service in the shared descriptor set.
fn reflection(services: &[&'static str]) -> tonic_reflection::server::Builder<'static> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(rapport_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection");
    for name in services {
        builder = builder.with_service_name(*name);
    }
    builder
}
