//! The outreach scheduler: care calls by need, compliant, blended with
//! inbound load, dispatched exactly once.
//!
//! Care tasks are planned from each customer's profile by the care policy
//! (`plan`), kept in a due index in Redis (`store`) that is rebuilt from
//! profiles and then follows profile's change feed (`feed`). Every replica
//! runs the dispatch loop (`engine`): it claims due tasks under leases with
//! fencing tokens, checks consent, windows, legal hours, caps and quiet
//! periods (`compliance`), reserves an agent through routing while inbound
//! leaves room, and publishes the dial request to a Redis Stream that
//! dialers read through `WatchOutbound` (at least once, with an
//! idempotency key). Outcomes are written back to profile.

pub mod clock;
pub mod compliance;
mod config;
mod deps;
pub mod engine;
mod error;
pub mod feed;
pub mod forecast;
mod metrics;
pub mod plan;
pub mod policy;
mod service;
pub mod store;
pub mod tasks;

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context as _;
use rapport_kit::client::check_health;
use rapport_kit::server::{GrpcServer, Severity};
use rapport_proto::outreach_service_server::OutreachServiceServer;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use deps::Deps;

/// The port served on when `--listen` is not given.
pub const DEFAULT_PORT: u16 = 50054;

/// A built outreach service, bound and connected, ready to serve.
pub struct App {
    server: GrpcServer,
    engine: engine::Engine,
    follow_feed: bool,
    policy_path: Option<std::path::PathBuf>,
    stop: CancellationToken,
}

impl App {
    /// The bound gRPC address.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Builds with an injected clock (tests drive time with it).
    pub async fn build_with_clock(config: Config, clock: clock::Clock) -> anyhow::Result<Self> {
        let policy = policy::CarePolicy::load(config.policy.as_deref())
            .map(policy::PolicyHandle::new)
            .context("failed to load the care policy")?;
        rapport_kit::validate::id("default_center", &config.default_center)
            .context("invalid --default-center")?;
        rapport_kit::phone::warm_up();
        let region: rapport_kit::phone::Region = config
            .default_region
            .parse()
            .context("invalid --default-region")?;
        let tagged = config
            .redis_prefix
            .find('{')
            .zip(config.redis_prefix.rfind('}'))
            .is_some_and(|(a, b)| b > a + 1);
        if !tagged {
            anyhow::bail!(
                "invalid --redis-prefix {:?}: it must contain a hash tag such as {{out}}",
                config.redis_prefix
            );
        }
        let store = store::Store::connect_with_prefix(&config.redis_url, &config.redis_prefix)
            .await
            .context("failed to connect to Redis (--redis-url / RAPPORT_REDIS_URL)")?;
        let security = rapport_kit::security::Security::from_args(&config.server)
            .context("invalid security configuration")?;
        let deps = Deps::new(
            &config.profile_url,
            &config.routing_url,
            config.dependency_timeout,
            &security,
        )?;
        let owner = if config.replica_id.is_empty() {
            format!(
                "{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "outreach".to_owned()),
                std::process::id()
            )
        } else {
            rapport_kit::validate::id("replica_id", &config.replica_id)
                .context("invalid --replica-id")?;
            config.replica_id.clone()
        };
        let engine = engine::Engine::new(
            store.clone(),
            deps.clone(),
            policy,
            clock,
            owner,
            config.default_center.clone(),
            config.claim_interval,
            config.dispatch_concurrency,
        );
        metrics::register();
        let stop = CancellationToken::new();
        let service = service::Outreach {
            engine: engine.clone(),
            region,
            shutdown: stop.clone(),
        };
        let profile = deps.profile_channel.clone();
        let mut server = GrpcServer::bind(&config.server, DEFAULT_PORT)
            .await?
            .add_service(
                OutreachServiceServer::new(service)
                    .max_decoding_message_size(rapport_kit::validate::MAX_MESSAGE_BYTES),
            )
            .readiness_check("redis", Severity::Required, move || {
                let store = store.clone();
                async move { store.ping().await.map_err(|e| e.to_string()) }
            })
            .readiness_check("profile", Severity::Required, move || {
                let channel = profile.clone();
                async move { check_health(&channel, "rapport.v1.ProfileService").await }
            });
        if let Some(routing) = deps.routing_channel.clone() {
            server = server.readiness_check("routing", Severity::Degrades, move || {
                let channel = routing.clone();
                async move { check_health(&channel, "rapport.v1.RoutingService").await }
            });
        }
        Ok(Self {
            server,
            engine,
            follow_feed: config.follow_feed,
            policy_path: config.policy.clone(),
            stop,
        })
    }
}

impl rapport_kit::Service for App {
    type Config = Config;
    const NAME: &'static str = "outreach";

    async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, clock::Clock::system()).await
    }

    async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let stop = self.stop.clone();
        let mut background = tokio::task::JoinSet::new();
        background.spawn(self.engine.clone().run(stop.clone()));
        if self.follow_feed {
            background.spawn(self.engine.clone().follow(stop.clone()));
        }
        background.spawn(gauges(self.engine.clone(), stop.clone()));
        if let Some(path) = self.policy_path.clone() {
            let handle = self.engine.policy.clone();
            let stop = stop.clone();
            background.spawn(async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = policy::watch(handle, path, std::time::Duration::from_secs(2)) => {}
                }
            });
        }
        let trigger = stop.clone();
        let served = self
            .server
            .serve(async move {
                shutdown.await;
                // Dialer streams end and the loop stops claiming; tasks in
                // flight finish or their leases return them.
                trigger.cancel();
            })
            .await;
        stop.cancel();
        while background.join_next().await.is_some() {}
        served
    }
}

/// Refreshes the task gauges every few seconds.
async fn gauges(engine: engine::Engine, stop: CancellationToken) {
    loop {
        match engine.store.counts(engine.clock.now_ms()).await {
            Ok(c) => metrics::gauges(&c),
            Err(e) => tracing::debug!(error = %e, "outreach gauges unavailable"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
        }
    }
}
