//! The SQLite backend: an embedded file, created with its schema on first
//! start. The default, so a single binary runs with zero setup.
//!
//! Connections use WAL (readers never block the writer), foreign keys on,
//! `synchronous=FULL` (a committed write survives a power cut, not only a
//! crash) and a busy timeout. SQLite has one writer at a time, so the store
//! holds one connection for writes, which queue for it in the pool instead
//! of spinning on SQLITE_BUSY with sleeps in between, and read pools (point
//! reads, scans), whose connections see the committed state through WAL
//! snapshots without ever waiting for the writer. Write transactions start
//! with `BEGIN IMMEDIATE`, so a transaction that reads first and writes
//! later never fails on a lock upgrade (another process, e.g. the
//! importer, may hold the write lock). The writer and the readers of
//! multi-row transactions map the file into memory (`mmap_size`), so a
//! page already in the OS cache costs no system call; point readers do
//! not, because every commit makes a reader unmap it (see `MMAP_SIZE`).
//!
//! Point reads (GetProfile, LookupByPhone) of a file database skip sqlx:
//! they run on the calling thread through `store::direct`, falling back to
//! the point-read pool only when SQLite reports the database busy.
//!
//! [`PoolOptions::bulk_load`] (the importer) relaxes durability to
//! `synchronous=NORMAL` — a power cut may lose the last transactions but
//! never corrupts the file, and the importer's checkpoint replays them —
//! and gives the writer a large page cache.

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use sqlx::Acquire as _;
use tokio::sync::mpsc;

use super::direct::{DirectReaders, Miss};
use super::group::{self, GroupCommit};
use super::{PoolOptions, StoreError};

type DbRow = sqlx::sqlite::SqliteRow;
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

/// Bytes of the file the writer and the scan readers map into memory,
/// 64 GiB: the whole file of any realistic center. SQLite caps it at its
/// compile-time maximum, which `.cargo/config.toml` raises from the default
/// 2 GiB.
///
/// Point readers map nothing. A reader whose next transaction finds the
/// WAL changed (any commit since its last read: hundreds a second while
/// calls complete) drops its page cache and unmaps its whole mapping, then
/// faults every page it touches back in. For a point read of a few dozen
/// pages that costs more than reading them: perf showed the unmapping at
/// 5.9 % of the mesh's CPU on saturated cycles, with TLB shootdowns and
/// page faults besides. A scan (an export page of hundreds of profiles)
/// reads enough pages that the mapping pays for itself: the due-index
/// rebuild of a million customers took 65.0 s through `pread` and 56.4 s
/// mapped. The writer's own commits never invalidate its mapping.
const MMAP_SIZE: &str = "68719476736";

/// Page cache of the import writer, in KiB (negative: `cache_size` counts
/// KiB, not pages): the indexes' working set of a large load stays in it.
const BULK_CACHE_KIB: &str = "-524288";

