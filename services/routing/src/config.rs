//! Every setting of the routing service, as flags with `RAPPORT_*`
//! environment fallbacks.

use std::path::PathBuf;
use std::time::Duration;

use rapport_kit::config::{ServerArgs, parse_duration};

/// Routing service configuration.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "rapport-routing", version, about = "Rapport routing service")]
pub struct Config {
    #[command(flatten)]
    pub server: ServerArgs,

    /// Redis holding live agent state, e.g. redis://127.0.0.1:6379/.
    #[arg(
        long,
        env = "RAPPORT_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/"
    )]
    pub redis_url: String,

    /// Profile service address.
    #[arg(
        long,
        env = "RAPPORT_PROFILE_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub profile_url: String,

    /// Classification service address.
    #[arg(
        long,
        env = "RAPPORT_CLASSIFICATION_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub classification_url: String,

    /// Outreach scheduler address: accepted callbacks are handed to it to
    /// be placed in the caller's window. Empty keeps them only in routing's
    /// follow-up list (ListFollowUps), for a dialer of the center's own.
    #[arg(long, env = "RAPPORT_OUTREACH_URL", default_value = "")]
    pub outreach_url: String,

    /// Routing policy file (TOML); the built-in policy when absent.
    #[arg(long, env = "RAPPORT_ROUTING_POLICY")]
    pub policy: Option<PathBuf>,

    /// Contact center used when a request names none.
    #[arg(long, env = "RAPPORT_CENTER", default_value = "default")]
    pub default_center: String,

    /// Region for parsing caller numbers without a country code (ISO 3166).
    #[arg(long, env = "RAPPORT_DEFAULT_REGION", default_value = "CN")]
    pub default_region: String,

    /// Deadline for each call to profile or classification; when it passes,
    /// the contact is routed without that dependency (marked degraded).
    #[arg(long, env = "RAPPORT_DEPENDENCY_TIMEOUT", default_value = "150ms", value_parser = parse_duration)]
    pub dependency_timeout: Duration,

    /// Total time RouteCall may take. It is split across the steps: up to
    /// 40 % for profile, 30 % for classification, the rest for Redis; a
    /// slow dependency degrades the decision, and a decision that cannot be
    /// made in time answers FALLBACK to the overflow target.
    #[arg(long, env = "RAPPORT_ROUTE_BUDGET", default_value = "250ms", value_parser = parse_duration)]
    pub route_budget: Duration,

    /// Where the IVR should send a contact when live agent state is
    /// unreachable (RouteCall answers FALLBACK with this target).
    #[arg(long, env = "RAPPORT_OVERFLOW_TARGET", default_value = "overflow")]
    pub overflow_target: String,

    /// Time an agent has to accept an offer; overrides the policy's
    /// `offers.timeout_s` (e.g. for tests).
    #[arg(long, env = "RAPPORT_OFFER_TIMEOUT", value_parser = parse_duration)]
    pub offer_timeout: Option<Duration>,

    /// How often this replica sweeps due timers (offer expiry, widening,
    /// wrap-up). Any number of replicas may sweep.
    #[arg(long, env = "RAPPORT_SWEEP_INTERVAL", default_value = "250ms", value_parser = parse_duration)]
    pub sweep_interval: Duration,
}

impl AsRef<ServerArgs> for Config {
    fn as_ref(&self) -> &ServerArgs {
        &self.server
    }
}

impl Config {
    /// A config for tests: ephemeral port, the given Redis and dependencies.
    pub fn for_tests(redis_url: &str, profile_url: &str, classification_url: &str) -> Self {
        Self {
            server: ServerArgs::ephemeral(),
            redis_url: redis_url.to_owned(),
            profile_url: profile_url.to_owned(),
            classification_url: classification_url.to_owned(),
            outreach_url: String::new(),
            policy: None,
            default_center: "default".to_owned(),
            default_region: "CN".to_owned(),
            dependency_timeout: Duration::from_millis(500),
            route_budget: Duration::from_secs(2),
            overflow_target: "overflow".to_owned(),
            offer_timeout: None,
            sweep_interval: Duration::from_millis(250),
        }
    }
}
