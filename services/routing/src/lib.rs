//! The routing service: live agent state in Redis, personalized matching
//! and atomic reservations.
//!
//! A RouteCall resolves the caller through profile, has the contact
//! classified, derives its hard requirements (a requirement group and a
//! minimum skill score), reads the best idle candidates of that group from
//! a Redis index, ranks them, and reserves one atomically in a Lua script
//! — or queues the contact in Redis when nobody fits. An agent turning ready
//! takes the longest-waiting contact it qualifies for. Offers expire, queued
//! contacts widen their requirements over time, and callers whose
//! estimated wait exceeds their patience are offered a callback; a sweeper
//! on every replica processes those timers.

mod config;
mod deps;
mod error;
pub mod groups;
pub mod handoff;
mod metrics;
pub mod policy;
pub mod ranking;
pub mod requirements;
mod service;
pub mod state;
pub mod sweeper;
mod views;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use rapport_kit::client::check_health;
use rapport_kit::server::{GrpcServer, Severity};
use rapport_proto::routing_service_server::RoutingServiceServer;

pub use config::Config;

/// The port served on when `--listen` is not given.
pub const DEFAULT_PORT: u16 = 50053;

/// Routing's methods that finish or sustain work already admitted (an
/// offer answered, a contact ended, an agent kept on duty): they keep
/// reserved permits when new contacts are shed.
pub const FINISHING_METHODS: &[&str] = &[
    "AcceptOffer",
    "RejectOffer",
    "CompleteCall",
    "AbandonCall",
    "Heartbeat",
    "SetAgentStatus",
    "LoginAgent",
];

/// A built routing service, bound and connected, ready to serve.
pub struct App {
    server: GrpcServer,
    state: state::LiveState,
    sweep_interval: std::time::Duration,
    outreach: Option<handoff::Outreach>,
}

impl App {
    /// The bound gRPC address.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }
}

impl rapport_kit::Service for App {
    type Config = Config;
    const NAME: &'static str = "routing";

    async fn build(config: Config) -> anyhow::Result<Self> {
        let policy = policy::RoutingPolicy::load(config.policy.as_deref())
            .context("failed to load the routing policy")?;
        rapport_kit::validate::id("default_center", &config.default_center)
            .context("invalid --default-center")?;
        rapport_kit::phone::warm_up();
        let region: rapport_kit::phone::Region = config
            .default_region
            .parse()
            .context("invalid --default-region")?;
        let tunables = tunables(&policy, config.offer_timeout);
        let state = state::LiveState::connect(&config.redis_url, tunables)
            .await
            .context("failed to connect to Redis (--redis-url / RAPPORT_REDIS_URL)")?;
        // The same certificates and token serve incoming and outgoing calls.
        let security = rapport_kit::security::Security::from_args(&config.server)
            .context("invalid security configuration")?;
        let deps = deps::Deps::new(
            &config.profile_url,
            &config.classification_url,
            config.dependency_timeout,
            &security,
        )?;
        tracing::info!(policy = %policy.version, center = %config.default_center, "routing policy loaded");
        let outreach = if config.outreach_url.trim().is_empty() {
            None
        } else {
            Some(handoff::Outreach::new(rapport_kit::client::channel(
                "outreach",
                &config.outreach_url,
                config
                    .dependency_timeout
                    .max(std::time::Duration::from_secs(1)),
                &security,
            )?))
        };
        metrics::register();
        let sweeper_state = state.clone();
        let routing = service::Routing {
            state,
            deps,
            policy: Arc::new(policy),
            default_center: config.default_center,
            region,
            poll: std::time::Duration::from_millis(200),
            budget: config.route_budget,
            overflow_target: config.overflow_target.clone(),
            outreach: outreach.clone(),
        };
        // Readiness: without Redis routing can only answer fallbacks, so it
        // is required; profile and classification only degrade decisions.
        let redis = routing.state.clone();
        let timeout = config
            .dependency_timeout
            .max(std::time::Duration::from_millis(500));
        let profile =
            rapport_kit::client::channel("profile", &config.profile_url, timeout, &security)?;
        let classification = rapport_kit::client::channel(
            "classification",
            &config.classification_url,
            timeout,
            &security,
        )?;
        let server = GrpcServer::bind(&config.server, DEFAULT_PORT)
            .await?
            // Under overload new contacts are shed before the calls that end
            // contacts or keep agents on duty: shedding those would leave
            // agents reserved for contacts that are over (or log them out),
            // and the capacity that could end the overload would shrink.
            .finishing_methods(
                <RoutingServiceServer<service::Routing> as tonic::server::NamedService>::NAME,
                FINISHING_METHODS,
            )
            .add_service(
                RoutingServiceServer::new(routing)
                    .max_decoding_message_size(rapport_kit::validate::MAX_MESSAGE_BYTES),
            )
            .readiness_check("redis", Severity::Required, move || {
                let redis = redis.clone();
                async move { redis.ping().await.map_err(|e| e.to_string()) }
            })
            .readiness_check("profile", Severity::Degrades, move || {
                let channel = profile.clone();
                async move { check_health(&channel, "rapport.v1.ProfileService").await }
            })
            .readiness_check("classification", Severity::Degrades, move || {
                let channel = classification.clone();
                async move { check_health(&channel, "rapport.v1.ClassificationService").await }
            });
        Ok(Self {
            server,
            state: sweeper_state,
            sweep_interval: config.sweep_interval,
            outreach,
        })
    }

