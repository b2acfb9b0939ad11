//! The SQLite backend: an embedded file, created with its schema on first
//! start. The default, so a single binary runs with zero setup.
//!
//! Connections use WAL (readers never block the writer), foreign keys on,
//! `synchronous=FULL` (a committed write survives a power cut, not only a
//! crash) and a busy timeout. SQLite has one writer at a time, so the store
//! holds one connection for writes, which queue for it in the pool instead
//! of spinning on SQLITE_BUSY with sleeps in between (the committer of
//! recorded contacts writes on a connection of its own, and takes its turn
//! in the same queue: see `commit_contacts`), and read pools (point
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

use tokio::sync::mpsc;

use super::direct::{self, ContactWriter, DirectReaders, Durability, Miss};
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
    /// Where recorded contacts go to be committed in groups on the
    /// `ContactWriter` of a file database (`store::direct`). None for an
    /// in-memory database, whose one connection commits each contact in a
    /// transaction of its own.
    group: Option<GroupCommit>,
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
        let contacts = ContactWriter::open(
            connect.get_filename(),
            if bulk {
                Durability::Normal
            } else {
                Durability::Full
            },
            BUSY_TIMEOUT,
            MMAP_SIZE,
        )?;
        let scans = readers
            .connect_with(connect)
            .await
            .map_err(|e| StoreError::Connect(target, e))?;
        let mut store = Self::with_committer(pool, scans, writer, Some(Arc::new(contacts)));
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
        Ok(Self::with_committer(pool, scans, writer, None))
    }

    /// The store, with its contact committer running on `contacts`, if
    /// given, until the last handle to the store is dropped.
    fn with_committer(
        pool: SqlitePool,
        scans: SqlitePool,
        writer: SqlitePool,
        contacts: Option<Arc<ContactWriter>>,
    ) -> Self {
        let group = contacts.map(|contacts| {
            let (group, jobs) = GroupCommit::channel();
            tokio::spawn(commit_contacts(writer.clone(), contacts, jobs));
            group
        });
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

    /// Closes the sqlx pools, the writer last. Contacts still queued are
    /// answered as unavailable. The direct readers and the contact writer
    /// close with the last handle to the store; the last connection to
    /// close checkpoints the WAL.
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
        self.group.as_ref()
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

/// The committer of a file database: each batch is one `BEGIN IMMEDIATE`
/// transaction on the [`ContactWriter`], run on a blocking thread, with a
/// savepoint per contact (a savepoint costs no handoff there), so a
/// contact that fails is rolled back alone and answered with its error.
///
/// While a batch is written the committer holds the sqlx writer's one
/// connection, unused: sqlx's other writes queue behind the batch in the
/// pool, as they would behind the batch written through sqlx, instead of
/// meeting its lock and sleeping in SQLite's busy handler.
async fn commit_contacts(
    writer: SqlitePool,
    contacts: Arc<ContactWriter>,
    mut jobs: mpsc::Receiver<group::Job>,
) {
    while let Some(batch) = group::next_batch(&mut jobs).await {
        let turn = match writer.acquire().await {
            Ok(turn) => turn,
            Err(e) => {
                answer(batch, &Err(StoreError::from(e)), Vec::new());
                continue;
            }
        };
        let contacts = contacts.clone();
        let written = tokio::task::spawn_blocking(move || {
            let (committed, results) = contacts.with(|conn| write_batch(conn, &batch));
            (batch, committed, results)
        })
        .await;
        drop(turn);
        match written {
            Ok((batch, committed, results)) => answer(batch, &committed, results),
            // The batch's replies were dropped with it: each of its callers
            // is told the store is unavailable (`group::closed`).
            Err(e) => tracing::error!(error = %e, "the contact writer failed"),
        }
    }
}

/// Answers each contact of a batch: its own result if the batch committed,
/// or if it failed on its own; otherwise the commit's error.
fn answer(
    batch: Vec<group::Job>,
    committed: &Result<(), StoreError>,
    results: Vec<Result<bool, StoreError>>,
) {
    let mut results = results.into_iter();
    for job in batch {
        let result = match (committed, results.next()) {
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

/// Writes `batch` in one transaction on `conn`, a savepoint per contact:
/// the commit's outcome and each contact's own result.
fn write_batch(
    conn: &mut rusqlite::Connection,
    batch: &[group::Job],
) -> (Result<(), StoreError>, Vec<Result<bool, StoreError>>) {
    let mut results = Vec::with_capacity(batch.len());
    let committed = (|| {
        let mut tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(direct::write_error)?;
        for job in batch {
            let mut savepoint = tx.savepoint().map_err(direct::write_error)?;
            match record_contact_direct(&savepoint, job) {
                Ok(created) => {
                    savepoint.commit().map_err(direct::write_error)?;
                    results.push(Ok(created));
                }
                Err(e) => {
                    // Undo this contact's writes, then release the (now
                    // empty) savepoint. Both are checked rather than left
                    // to the savepoint's drop, which ignores errors and
                    // does not release: if the writes cannot be undone,
                    // nothing of the batch may commit.
                    savepoint.rollback().map_err(direct::write_error)?;
                    savepoint.commit().map_err(direct::write_error)?;
                    results.push(Err(e));
                }
            }
        }
        tx.commit().map_err(direct::write_error)
    })();
    (committed, results)
}

/// `record_contact_in` on a direct connection: the same statements
/// (`sql_store!`'s constants) with the same parameters.
fn record_contact_direct(
    conn: &rusqlite::Connection,
    job: &group::Job,
) -> Result<bool, StoreError> {
    let (customer_id, contact) = (job.customer_id.as_str(), &job.contact);
    let mut exists = conn
        .prepare_cached(CUSTOMER_EXISTS_SQL)
        .map_err(direct::write_error)?;
    if !exists
        .exists(rusqlite::named_params! {"$1": customer_id})
        .map_err(direct::write_error)?
    {
        return Err(StoreError::CustomerNotFound);
    }
    let inserted = conn
        .prepare_cached(INSERT_CONTACT_SQL)
        .and_then(|mut insert| {
            insert.execute(rusqlite::named_params! {
                "$1": customer_id,
                "$2": contact.contact_id,
                "$3": codec::channel(contact.channel),
                "$4": codec::direction(contact.direction),
                "$5": ts(contact.started_at),
                "$6": contact.ivr_selection,
                "$7": i64::from(contact.queue_wait_s),
                "$8": i64::from(contact.handle_s),
                "$9": contact.agent_id,
                "$10": contact.outcome.map(codec::outcome),
                "$11": contact.complaint,
                "$12": contact.escalation_threat,
                "$13": contact.csat.map(i64::from),
                "$14": i64::from(contact.solutions_offered),
                "$15": i64::from(contact.solutions_rejected),
                "$16": contact.compensation_asked,
                "$17": contact.compensation_granted,
                "$18": contact.notes,
                "$19": ts(job.now),
            })
        })
        .map_err(direct::write_error)?;
    let created = inserted == 1;
    if created {
        conn.prepare_cached(COUNT_CONTACT_SQL)
            .and_then(|mut count| {
                count.execute(rusqlite::named_params! {
                    "$1": customer_id,
                    "$2": ts(contact.started_at),
                })
            })
            .map_err(direct::write_error)?;
        // `lock_outbox` is nothing for SQLite: the write lock orders the
        // change ids already.
        conn.prepare_cached(INSERT_CHANGE_SQL)
            .and_then(|mut change| {
                change.execute(rusqlite::named_params! {
                    "$1": customer_id,
                    "$2": codec::change_kind(contact_change(contact)),
                    "$3": contact.contact_id,
                    "$4": ts(job.now),
                })
            })
            .map_err(direct::write_error)?;
    }
    Ok(created)
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

    fn contact(id: &str) -> crate::model::Contact {
        crate::model::Contact {
            contact_id: id.into(),
            channel: crate::model::Channel::Voice,
            direction: crate::model::Direction::Inbound,
            started_at: now(),
            ivr_selection: "cards".into(),
            queue_wait_s: 3,
            handle_s: 120,
            agent_id: "A-1".into(),
            outcome: None,
            complaint: false,
            escalation_threat: false,
            csat: Some(4),
            solutions_offered: 1,
            solutions_rejected: 0,
            compensation_asked: false,
            compensation_granted: false,
            notes: String::new(),
        }
    }

    /// Contacts of a file database commit on the contact writer, not
    /// through sqlx: with sqlx's writer connection made read-only, a
    /// contact is still recorded while a write through sqlx is refused.
    #[tokio::test]
    async fn contacts_of_a_file_database_commit_on_the_contact_writer() {
        let (store, _dir) = store().await;
        sqlx::query("PRAGMA query_only = ON")
            .execute(&store.writer)
            .await
            .expect("read-only writer");
        assert!(
            store
                .upsert_customer(&input("C-2", "13900139002"), now())
                .await
                .is_err(),
            "sqlx's writer still writes"
        );
        assert!(
            store
                .record_contact("C-1", &contact("call-1"), now())
                .await
                .expect("recorded")
        );
        let profile = store.get_profile("C-1", now()).await.expect("get");
        assert_eq!(profile.summary.total_contacts, 1);
    }

    /// The two writers of the file take turns through the writer pool, so
    /// neither meets the other's lock. The contact writer here has no busy
    /// timeout at all: a batch that overlapped a sqlx write would fail at
    /// once with contention.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_contact_writer_and_sqlx_writes_never_meet_on_the_lock() {
        let (base, dir) = store().await;
        let impatient = ContactWriter::open(
            &dir.path().join("p.db"),
            Durability::Full,
            Duration::ZERO,
            MMAP_SIZE,
        )
        .expect("writer");
        let store = SqliteStore::with_committer(
            base.pool.clone(),
            base.scans.clone(),
            base.writer.clone(),
            Some(Arc::new(impatient)),
        );
        let contacts = (0..200).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .record_contact("C-1", &contact(&format!("call-{i}")), now())
                    .await
            })
        });
        let upserts = (0..40).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .upsert_customer(&input(&format!("C-U{i}"), &format!("1390013{i:04}")), now())
                    .await
                    .map(|_| true)
            })
        });
        let (contacts, upserts) = tokio::join!(
            futures::future::join_all(contacts),
            futures::future::join_all(upserts)
        );
        for result in contacts.into_iter().chain(upserts) {
            assert!(result.expect("task").expect("write"));
        }
        let profile = store.get_profile("C-1", now()).await.expect("get");
        assert_eq!(profile.summary.total_contacts, 200);
    }
}
