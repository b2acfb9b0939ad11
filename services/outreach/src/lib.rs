//! The outreach scheduler service.
//!
//! It serves its whole contract, health and reflection now; the scheduling
//! behaviour (care policies, due index, leases, dial stream) belongs to its
//! own issue, so every RPC answers UNIMPLEMENTED until then rather than a
//! made-up result.

pub mod compliance;
mod config;
pub mod forecast;
pub mod plan;
pub mod policy;
mod service;

use std::future::Future;
use std::net::SocketAddr;

use rapport_kit::server::GrpcServer;
use rapport_proto::outreach_service_server::OutreachServiceServer;

pub use config::Config;

/// The port served on when `--listen` is not given.
pub const DEFAULT_PORT: u16 = 50054;

/// A built outreach service, bound and ready to serve.
pub struct App {
    server: GrpcServer,
}

impl App {
    /// The bound gRPC address.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }
}

impl rapport_kit::Service for App {
    type Config = Config;
    const NAME: &'static str = "outreach";

    async fn build(config: Config) -> anyhow::Result<Self> {
        let server = GrpcServer::bind(&config.server, DEFAULT_PORT)
            .await?
            .add_service(OutreachServiceServer::new(service::Outreach));
        Ok(Self { server })
    }

    fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        self.server.serve(shutdown)
    }
}
