//! The profile store: one async [`Store`] trait and two sqlx backends,
//! [`SqliteStore`] (an embedded file, the default) and [`PostgresStore`]
//! (production), with the same behaviour.
//!
//! Both backends run the very same SQL (see `sql.rs`); they differ only in
//! how they connect, how they begin transactions and how timestamps are
//! stored. Every method is one transaction: on any error nothing it wrote
//! remains. Every method takes `now` instead of reading the clock, so tests
//! control time and one request sees one instant.

mod codec;
mod direct;
mod group;
mod packed;
mod postgres;
mod sql;
mod sqlite;

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::{
    CampaignExposure, CareNote, Change, Consent, Contact, ContactCursor, Customer, CustomerExport,
    CustomerInput, CustomerPatch, Event, ImportCustomer, NewCareNote, NewEvent, NewTag,
    Preferences, Profile, SearchFilter, Tag,
};
use rapport_kit::phone::E164;

/// Which history-summary parts a profile read computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryParts {
    /// Everything (GetProfile, LookupByPhone, CRM exports).
    Full,
    /// Without the parts only routing reads (waits before complaints or
    /// hang-ups, affinity agents): the outreach rebuild's export.
    Lean,
}

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Persistence of customers and their history.
///
/// Reads return the customer as of `now` (expired tags are left out) and the
/// history summary with its windows ending at `now`.
pub trait Store: Send + Sync + 'static {
    /// A customer with their history summary.
    fn get_profile(
        &self,
        customer_id: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Profile, StoreError>> + Send;

    /// The profile of the customer owning `phone`.
    fn lookup_by_phone(
        &self,
        phone: &E164,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Profile, StoreError>> + Send;

    /// Creates the customer or replaces every field of the stored one
    /// (phones, needs, preferences, consent; tags when `input.tags` is
    /// `Some`). Bumps the version. Returns the stored record.
    fn upsert_customer(
        &self,
        input: &CustomerInput,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Customer, StoreError>> + Send;

    /// Creates a customer; [`StoreError::CustomerExists`] if the id is taken.
    fn create_customer(
        &self,
        input: &CustomerInput,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Customer, StoreError>> + Send;

    /// Adds tags, assigning ids and `now` as their creation time. Bumps the
    /// version.
    fn add_tags(
        &self,
        customer_id: &str,
        tags: &[NewTag],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Tag>, StoreError>> + Send;

    /// Removes one tag (expired or not). Bumps the version.
    fn remove_tag(
        &self,
        customer_id: &str,
        tag_id: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records a finished contact. Idempotent on `contact.contact_id`:
    /// returns `false` (and keeps the first record) when it was already
    /// recorded.
    fn record_contact(
        &self,
        customer_id: &str,
        contact: &Contact,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records a life or product event; idempotent on the event id when one
    /// is given. Returns the stored event.
    fn record_event(
        &self,
        customer_id: &str,
        event: &NewEvent,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Event, StoreError>> + Send;

    /// Records that a campaign was sent; idempotent on (campaign, channel,
    /// sent_at).
    fn record_campaign_exposure(
        &self,
        customer_id: &str,
        exposure: &CampaignExposure,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Replaces the fields of `patch` if the stored version is
    /// `expected_version` ([`StoreError::StaleVersion`] otherwise). Bumps
    /// the version once.
    fn update_customer(
        &self,
        customer_id: &str,
        expected_version: i64,
        patch: &CustomerPatch,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Customer, StoreError>> + Send;

    /// Up to `limit` contacts, newest first, after `after`.
    fn list_contacts(
        &self,
        customer_id: &str,
        after: Option<&ContactCursor>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Contact>, StoreError>> + Send;

    /// Adds a care note and the tags it adds (bumping the version when it
    /// adds any). Idempotent on the note id when one is given.
    fn add_care_note(
        &self,
        note: &NewCareNote,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<CareNote, StoreError>> + Send;

    /// Replaces the preferences. Bumps the version.
    fn set_preferences(
        &self,
        customer_id: &str,
        preferences: &Preferences,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Customer, StoreError>> + Send;

    /// Replaces consent and do-not-call. Bumps the version.
    fn set_consent(
        &self,
        customer_id: &str,
        consent: &Consent,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Customer, StoreError>> + Send;

    /// Up to `limit` customers matching `filter`, by customer id, after
    /// `after`.
    fn search_customers(
        &self,
        filter: &SearchFilter,
        after: Option<&str>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Customer>, StoreError>> + Send;

    /// Up to `limit` profiles by customer id after `after` (one snapshot
    /// per page).
    fn export_profiles(
        &self,
        after: Option<&str>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Profile>, StoreError>> + Send;

    /// Every profile with a customer id above `after` and, when given, at
    /// most `through` (one snapshot). With [`Store::page_end`] it lets an
    /// export load several pages at once without missing a customer
    /// inserted meanwhile.
    fn export_range(
        &self,
        after: Option<&str>,
        through: Option<&str>,
        parts: SummaryParts,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Profile>, StoreError>> + Send;

    /// The id of the `limit`-th customer after `after` (the last id of the
    /// export page that starts there), or `None` when fewer remain. A walk
    /// over the id index only, so pages can be loaded concurrently.
    fn page_end(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Up to `limit` changes with ids above `after`, oldest first;
    /// [`StoreError::ChangesPruned`] when changes above `after` (non-zero)
    /// were already pruned.
    fn changes_after(
        &self,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Change>, StoreError>> + Send;

    /// Removes up to about `limit` changes recorded before `before`, the
    /// oldest first, and moves the horizon below which resume tokens are
    /// refused ([`StoreError::ChangesPruned`]). Returns how many went.
    fn prune_changes(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Removes every row of the customer (and their earlier changes) and
    /// appends one ERASED change. Returns the rows removed.
    fn erase_customer(
        &self,
        customer_id: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Everything stored about one customer, expired tags included.
    fn export_customer(
        &self,
        customer_id: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<CustomerExport, StoreError>> + Send;

    /// How many rows each table holds for the customer (privacy audits and
    /// the erase tests).
    fn customer_rows(
        &self,
        customer_id: &str,
    ) -> impl Future<Output = Result<Vec<(&'static str, u64)>, StoreError>> + Send;

    /// Writes whole customers with their contacts in one transaction (bulk
    /// import). Idempotent: replaying a batch changes nothing. Customer ids
    /// must be distinct within a batch. A row that cannot be written fails
    /// the batch with [`StoreError::BatchRow`]. Returns the contacts that
    /// were new.
    fn import_batch(
        &self,
        batch: &[ImportCustomer],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("customer not found")]
    CustomerNotFound,
    #[error("tag not found")]
    TagNotFound,
    /// A resume token older than the change feed's retention: changes
    /// after it were pruned, so the consumer must rebuild.
    #[error("changes up to {horizon} were pruned")]
    ChangesPruned { horizon: i64 },
    #[error("a customer with this id already exists")]
    CustomerExists,
    /// The customer changed since the writer read it.
    #[error("the customer is at version {current}")]
    StaleVersion { current: i64 },
    /// Row `row` of an import batch could not be written; nothing of the
    /// batch was.
    #[error("row {row} of the batch: {source}")]
    BatchRow {
        row: usize,
        #[source]
        source: Box<StoreError>,
    },
    /// `index` is the phone's position in the written customer's list.
    #[error("phone {index} is owned by another customer")]
    PhoneTaken { index: usize },
    /// A concurrent transaction got in the way (lock timeout, serialization
    /// failure); retrying may succeed.
    #[error("concurrent update; retry")]
    Contention(#[source] sqlx::Error),
    /// The database cannot be reached or has no connection to spare.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// An error of the direct SQLite point readers (`store::direct`).
    #[error("embedded database error")]
    Embedded(#[source] rusqlite::Error),
    /// A stored value this build cannot read (e.g. written by a newer
    /// version, or edited by hand).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("{0}")]
    InvalidUrl(&'static str),
    #[error("failed to connect to {0}")]
    Connect(String, #[source] sqlx::Error),
    #[error("failed to migrate the {0} schema")]
    Migrate(&'static str, #[source] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(e),
            sqlx::Error::Database(db) => match db.code().as_deref() {
                // SQLite: SQLITE_BUSY / SQLITE_LOCKED and their extended
                // codes (busy timeout elapsed, snapshot too old).
                Some(code) if is_sqlite_busy(code) => Self::Contention(e),
                // PostgreSQL: serialization failure, deadlock, lock timeout.
                Some("40001" | "40P01" | "55P03") => Self::Contention(e),
                // PostgreSQL: connection exceptions, too many connections,
                // server shutting down.
                Some(c) if c.starts_with("08") || c == "53300" || c.starts_with("57P") => {
                    Self::Unavailable(e)
                }
                _ => Self::Database(e),
            },
            _ => Self::Database(e),
        }
    }
}

fn is_sqlite_busy(code: &str) -> bool {
    // SQLite codes are decimal; the primary code is the low byte.
    code.parse::<u32>()
        .is_ok_and(|c| c & 0xff == 5 || c & 0xff == 6)
}

/// Which backend a database URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

impl DatabaseKind {
    /// `sqlite:` URLs select SQLite, `postgres://` and `postgresql://`
    /// PostgreSQL.
    pub fn of(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            // The URL itself is not repeated: it may carry a password.
            Err(StoreError::InvalidUrl(
                "unsupported database URL: expected sqlite://PATH or postgres://USER@HOST/DB",
            ))
        }
    }
}

/// Pool settings.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    pub max_connections: u32,
    /// How long a request waits for a free connection before failing with
    /// UNAVAILABLE.
    pub acquire_timeout: Duration,
    /// Tuned for a bulk load rather than for serving (the importer): on
    /// SQLite, `synchronous=NORMAL` and a large writer page cache.
    pub bulk_load: bool,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            bulk_load: false,
        }
    }
}

/// The backend chosen at startup by the database URL.
#[derive(Clone)]
pub enum Backend {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl Backend {
    /// Connects to the database named by `url` and brings its schema up to
    /// date (a missing SQLite file is created).
    pub async fn connect(url: &str, options: PoolOptions) -> Result<Self, StoreError> {
        Ok(match DatabaseKind::of(url)? {
            DatabaseKind::Sqlite => Self::Sqlite(SqliteStore::connect(url, options).await?),
            DatabaseKind::Postgres => Self::Postgres(PostgresStore::connect(url, options).await?),
        })
    }

    /// Which backend this is.
    pub fn kind(&self) -> DatabaseKind {
        match self {
            Self::Sqlite(_) => DatabaseKind::Sqlite,
            Self::Postgres(_) => DatabaseKind::Postgres,
        }
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.ping().await,
            Self::Postgres(p) => p.ping().await,
        }
    }

    /// Closes every connection, waiting for them to be returned.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(p) => p.close().await,
        }
    }
}

/// Forwards a [`Store`] method to whichever backend is in use.
///
/// Every store operation is one transaction; this is where each gets its
/// client span (db.system, db.operation — never customer data) and its
/// latency in `rapport_profile_store_seconds{operation, backend}`.
macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {{
        use tracing::Instrument as _;
        let system = match $self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgresql",
        };
        let span = tracing::info_span!(
            "db.query",
            otel.name = concat!("profile.", stringify!($method)),
            otel.kind = "client",
            db.system = system,
            db.operation = stringify!($method),
        );
        let started = std::time::Instant::now();
        let result = async {
            match $self {
                Backend::Sqlite(s) => s.$method($($arg),*).await,
                Backend::Postgres(p) => p.$method($($arg),*).await,
            }
        }
        .instrument(span)
        .await;
        metrics::histogram!(
            "rapport_profile_store_seconds",
            "operation" => stringify!($method),
            "backend" => system
        )
        .record(started.elapsed().as_secs_f64());
        result
    }};
}

impl Store for Backend {
    async fn get_profile(
        &self,
        customer_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Profile, StoreError> {
        dispatch!(self.get_profile(customer_id, now))
    }

    async fn lookup_by_phone(
        &self,
        phone: &E164,
        now: DateTime<Utc>,
    ) -> Result<Profile, StoreError> {
        dispatch!(self.lookup_by_phone(phone, now))
    }

    async fn upsert_customer(
        &self,
        input: &CustomerInput,
        now: DateTime<Utc>,
    ) -> Result<Customer, StoreError> {
        dispatch!(self.upsert_customer(input, now))
    }

    async fn create_customer(
        &self,
        input: &CustomerInput,
        now: DateTime<Utc>,
    ) -> Result<Customer, StoreError> {
        dispatch!(self.create_customer(input, now))
    }

    async fn add_tags(
        &self,
        customer_id: &str,
        tags: &[NewTag],
        now: DateTime<Utc>,
    ) -> Result<Vec<Tag>, StoreError> {
        dispatch!(self.add_tags(customer_id, tags, now))
    }

    async fn remove_tag(
        &self,
        customer_id: &str,
        tag_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self.remove_tag(customer_id, tag_id, now))
    }

    async fn record_contact(
        &self,
        customer_id: &str,
        contact: &Contact,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        dispatch!(self.record_contact(customer_id, contact, now))
    }

    async fn record_event(
        &self,
        customer_id: &str,
        event: &NewEvent,
        now: DateTime<Utc>,
    ) -> Result<Event, StoreError> {
        dispatch!(self.record_event(customer_id, event, now))
    }

    async fn record_campaign_exposure(
        &self,
        customer_id: &str,
        exposure: &CampaignExposure,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self.record_campaign_exposure(customer_id, exposure, now))
    }

    async fn update_customer(
        &self,
        customer_id: &str,
        expected_version: i64,
        patch: &CustomerPatch,
        now: DateTime<Utc>,
    ) -> Result<Customer, StoreError> {
        dispatch!(self.update_customer(customer_id, expected_version, patch, now))
    }

    async fn list_contacts(
        &self,
        customer_id: &str,
        after: Option<&ContactCursor>,
        limit: u32,
    ) -> Result<Vec<Contact>, StoreError> {
        dispatch!(self.list_contacts(customer_id, after, limit))
    }

    async fn add_care_note(
        &self,
        note: &NewCareNote,
        now: DateTime<Utc>,
    ) -> Result<CareNote, StoreError> {
        dispatch!(self.add_care_note(note, now))
    }

    async fn set_preferences(
        &self,
        customer_id: &str,
        preferences: &Preferences,
        now: DateTime<Utc>,
    ) -> Result<Customer, StoreError> {
        dispatch!(self.set_preferences(customer_id, preferences, now))
    }

    async fn set_consent(
        &self,
        customer_id: &str,
        consent: &Consent,
        now: DateTime<Utc>,
    ) -> Result<Customer, StoreError> {
        dispatch!(self.set_consent(customer_id, consent, now))
    }

    async fn search_customers(
        &self,
        filter: &SearchFilter,
        after: Option<&str>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<Customer>, StoreError> {
        dispatch!(self.search_customers(filter, after, limit, now))
    }

    async fn export_profiles(
        &self,
        after: Option<&str>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<Profile>, StoreError> {
        dispatch!(self.export_profiles(after, limit, now))
    }

    async fn export_range(
        &self,
        after: Option<&str>,
        through: Option<&str>,
        parts: SummaryParts,
        now: DateTime<Utc>,
    ) -> Result<Vec<Profile>, StoreError> {
        dispatch!(self.export_range(after, through, parts, now))
    }

    async fn page_end(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Option<String>, StoreError> {
        dispatch!(self.page_end(after, limit))
    }

    async fn changes_after(&self, after: i64, limit: u32) -> Result<Vec<Change>, StoreError> {
        dispatch!(self.changes_after(after, limit))
    }

    async fn prune_changes(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        dispatch!(self.prune_changes(before, limit))
    }

    async fn erase_customer(
        &self,
        customer_id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        dispatch!(self.erase_customer(customer_id, now))
    }

    async fn export_customer(
        &self,
        customer_id: &str,
        now: DateTime<Utc>,
    ) -> Result<CustomerExport, StoreError> {
        dispatch!(self.export_customer(customer_id, now))
    }

    async fn customer_rows(
        &self,
        customer_id: &str,
    ) -> Result<Vec<(&'static str, u64)>, StoreError> {
        dispatch!(self.customer_rows(customer_id))
    }

    async fn import_batch(
        &self,
        batch: &[ImportCustomer],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        dispatch!(self.import_batch(batch, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_select_the_backend_without_echoing_them() {
        assert_eq!(
            DatabaseKind::of("sqlite://rapport-profile.db").ok(),
            Some(DatabaseKind::Sqlite)
        );
        assert_eq!(
            DatabaseKind::of("sqlite::memory:").ok(),
            Some(DatabaseKind::Sqlite)
        );
        assert_eq!(
            DatabaseKind::of("postgres://u:secret@db/rapport").ok(),
            Some(DatabaseKind::Postgres)
        );
        assert_eq!(
            DatabaseKind::of("postgresql://db/rapport").ok(),
            Some(DatabaseKind::Postgres)
        );
        let err = DatabaseKind::of("mysql://u:secret@db/rapport").expect_err("unsupported");
        assert!(!err.to_string().contains("secret"));
    }

    #[test]
    fn busy_and_serialization_errors_count_as_contention() {
        assert!(is_sqlite_busy("5"));
        assert!(is_sqlite_busy("517"));
        assert!(is_sqlite_busy("6"));
        assert!(!is_sqlite_busy("19"));
        assert!(!is_sqlite_busy("2067"));
    }
}
