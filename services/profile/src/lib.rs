//! The profile service: the personalized customer database that CRM writes
//! and every routing decision reads.
//!
//! - [`store`]: the [`store::Store`] trait with its SQLite (default,
//!   embedded) and PostgreSQL backends, chosen by the database URL; the
//!   schema is migrated at startup.
//! - [`model`]: the domain the store speaks; [`phone`]: E.164
//!   normalization with a configurable default region.
//! - The gRPC surface (`service`) validates every request before touching
//!   the store and maps store errors to statuses in exactly one place
//!   (`error`).
//!
//! - [`input`]: the RPCs' validation, for the bulk importer.
//!
//! The whole `ProfileService` contract is implemented: the hot path
//! (GetProfile, LookupByPhone) reads indexes and maintained aggregates
//! only; every write is one transaction that also appends to the change
//! feed (`WatchChanges`) when it changed something.

mod config;
mod convert;
mod error;
mod service;
mod validate;

pub mod model;

pub mod store;

/// The request validation of the RPCs, for tools that write through the
/// store directly (`rapportctl import`): the same rules, the same field
/// names.
pub mod input {
    use chrono::{DateTime, Utc};
    use rapport_kit::phone::Region;
    use rapport_kit::validate::FieldError;
    use rapport_proto as pb;

    use crate::model::{Contact, CustomerInput};

    /// A whole customer, as CreateCustomer checks it (fields named
    /// `customer.…`).
    pub fn customer(
        customer: &pb::Customer,
        region: Region,
        now: DateTime<Utc>,
    ) -> Result<CustomerInput, FieldError> {
        crate::validate::customer(Some(customer), region, now)
    }

    /// One contact, as RecordContact checks it (fields named `contact.…`).
    pub fn contact(contact: &pb::ContactRecord, now: DateTime<Utc>) -> Result<Contact, FieldError> {
        crate::validate::contact(Some(contact), now)
    }
}

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context as _;
use rapport_kit::server::GrpcServer;
use rapport_proto::profile_service_server::ProfileServiceServer;

pub use config::Config;

/// The port served on when `--listen` is not given.
pub const DEFAULT_PORT: u16 = 50051;

use crate::store::{Backend, PoolOptions, Store as _};
use rapport_kit::server::Severity;

/// A built profile service: database open and migrated, listener bound.
pub struct App {
    server: GrpcServer,
    store: Backend,
    change_retention: std::time::Duration,
}

impl App {
    /// The bound gRPC address.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }
}

impl rapport_kit::Service for App {
    type Config = Config;
    const NAME: &'static str = "profile";

    async fn build(config: Config) -> anyhow::Result<Self> {
        rapport_kit::phone::warm_up();
        let store = Backend::connect(
            &config.database_url,
            PoolOptions {
                max_connections: config.db_max_connections,
                ..PoolOptions::default()
            },
        )
        .await
        .context("failed to open the profile database")?;
        let server = GrpcServer::bind(&config.server, DEFAULT_PORT).await?;
        tracing::info!(
            backend = ?store.kind(),
            default_region = %config.default_region,
            "profile store ready"
        );
        let api = service::ProfileApi::new(store.clone(), config.default_region);
        let ping = store.clone();
        let server = server
            .add_service(
                ProfileServiceServer::new(api)
                    .max_decoding_message_size(rapport_kit::validate::MAX_MESSAGE_BYTES),
            )
            .readiness_check("database", Severity::Required, move || {
                let store = ping.clone();
                async move { store.ping().await.map_err(|e| e.to_string()) }
            });
        Ok(Self {
            server,
            store,
            change_retention: config.change_retention,
        })
    }

    fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        let Self {
            server,
            store,
            change_retention,
        } = self;
        async move {
            let pruner = tokio::spawn(prune_changes(store.clone(), change_retention));
            let served = server.serve(shutdown).await;
            pruner.abort();
            // After draining: close connections cleanly (SQLite checkpoints
            // its WAL into the database file).
            store.close().await;
            served
        }
    }
}

/// How often the change feed is pruned.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// Changes removed per transaction, so pruning a large backlog never holds
/// the write lock for long.
const PRUNE_CHUNK: u32 = 10_000;

/// Prunes changes older than `retention` now and every [`PRUNE_EVERY`],
/// until aborted. Every replica may run it: deleting what another replica
/// already deleted does nothing.
async fn prune_changes(store: Backend, retention: std::time::Duration) {
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(before) = chrono::Utc::now().checked_sub_signed(retention) else {
            continue;
        };
        let mut pruned = 0;
        loop {
            match store.prune_changes(before, PRUNE_CHUNK).await {
                Ok(n) => {
                    pruned += n;
                    if n < u64::from(PRUNE_CHUNK) {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %rapport_kit::status::ErrorChain(&e), "pruning the change feed failed");
                    break;
                }
            }
        }
        if pruned > 0 {
            tracing::info!(pruned, "change feed pruned");
        }
    }
}