    async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let clock: sweeper::Clock = Arc::new(service::now_ms);
        // Gauges about every 5 s.
        let every = (5_000 / self.sweep_interval.as_millis().max(1)).max(1) as u32;
        let handing = self.outreach.map(|outreach| {
            tokio::spawn(handoff::run(
                outreach,
                self.state.clone(),
                clock.clone(),
                std::time::Duration::from_secs(1),
            ))
        });
        let sweeping = tokio::spawn(sweeper::run(
            self.state,
            clock,
            self.sweep_interval,
            every,
            std::future::pending(),
        ));
        let served = self.server.serve(shutdown).await;
        sweeping.abort();
        if let Some(h) = handing {
            h.abort();
        }
        served
    }
}

/// The numbers the live-state scripts need, from the policy (the offer
/// timeout may be overridden by configuration).
pub fn tunables(
    policy: &policy::RoutingPolicy,
    offer_timeout: Option<std::time::Duration>,
) -> state::Tunables {
    use std::time::Duration;
    state::Tunables {
        offer_timeout: offer_timeout.unwrap_or(Duration::from_secs(policy.offers.timeout_s)),
        queue_scan: policy.queue_scan,
        max_missed: policy.offers.max_missed,
        wrap_up_timeout: Duration::from_secs(policy.wrap_up.timeout_s),
        voice_exclusive: policy.capacity.voice_exclusive,
        window: Duration::from_secs(policy.patience.window_s),
        service_level_threshold: Duration::from_secs(u64::from(
            policy.patience.service_level_threshold_s,
        )),
        call_ttl_s: policy.call_ttl_s,
        learning_rate: 0.2,
        busy_ttl_s: state::DEFAULT_BUSY_TTL_S,
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    /// A misspelt name would silently leave a method to the shared permits.
    #[test]
    fn every_finishing_method_is_a_method_of_the_routing_service() {
        let set = prost_types::FileDescriptorSet::decode(rapport_proto::FILE_DESCRIPTOR_SET)
            .expect("descriptor set");
        let methods: Vec<String> = set
            .file
            .iter()
            .filter(|f| f.package() == "rapport.v1")
            .flat_map(|f| &f.service)
            .filter(|s| s.name() == "RoutingService")
            .flat_map(|s| &s.method)
            .map(|m| m.name().to_owned())
            .collect();
        assert!(methods.len() > 10, "{methods:?}");
        for m in super::FINISHING_METHODS {
            assert!(
                methods.iter().any(|x| x == m),
                "{m} is not a method: {methods:?}"
            );
        }
        assert!(!super::FINISHING_METHODS.contains(&"RouteCall"));
    }
}
