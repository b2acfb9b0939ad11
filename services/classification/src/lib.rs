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
//! From the text of the contact (chat, email, social post, transcript) and
//! the history it adds, also with evidence:
//!
//! - the needs (six kinds, weighted, primary first),
//! - the emotion (calm / anxious / upset / angry, with intensity),
//! - whether this is a moment of truth,
//! - risk flags (escalation threat, solutions exhausted, compensation
//!   seeking, rule disregard, repeat caller, long-call cost, public
//!   influence) and churn risk,
//! - handling guidance (script scope, escalation policy, prepared
//!   solutions, case references, cautions).
//!
//! Text is read with policy lexicons ([`text`], negation and degree aware)
//! and a learned model ([`model`], trained from [`corpus`] by
//! `make train`); both load once at startup. The policy reloads on SIGHUP
//! and on file change ([`reload`]); `ClassifyStream` re-classifies a live
//! transcript and re-emits when the classification changes.

pub mod cases;
mod classify;
mod config;
pub mod corpus;
pub mod model;
mod normalize;
pub mod policy;
pub mod reload;
pub mod rules;
mod service;
pub mod text;

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context as _;
use rapport_kit::server::GrpcServer;
use rapport_proto::classification_service_server::ClassificationServiceServer;

pub use classify::{churn_reason, classify};

/// The port served on when `--listen` is not given.
pub const DEFAULT_PORT: u16 = 50052;
pub use config::{Config, DEFAULT_MAX_TEXT_BYTES};
pub use policy::{Policy, PolicyError, PolicySource, SharedPolicy};

/// A built classification service, bound and ready to serve.
pub struct App {
    server: GrpcServer,
    policy: SharedPolicy,
    reloader: reload::Reloader,
    watcher: tokio::task::JoinHandle<()>,
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

    /// Reloads the policy (and model file) now, as SIGHUP does.
    pub fn reload(&self) -> Result<String, reload::ReloadError> {
        self.reloader.reload()
    }
}

impl rapport_kit::Service for App {
    type Config = Config;
    const NAME: &'static str = "classification";

    async fn build(config: Config) -> anyhow::Result<Self> {
        // The policy is loaded before the port is bound, so a bad policy
        // fails startup without ever reporting SERVING.
        let source = config.policy_source();
        let policy = reload::Reloader::load(&source, config.model.as_ref())
            .with_context(|| format!("cannot load the classification {source}"))?;
        // The segmenter's dictionary loads now rather than on the first
        // request, which would otherwise take a fraction of a second.
        text::warm_up();
        tracing::info!(
            version = policy.version(),
            source = %source,
            model = policy.model().corpus_digest(),
            max_text_bytes = config.max_text_bytes,
            "classification policy and text model loaded"
        );
        let policy = SharedPolicy::new(policy);
        let reloader = reload::Reloader::new(source, config.model.clone(), policy.clone());
        let watcher = reloader
            .clone()
            .spawn(config.policy_poll)
            .context("cannot watch for SIGHUP")?;

        service::register_metrics();
        let classifier = service::Classifier {
            policy: policy.clone(),
            max_text_bytes: config.max_text_bytes,
        };
        let server = GrpcServer::bind(&config.server, DEFAULT_PORT)
            .await?
            .add_service(
                ClassificationServiceServer::new(classifier)
                    .max_decoding_message_size(rapport_kit::validate::MAX_MESSAGE_BYTES),
            );
        Ok(Self {
            server,
            policy,
            reloader,
            watcher,
        })
    }

    fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        let watcher = self.watcher;
        let serve = self.server.serve(shutdown);
        async move {
            let result = serve.await;
            watcher.abort();
            result
        }
    }
}