/// The SQLite backend.
#[derive(Clone)]
pub struct SqliteStore {
    /// Point readers (GetProfile, LookupByPhone) on the calling thread
    /// (`store::direct`); none for an in-memory database, which only its
    /// one sqlx connection can see.
    direct: Option<Arc<DirectReaders>>,
    /// Point readers through sqlx, unmapped (see `MMAP_SIZE`): the fallback
    /// of a busy direct read, and the short reads besides.
    pool: SqlitePool,
    /// Readers of transactions over many rows (exports, lists, the change
    /// feed), mapped.
    scans: SqlitePool,
    /// The one writer (the same pool as `pool` for an in-memory database,
    /// which has exactly one connection).
    writer: SqlitePool,
    /// Where recorded contacts go to be committed in groups on `writer`.
    group: GroupCommit,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url`, e.g.
    /// `sqlite://rapport-profile.db`, and migrates it.
    pub async fn connect(url: &str, options: PoolOptions) -> Result<Self, StoreError> {
        let bulk = options.bulk_load;
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Connect("SQLite (invalid URL)".into(), e))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if bulk {
                SqliteSynchronous::Normal
            } else {
                SqliteSynchronous::Full
            })
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("mmap_size", MMAP_SIZE);
        let target = format!("SQLite database {}", connect.get_filename().display());
        if url.contains(":memory:") || url.contains("mode=memory") {
            // An in-memory database lives as long as one connection to it:
            // keep exactly one, forever, for reads and writes alike.
            let pool = Self::pool_options()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await
                .map_err(|e| StoreError::Connect(target, e))?;
            return Self::migrated(pool.clone(), pool.clone(), pool).await;
        }
        let writer_options = if bulk {
            connect.clone().pragma("cache_size", BULK_CACHE_KIB)
        } else {
            connect.clone()
        };
        // The writer first: it creates the file and migrates the schema
        // before any reader opens it.
        // Kept open: while one connection is, the WAL and its index stay,
        // so readers never reopen a database being checkpointed away.
        let writer = Self::pool_options()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(writer_options)
            .await
            .map_err(|e| StoreError::Connect(target.clone(), e))?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| StoreError::Migrate("SQLite", e))?;
        // Both read pools open connections as they are needed, up to the
        // configured number each.
        let readers = Self::pool_options()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout);
        let pool = readers
            .clone()
            .connect_with(connect.clone().pragma("mmap_size", "0"))
            .await
            .map_err(|e| StoreError::Connect(target.clone(), e))?;
        let direct = DirectReaders::open(connect.get_filename(), options.max_connections as usize)?;
        let scans = readers
            .connect_with(connect)
            .await
            .map_err(|e| StoreError::Connect(target, e))?;
        let mut store = Self::with_committer(pool, scans, writer);
        store.direct = Some(Arc::new(direct));
        Ok(store)
    }

    /// What every pool of this store shares. sqlx pings a connection each
    /// time the pool hands it out, by default. A SQLite connection is a
    /// file handle on a worker thread, not a socket a server can close, so
    /// the ping finds nothing; it only cost every point read one more
    /// round trip to that thread and back before its statement.
    fn pool_options() -> SqlitePoolOptions {
        SqlitePoolOptions::new().test_before_acquire(false)
    }

    async fn migrated(
        pool: SqlitePool,
        scans: SqlitePool,
        writer: SqlitePool,
    ) -> Result<Self, StoreError> {
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| StoreError::Migrate("SQLite", e))?;
        Ok(Self::with_committer(pool, scans, writer))
    }

    /// The store, with its contact committer running on `writer` until the
    /// last handle to the store is dropped.
    fn with_committer(pool: SqlitePool, scans: SqlitePool, writer: SqlitePool) -> Self {
        let (group, jobs) = GroupCommit::channel();
        tokio::spawn(commit_contacts(writer.clone(), jobs));
        Self {
            direct: None,
            pool,
            scans,
            writer,
            group,
        }
    }

    /// A point read (GetProfile, LookupByPhone): direct when it can be,
    /// else on the sqlx pool (see `store::direct`).
    async fn point_read(
        &self,
        select: Select<'_>,
        now: DateTime<Utc>,
    ) -> Result<Profile, StoreError> {
        if let Some(direct) = &self.direct {
            let (sql, key) = point_statement(select);
            let ([now_ts, since_90d, since_7d, since_30d], [recent, waits, events, affinity]) =
                point_params(now);
            let params = rusqlite::named_params! {
                "$1": key, "$2": now_ts, "$3": since_90d, "$4": since_7d, "$5": since_30d,
                "$6": recent, "$7": waits, "$8": events, "$9": affinity,
            };
            match direct.query_one(sql, params, |row| profile_from_row(row)) {
                Ok(Some(profile)) => return Ok(profile),
                Ok(None) => return Err(StoreError::CustomerNotFound),
                Err(Miss::Failed(e)) => return Err(e),
                Err(Miss::Busy) => {
                    metrics::counter!("rapport_profile_direct_read_busy_total").increment(1);
                }
            }
        }
        load_one(&self.pool, select, now).await
    }

    /// Whether the database answers a trivial query (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection (the writer last, checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
        self.scans.close().await;
        self.writer.close().await;
    }

    async fn begin_read(&self) -> Result<sqlx::Transaction<'static, Db>, StoreError> {
        Ok(self.scans.begin().await?)
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Db>, StoreError> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    fn group_commit(&self) -> Option<&GroupCommit> {
        Some(&self.group)
    }
}

