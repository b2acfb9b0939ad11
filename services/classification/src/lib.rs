//! The classification service: who a contact is to the center and how to
//! serve them, before anyone answers.
//!
//! Stateless. From the caller's profile, history summary and contact
//! context it computes, under an operator-edited [`Policy`]:
//!
//! - the value tier (VIP / PREFERRED / STANDARD) from thresholds,
//! - the language and dialect an agent must speak (explicit, or inferred
//!   from the city: Xiamen → minnan),
//! - the patience in seconds, learned from the waits that preceded
//!   complaints or hang-ups (90 s without evidence),
//!
//! each with a human-readable reason. The rules live in [`rules`], one
//! module each, composed by the pure function [`classify()`]; the gRPC layer
//! only validates input and calls it.
//!
//! Needs, emotion, moments of truth, risk flags, guidance, the text model,
//! `ClassifyStream` and policy hot reload belong to the classification
//! issue. The structure is ready for them: new rules go in [`rules`], their
//! settings in [`Policy`], a model beside the policy, and a reload swaps
//! the [`SharedPolicy`] the service reads ([`App::policy`]).

mod classify;
mod config;
mod normalize;
pub mod policy;
pub mod rules;
mod service;

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context as _;
use rapport_kit::server::GrpcServer;
use rapport_proto::classification_service_server::ClassificationServiceServer;

pub use classify::classify;

/// The port served on when `--listen` is not given.
pub const DEFAULT_PORT: u16 = 50052;
pub use config::{Config, DEFAULT_MAX_TEXT_BYTES};
pub use policy::{Policy, PolicyError, PolicySource, SharedPolicy};

/// A built classification service, bound and ready to serve.
pub struct App {
    server: GrpcServer,
    policy: SharedPolicy,
}

impl App {
    /// The bound gRPC address.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The policy in force, shared with the serving requests; replacing it
    /// takes effect for the next request.
    pub fn policy(&self) -> SharedPolicy {
        self.policy.clone()
    }
}

impl rapport_kit::Service for App {
    type Config = Config;
    const NAME: &'static str = "classification";

    async fn build(config: Config) -> anyhow::Result<Self> {
        // The policy is loaded before the port is bound, so a bad policy
        // fails startup without ever reporting SERVING.
        let source = config.policy_source();
        let policy = source
            .load()
            .with_context(|| format!("cannot load the classification {source}"))?;
        tracing::info!(
            version = policy.version(),
            source = %source,
            max_text_bytes = config.max_text_bytes,
            "classification policy loaded"
        );
        let policy = SharedPolicy::new(policy);

        let classifier = service::Classifier {
            policy: policy.clone(),
            max_text_bytes: config.max_text_bytes,
        };
        let server = GrpcServer::bind(&config.server, DEFAULT_PORT)
            .await?
            .add_service(ClassificationServiceServer::new(classifier));
        Ok(Self { server, policy })
    }

    fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        self.server.serve(shutdown)
    }
}
