//! The SQLite backend: an embedded file, created with its schema on first
//! start. The default, so a single binary runs with zero setup.
//!
//! Connections use WAL (readers never block the writer), foreign keys on,
//! `synchronous=FULL` (a committed write survives a power cut, not only a
//! crash) and a busy timeout. Write transactions start with
//! `BEGIN IMMEDIATE`: a deferred transaction that reads first and writes
//! later can fail with SQLITE_BUSY without waiting, while an immediate one
//! queues on the busy timeout like any other writer.

use std::str::FromStr as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{PoolOptions, StoreError};

type Db = sqlx::Sqlite;

/// Microseconds since the Unix epoch: integers compare and index exactly,
/// and match PostgreSQL's precision.
type Ts = i64;

fn ts(t: DateTime<Utc>) -> Ts {
    t.timestamp_micros()
}

fn from_ts(v: Ts) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(v)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {v} is out of range")))
}

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a writer waits for another writer before giving up with
/// ABORTED.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite backend.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url`, e.g.
    /// `sqlite://rapport-profile.db`, and migrates it.
    pub async fn connect(url: &str, options: PoolOptions) -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Connect("SQLite (invalid URL)".into(), e))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let target = format!("SQLite database {}", connect.get_filename().display());
        let mut pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout);
        if url.contains(":memory:") || url.contains("mode=memory") {
            // An in-memory database lives as long as one connection to it:
            // keep exactly one, forever.
            pool = pool
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = pool
            .connect_with(connect)
            .await
            .map_err(|e| StoreError::Connect(target, e))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate("SQLite", e))?;
        Ok(Self { pool })
    }

    /// Closes every connection (checkpointing the WAL).
    /// Whether the database answers a trivial query (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin_read(&self) -> Result<sqlx::Transaction<'static, Db>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Db>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Change ids already become visible in id order: SQLite has one writer
/// at a time (`BEGIN IMMEDIATE`), so nothing needs locking.
#[allow(clippy::unused_async)] // Same signature as the PostgreSQL backend.
async fn lock_outbox(_: &mut sqlx::SqliteConnection) -> Result<(), StoreError> {
    Ok(())
}

super::sql::sql_store!(SqliteStore);