/// Change ids already become visible in id order: SQLite has one writer
/// at a time (`BEGIN IMMEDIATE`), so nothing needs locking.
#[allow(clippy::unused_async)] // Same signature as the PostgreSQL backend.
async fn lock_outbox(_: &mut sqlx::SqliteConnection) -> Result<(), StoreError> {
    Ok(())
}

/// JSON constructors of the one-statement point read (`one_profile_sql`
/// in `sql.rs`).
const JSON_ARRAY: &str = "json_array";
const JSON_AGG: &str = "json_group_array";

/// The cells of a direct point read's row (`store::direct`).
impl Cells for rusqlite::Row<'_> {
    fn text(&self, column: &str) -> Result<String, StoreError> {
        self.get(column).map_err(StoreError::Embedded)
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        self.get(column).map_err(StoreError::Embedded)
    }
    fn int(&self, column: &str) -> Result<i64, StoreError> {
        self.get(column).map_err(StoreError::Embedded)
    }
    fn flag(&self, column: &str) -> Result<bool, StoreError> {
        self.get(column).map_err(StoreError::Embedded)
    }
    fn ts(&self, column: &str) -> Result<Ts, StoreError> {
        self.get(column).map_err(StoreError::Embedded)
    }
    fn opt_ts(&self, column: &str) -> Result<Option<Ts>, StoreError> {
        self.get(column).map_err(StoreError::Embedded)
    }
}

super::sql::sql_store!(SqliteStore);

/// The committer of `store::group`: each batch is one `BEGIN IMMEDIATE`
/// transaction. A contact whose own writes fail is rolled back alone and
/// answered with its error; the rest are answered after the commit, with
/// its error if it fails.
///
/// Contacts are first written without savepoints: a savepoint and its
/// release are two of a contact's six statements, each a round trip to
/// sqlx's worker thread. The only error that path tolerates is an unknown
/// customer, found by a read before any write. Any other error may come
/// after some of that contact's writes, so the whole batch is rolled back
/// and written again with one savepoint per contact.
async fn commit_contacts(writer: SqlitePool, mut jobs: mpsc::Receiver<group::Job>) {
    while let Some(batch) = group::next_batch(&mut jobs).await {
        let (committed, results) = match write_batch(&writer, &batch).await {
            Ok(done) => done,
            Err(Unclean) => {
                metrics::counter!("rapport_profile_group_commit_replays_total").increment(1);
                let mut results = Vec::with_capacity(batch.len());
                let committed = write_batch_savepoints(&writer, &batch, &mut results).await;
                (committed, results)
            }
        };
        let mut results = results.into_iter();
        for job in batch {
            let result = match (&committed, results.next()) {
                (Ok(()), Some(r)) => r,
                // A contact that failed on its own keeps its own error.
                (Err(_), Some(Err(own))) => Err(own),
                (Err(e), _) => Err(group::commit_failed(e)),
                (Ok(()), None) => Err(group::commit_failed(&StoreError::Corrupt(
                    "a contact of the batch was not written".into(),
                ))),
            };
            // The caller may have given up (deadline); its contact is
            // written all the same.
            let _ = job.reply.send(result);
        }
    }
}

/// A batch written without savepoints met an error other than an unknown
/// customer; nothing of it was committed.
struct Unclean;

/// Writes `batch` in one transaction without savepoints (see
/// `commit_contacts`): the commit's outcome and each contact's own result.
/// `record_contact_in` reports an unknown customer only from its first
/// statement, a read, so such a contact wrote nothing and the others can
/// commit.
async fn write_batch(
    writer: &SqlitePool,
    batch: &[group::Job],
) -> Result<(Result<(), StoreError>, Vec<Result<bool, StoreError>>), Unclean> {
    // A transaction that cannot start wrote nothing: every contact gets
    // its error now, rather than waiting out the busy timeout again in a
    // replay.
    let mut tx = match writer.begin_with("BEGIN IMMEDIATE").await {
        Ok(tx) => tx,
        Err(e) => return Ok((Err(StoreError::from(e)), Vec::new())),
    };
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        match record_contact_in(&mut tx, &job.customer_id, &job.contact, job.now).await {
            Ok(created) => results.push(Ok(created)),
            Err(StoreError::CustomerNotFound) => results.push(Err(StoreError::CustomerNotFound)),
            // Dropping the transaction rolls it back.
            Err(_) => return Err(Unclean),
        }
    }
    Ok((tx.commit().await.map_err(StoreError::from), results))
}

