//! Configuration shared by every server: where to listen and how long to
//! drain. Each service flattens [`ServerArgs`] into its own clap config, so
//! all its settings are declared in one place.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

/// Listener and shutdown settings common to all services.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Address to serve gRPC on; port 0 picks a free port. Defaults to
    /// 0.0.0.0 on the service's own port (profile 50051, classification
    /// 50052, routing 50053, outreach 50054).
    #[arg(long = "listen", env = "RAPPORT_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Address of the admin HTTP port (/metrics, /healthz, /readyz).
    /// Defaults to 0.0.0.0 on the gRPC default port + 1000 (51051-51054).
    #[arg(long = "admin-listen", env = "RAPPORT_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,

    /// Most RPCs served at once across all connections; beyond it calls
    /// are answered RESOURCE_EXHAUSTED immediately (health checks excepted).
    /// Methods that finish admitted work (routing's answers to offers,
    /// completions, heartbeats) have as many permits again of their own.
    #[arg(
        long = "max-concurrent-requests",
        env = "RAPPORT_MAX_CONCURRENT_REQUESTS",
        default_value_t = 1024
    )]
    pub max_concurrent_requests: usize,

    /// Transport security: `mtls` (certificates from the files below) or
    /// `plaintext` (local runs only; must be chosen explicitly).
    #[arg(
        long = "tls-mode",
        env = "RAPPORT_TLS_MODE",
        value_enum,
        default_value = "mtls"
    )]
    pub tls_mode: crate::security::TlsMode,

    /// This service's certificate (PEM), presented to servers and clients.
    #[arg(long = "tls-cert", env = "RAPPORT_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(long = "tls-key", env = "RAPPORT_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// CA certificate (PEM) that peers' certificates must chain to.
    #[arg(long = "tls-ca", env = "RAPPORT_TLS_CA")]
    pub tls_ca: Option<PathBuf>,

    /// Caller authentication: `tokens` (bearer tokens → roles) or `none`
    /// (local runs only; must be chosen explicitly).
    #[arg(
        long = "auth-mode",
        env = "RAPPORT_AUTH_MODE",
        value_enum,
        default_value = "tokens"
    )]
    pub auth_mode: crate::security::AuthMode,

    /// Tokens file (TOML: token → role, agent id for desktops).
    #[arg(long = "auth-tokens", env = "RAPPORT_AUTH_TOKENS")]
    pub auth_tokens: Option<PathBuf>,

    /// File holding this service's own token, sent on its calls to other
    /// services (role mesh).
    #[arg(long = "service-token", env = "RAPPORT_SERVICE_TOKEN")]
    pub service_token: Option<PathBuf>,

    /// Close client connections after this age (with a grace period), so
    /// long-lived gRPC connections re-balance over new replicas; unset
    /// keeps connections open.
    #[arg(long = "max-connection-age", env = "RAPPORT_MAX_CONNECTION_AGE", value_parser = parse_duration)]
    pub max_connection_age: Option<Duration>,

    /// How long in-flight RPCs may take to finish after SIGTERM before the
    /// server drops them (e.g. "10s", "500ms").
    #[arg(long = "shutdown-grace", env = "RAPPORT_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// Threads of the async runtime that serves RPCs. Unset, there is one
    /// per CPU this process may use (cgroup CPU limits count). Where the
    /// mesh's services share a few cores with each other, Redis and the
    /// database (every process on one 2-core machine), one each is cheaper:
    /// a second worker mostly wakes up to find no work, and every wake-up
    /// is a context switch on a core another process needed.
    #[arg(long = "worker-threads", env = "RAPPORT_WORKER_THREADS")]
    pub worker_threads: Option<NonZeroUsize>,
}

impl ServerArgs {
    /// Settings for tests and embedding: an ephemeral loopback port, a
    /// short grace period, plaintext and no auth.
    pub fn ephemeral() -> Self {
        Self {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            max_concurrent_requests: 1024,
            tls_mode: crate::security::TlsMode::Plaintext,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            auth_mode: crate::security::AuthMode::None,
            auth_tokens: None,
            service_token: None,
            max_connection_age: None,
            shutdown_grace: Duration::from_secs(2),
            worker_threads: None,
        }
    }
}

impl ServerArgs {
    /// The address to bind: the configured one, or all interfaces on the
    /// service's default port.
    pub fn listen_addr(&self, default_port: u16) -> SocketAddr {
        self.listen
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], default_port)))
    }

    /// The admin address to bind: the configured one, or all interfaces on
    /// the gRPC default port + 1000.
    pub fn admin_addr(&self, default_port: u16) -> SocketAddr {
        self.admin_listen
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], default_port.saturating_add(1000))))
    }
}

/// Parses a human duration such as `250ms`, `10s` or `2m`.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value).map_err(|e| format!("invalid duration {value:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        server: ServerArgs,
    }

    #[test]
    fn worker_threads_are_a_positive_count_or_unset() {
        use clap::Parser as _;
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|c| c.server.worker_threads);
        assert_eq!(parse(&["x"]).unwrap(), None);
        assert_eq!(
            parse(&["x", "--worker-threads", "1"]).unwrap(),
            NonZeroUsize::new(1)
        );
        let zero = parse(&["x", "--worker-threads", "0"])
            .unwrap_err()
            .to_string();
        assert!(zero.contains("--worker-threads"), "{zero}");
    }
}
