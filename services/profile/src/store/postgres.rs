//! The PostgreSQL backend, for production: replicas of the service share
//! one database.
//!
//! Point reads (GetProfile, LookupByPhone) are one statement, which sees
//! one snapshot by itself; multi-statement reads (exports, contact pages)
//! run in a read-only REPEATABLE READ transaction so the customer and
//! every part of the summary come from one snapshot. Writes run in READ
//! COMMITTED; each write locks the customer row first, so writers of one
//! customer queue up rather than interleave.

use std::str::FromStr as _;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection as _, PgConnection, PgPool};

use super::{PoolOptions, StoreError};

type DbRow = sqlx::postgres::PgRow;
type Db = sqlx::Postgres;

/// TIMESTAMPTZ maps straight to `DateTime<Utc>`.
type Ts = DateTime<Utc>;

fn ts(t: DateTime<Utc>) -> Ts {
    t
}

#[allow(clippy::unnecessary_wraps)] // Same signature as the SQLite backend.
fn from_ts(v: Ts) -> Result<DateTime<Utc>, StoreError> {
    Ok(v)
}

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// A pooled connection idle this long is pinged before it is handed out.
const PING_IF_IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// The PostgreSQL backend.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`) and
    /// migrates the schema. Concurrent starts are safe: the migrator holds
    /// an advisory lock.
    pub async fn connect(url: &str, options: PoolOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Connect("PostgreSQL (invalid URL)".into(), e))?;
        // Name the server without the password for error messages.
        let target = format!(
            "PostgreSQL at {}:{}/{}",
            connect.get_host(),
            connect.get_port(),
            connect.get_database().unwrap_or_default()
        );
        // One direct connection first: when the server is unreachable or
        // refuses us, the pool would only report a timeout, losing the
        // cause an operator needs.
        let probe = tokio::time::timeout(
            options.acquire_timeout,
            PgConnection::connect_with(&connect),
        )
        .await
        .unwrap_or_else(|_| {
            Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection timed out",
            )))
        })
        .map_err(|e| StoreError::Connect(target.clone(), e))?;
        probe
            .close()
            .await
            .map_err(|e| StoreError::Connect(target.clone(), e))?;
        let pool = PgPoolOptions::new()
            // sqlx pings every connection it hands out, by default: one
            // more network round trip before each point read's statement.
            // A connection in steady use is known to be alive; one that
            // sat idle may have been closed by a server restart or by a
            // proxy's idle timeout, so only those are pinged (and, when the
            // ping fails, replaced before the caller sees them).
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IF_IDLE_FOR {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(|e| StoreError::Connect(target, e))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate("PostgreSQL", e))?;
        Ok(Self { pool })
    }

    /// Closes every connection.
    /// Whether the database answers a trivial query (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin_read(&self) -> Result<sqlx::Transaction<'static, Db>, StoreError> {
        Ok(self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?)
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Db>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// A point read (GetProfile, LookupByPhone): one statement on the pool.
    async fn point_read(
        &self,
        select: Select<'_>,
        now: DateTime<Utc>,
    ) -> Result<Profile, StoreError> {
        load_one(&self.pool, select, now).await
    }

    /// PostgreSQL takes concurrent writers: contacts commit one by one.
    #[allow(clippy::unused_self)] // Same signature as the SQLite backend.
    fn group_commit(&self) -> Option<&super::group::GroupCommit> {
        None
    }
}

/// The advisory lock that orders the outbox (an arbitrary constant key).
const OUTBOX_LOCK: i64 = 0x7261_7070_6f72_7431; // "rapport1"

/// Serializes the last step of writers that append to the outbox.
///
/// An identity value is taken at insert time but becomes visible at
/// commit, so without this a reader could see change 11 before change 10
/// commits, move its resume token past 10 and never see it. Holding a
/// transaction-scoped lock from before the insert until the commit makes
/// ids commit in order. Writers take it as their last statement, so it is
/// held only for the insert and the commit.
async fn lock_outbox(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(OUTBOX_LOCK)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// JSON constructors of the one-statement point read (`one_profile_sql`
/// in `sql.rs`).
const JSON_ARRAY: &str = "json_build_array";
const JSON_AGG: &str = "json_agg";

super::sql::sql_store!(PostgresStore);
