//! Every setting of the outreach scheduler, as flags with `RAPPORT_*`
//! environment fallbacks.

use std::path::PathBuf;
use std::time::Duration;

use rapport_kit::config::{ServerArgs, parse_duration};

/// Outreach scheduler configuration.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "rapport-outreach",
    version,
    about = "Rapport outreach scheduler"
)]
pub struct Config {
    #[command(flatten)]
    pub server: ServerArgs,

    /// Redis holding the due index, leases and the dial stream (derived
    /// state: it is rebuilt from profiles when lost).
    #[arg(
        long,
        env = "RAPPORT_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/"
    )]
    pub redis_url: String,

    /// Prefix of every outreach key in Redis. It must carry a hash tag
    /// (`{...}`) so the scripts work on Redis Cluster.
    #[arg(
        long,
        env = "RAPPORT_OUTREACH_REDIS_PREFIX",
        default_value = "rapport:{out}:"
    )]
    pub redis_prefix: String,

    /// Profile service address: profiles, consent, the change feed, and
    /// where outcomes are written back.
    #[arg(
        long,
        env = "RAPPORT_PROFILE_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub profile_url: String,

    /// Routing service address, for blending (QueueStats) and agent
    /// reservation (RouteOutbound). Empty means the dialer assigns agents
    /// itself: dial requests carry no agent and no blending gate applies.
    #[arg(
        long,
        env = "RAPPORT_ROUTING_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    pub routing_url: String,

    /// Care policy file (TOML); the built-in policy when absent. Reloaded
    /// on SIGHUP and when the file changes.
    #[arg(long, env = "RAPPORT_OUTREACH_POLICY")]
    pub policy: Option<PathBuf>,

    /// Contact center whose agents place care calls when a task names none.
    #[arg(long, env = "RAPPORT_CENTER", default_value = "default")]
    pub default_center: String,

    /// Region for parsing callback numbers without a country code (ISO 3166).
    #[arg(long, env = "RAPPORT_DEFAULT_REGION", default_value = "CN")]
    pub default_region: String,

    /// Deadline for each call to profile or routing.
    #[arg(long, env = "RAPPORT_DEPENDENCY_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub dependency_timeout: Duration,

    /// How often this replica looks for due tasks when the last look found
    /// none (a full batch is followed by another claim at once).
    #[arg(long, env = "RAPPORT_CLAIM_INTERVAL", default_value = "200ms", value_parser = parse_duration)]
    pub claim_interval: Duration,

    /// Tasks this replica works on at the same time (profile reads,
    /// reservations, dispatch).
    #[arg(long, env = "RAPPORT_DISPATCH_CONCURRENCY", default_value_t = 64)]
    pub dispatch_concurrency: usize,

    /// This replica's name in leases and logs; host name and pid when empty.
    #[arg(long, env = "RAPPORT_REPLICA_ID", default_value = "")]
    pub replica_id: String,

    /// Follow the profile change feed (one replica at a time holds the
    /// follower lock) and rebuild the due index when Redis has none.
    #[arg(long, env = "RAPPORT_FOLLOW_FEED", default_value_t = true, action = clap::ArgAction::Set)]
    pub follow_feed: bool,
}

/// A prefix unique to this process and call, so tests can share a Redis.
fn rapport_testkit_free_prefix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "t{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl AsRef<ServerArgs> for Config {
    fn as_ref(&self) -> &ServerArgs {
        &self.server
    }
}

impl Config {
    /// A config for tests: ephemeral loopback port, the given Redis and
    /// profile, no routing.
    pub fn for_tests(redis_url: &str, profile_url: &str) -> Self {
        Self {
            server: ServerArgs::ephemeral(),
            redis_url: redis_url.to_owned(),
            redis_prefix: format!("{}:{{out}}:", rapport_testkit_free_prefix()),
            profile_url: profile_url.to_owned(),
            routing_url: String::new(),
            policy: None,
            default_center: "default".to_owned(),
            default_region: "CN".to_owned(),
            dependency_timeout: Duration::from_secs(2),
            claim_interval: Duration::from_millis(50),
            dispatch_concurrency: 32,
            replica_id: String::new(),
            follow_feed: true,
        }
    }
}