/// Writes `batch` in one transaction with a savepoint per contact, pushing
/// each contact's own result into `results`; returns the transaction's.
async fn write_batch_savepoints(
    writer: &SqlitePool,
    batch: &[group::Job],
    results: &mut Vec<Result<bool, StoreError>>,
) -> Result<(), StoreError> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    for job in batch {
        let mut savepoint = tx.begin().await?;
        match record_contact_in(&mut savepoint, &job.customer_id, &job.contact, job.now).await {
            Ok(created) => {
                savepoint.commit().await?;
                results.push(Ok(created));
            }
            Err(e) => {
                savepoint.rollback().await?;
                results.push(Err(e));
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use rapport_kit::phone::{self, Region};

    use super::*;
    use crate::model::PhoneInput;
    use crate::store::Store as _;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000, 0).expect("valid")
    }

    fn input(id: &str, number: &str) -> CustomerInput {
        CustomerInput {
            customer_id: id.into(),
            name: "Ana Lima".into(),
            form_of_address: "Ms Lima".into(),
            locale: "pt-BR".into(),
            language: "pt".into(),
            dialect: String::new(),
            region: "SP".into(),
            city: "São Paulo".into(),
            time_zone: "America/Sao_Paulo".into(),
            age_band: "35-44".into(),
            occupation: "engineer".into(),
            assets: 10,
            contribution: 20,
            potential_value: 30,
            segment: "retail".into(),
            declared_needs: Vec::new(),
            public_influence: PublicInfluence::default(),
            phones: vec![PhoneInput {
                number: phone::normalize(number, Region::CN).expect("phone"),
                label: "mobile".into(),
            }],
            tags: None,
            preferences: Preferences::default(),
            consent: Consent::default(),
        }
    }

    async fn store() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let store = SqliteStore::connect(&url, PoolOptions::default())
            .await
            .expect("store");
        store
            .upsert_customer(&input("C-1", "13900139001"), now())
            .await
            .expect("upsert");
        (store, dir)
    }

    #[tokio::test]
    async fn point_reads_of_a_file_database_do_not_use_the_sqlx_pool() {
        let (store, _dir) = store().await;
        let through_sqlx = load_one(&store.pool, Select::Id("C-1"), now())
            .await
            .expect("sqlx");
        store.pool.close().await;
        assert_eq!(
            store.get_profile("C-1", now()).await.expect("direct"),
            through_sqlx
        );
        let number = phone::normalize("13900139001", Region::CN).expect("phone");
        assert_eq!(
            store.lookup_by_phone(&number, now()).await.expect("direct"),
            through_sqlx
        );
        assert!(matches!(
            store.get_profile("C-2", now()).await,
            Err(StoreError::CustomerNotFound)
        ));
    }

    /// A busy direct read falls back to the sqlx pool. The direct readers
    /// here point at a second database held under an exclusive lock (with
    /// the store's own file open elsewhere, no connection can take one).
    #[tokio::test]
    async fn a_busy_direct_read_falls_back_to_the_sqlx_pool() {
        let (mut store, dir) = store().await;
        let locked = dir.path().join("locked.db");
        let holder = rusqlite::Connection::open(&locked).expect("open");
        holder
            .pragma_update(None, "journal_mode", "wal")
            .expect("wal");
        holder
            .pragma_update(None, "locking_mode", "exclusive")
            .expect("exclusive");
        holder
            .execute_batch("CREATE TABLE t (v INTEGER); BEGIN EXCLUSIVE; INSERT INTO t VALUES (1);")
            .expect("lock");
        store.direct = Some(Arc::new(DirectReaders::open(&locked, 1).expect("readers")));
        let profile = store.get_profile("C-1", now()).await.expect("fell back");
        assert_eq!(profile.customer.name, "Ana Lima");
        drop(holder);
    }
}
