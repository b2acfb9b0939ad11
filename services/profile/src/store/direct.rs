//! SQLite through rusqlite rather than sqlx's worker threads: point reads
//! on the calling thread, and the connection recorded contacts commit on.
//!
//! sqlx gives every SQLite connection a thread of its own and passes each
//! statement to it, and each row back, through channels. For the one-row
//! point read (GetProfile, LookupByPhone: a few dozen B-tree pages already
//! in the page cache or the OS's) those handoffs cost more than the read:
//! perf of the profile service on saturated inbound cycles put 51 % of its
//! samples on the sqlx worker threads, 22.8 % in the scheduler's
//! `finish_task_switch`, and 3.3 % in SQLite's own `sqlite3VdbeExec`.
//!
//! A direct read instead runs the same statement (`one_profile_sql`) on
//! the tokio worker that serves the RPC, decoded by the same code as the
//! sqlx read. It never waits: its connections have no busy timeout, so in
//! the rare case that SQLite reports the database busy (WAL recovery after
//! a crash, or another process holding an exclusive lock) it returns
//! [`Miss::Busy`] at once and the caller falls back to the sqlx pool, whose
//! connections wait out the busy timeout on their own threads, off the
//! runtime.
//!
//! The price: a read whose pages are in neither cache (the first reads of
//! a large file after a start) holds its tokio worker for the disk reads.
//! Other RPCs on that worker wait as long (the writer does not: it runs on
//! its own sqlx thread). A warm file is the steady state, so paying the
//! handoffs on every read to hide that pause is not worth it.
//!
//! Recorded contacts, a durable write on every completed call, commit in
//! groups (`store::group`) on a [`ContactWriter`]: a connection of its own
//! that a blocking thread drives a whole batch through, with a savepoint
//! per contact. Through sqlx each of a contact's four statements, and each
//! savepoint, is a round trip to the writer's thread and back; perf of
//! saturated inbound cycles put those handoffs at about a sixth of the
//! profile service's CPU. The committer still takes sqlx's one writer
//! connection from its pool for each batch, without using it, so the two
//! writers of the file take turns in the pool's queue and never wait for
//! each other's lock with sleeps (`store::sqlite`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, Params, Row};

use super::StoreError;

/// Prepared statements kept per connection: the two point reads, with
/// room to spare.
const STATEMENT_CACHE: usize = 8;

/// Why a direct read gave no answer.
#[derive(Debug)]
pub(crate) enum Miss {
    /// SQLite reported the database busy or locked; the read did not wait.
    Busy,
    /// Any other failure, as the store reports it.
    Failed(StoreError),
}

impl From<rusqlite::Error> for Miss {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Self::Busy,
            _ => Self::Failed(StoreError::Embedded(e)),
        }
    }
}

/// Read-only connections to one database file, handed out one at a time.
///
/// Reads run on the runtime's worker threads, so no more of them are ever
/// open at once than there are workers; the list keeps up to `max_idle`.
pub(crate) struct DirectReaders {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl DirectReaders {
    /// Readers of the database at `path`, which must exist (the writer
    /// creates and migrates it first). One connection is opened now, so a
    /// file that cannot be read fails at startup.
    pub(crate) fn open(path: &Path, max_idle: usize) -> Result<Self, StoreError> {
        let first = connect(path).map_err(StoreError::Embedded)?;
        Ok(Self {
            path: path.to_owned(),
            idle: Mutex::new(vec![first]),
            max_idle: max_idle.max(1),
        })
    }

    /// Runs `sql` with `params` and decodes its first row, if any.
    pub(crate) fn query_one<T>(
        &self,
        sql: &str,
        params: impl Params,
        decode: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, Miss> {
        let conn = self.take()?;
        let result = read(&conn, sql, params, decode);
        // A connection that failed for a reason other than a busy database
        // is closed rather than trusted with the next read.
        if matches!(result, Ok(_) | Err(Miss::Busy)) {
            self.give(conn);
        }
        result
    }

    fn take(&self) -> Result<Connection, Miss> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => Ok(connect(&self.path)?),
        }
    }

    fn give(&self, conn: Connection) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }
}

fn read<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, Miss> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    match rows.next()? {
        Some(row) => decode(row).map(Some).map_err(|e| match e {
            StoreError::Embedded(e) => Miss::from(e),
            other => Miss::Failed(other),
        }),
        None => Ok(None),
    }
}

/// A read-only connection that never waits for a lock and maps nothing
/// (see `MMAP_SIZE` in `store::sqlite` for why point readers do not).
fn connect(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::ZERO)?;
    conn.pragma_update(None, "query_only", true)?;
    conn.pragma_update(None, "mmap_size", 0)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// The error of a direct write as the store reports it: a busy or locked
/// database (another process held the write lock past the busy timeout)
/// is contention, which callers may retry, as it is through sqlx.
pub(crate) fn write_error(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Contention(sqlx::Error::Protocol(format!("the contact writer: {e}")))
        }
        _ => StoreError::Embedded(e),
    }
}

/// Durability of a [`ContactWriter`]'s commits, as the sqlx writer's.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Durability {
    /// `synchronous=FULL`: a commit survives a power cut.
    Full,
    /// `synchronous=NORMAL`, for bulk loads (see `PoolOptions::bulk_load`).
    Normal,
}

/// The connection recorded contacts are committed on; one batch at a time.
pub(crate) struct ContactWriter {
    conn: Mutex<Connection>,
}

impl ContactWriter {
    /// A writer of the database at `path`, which must exist (the sqlx
    /// writer creates it, migrates it and puts it in WAL mode first, so
    /// readers never wait for this writer). It waits up to
    /// `busy` for another process's write lock, and maps up to `mmap_size`
    /// bytes of the file, as the sqlx writer does.
    pub(crate) fn open(
        path: &Path,
        durability: Durability,
        busy: Duration,
        mmap_size: &str,
    ) -> Result<Self, StoreError> {
        let open = || -> Result<Connection, rusqlite::Error> {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(busy)?;
            conn.pragma_update(
                None,
                "synchronous",
                match durability {
                    Durability::Full => "FULL",
                    Durability::Normal => "NORMAL",
                },
            )?;
            conn.pragma_update(None, "foreign_keys", true)?;
            conn.pragma_update(None, "mmap_size", mmap_size)?;
            conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            Ok(conn)
        };
        Ok(Self {
            conn: Mutex::new(open().map_err(StoreError::Embedded)?),
        })
    }

    /// Runs `write` on the connection. Blocking: call it off the runtime.
    pub(crate) fn with<T>(&self, write: impl FnOnce(&mut Connection) -> T) -> T {
        let mut conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        write(&mut conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).expect("open");
        conn.pragma_update(None, "journal_mode", "wal")
            .expect("wal");
        conn.execute_batch(
            "CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER); INSERT INTO t VALUES ('a', 7);",
        )
        .expect("schema");
        (dir, path)
    }

    fn value(readers: &DirectReaders, key: &str) -> Result<Option<i64>, Miss> {
        readers.query_one(
            "SELECT v FROM t WHERE k = $1",
            rusqlite::named_params! {"$1": key},
            |row| row.get::<_, i64>(0).map_err(StoreError::Embedded),
        )
    }

    #[test]
    fn reads_a_row_and_reports_none_for_no_row() {
        let (_dir, path) = database();
        let readers = DirectReaders::open(&path, 2).expect("readers");
        assert_eq!(value(&readers, "a").expect("read"), Some(7));
        assert_eq!(value(&readers, "b").expect("read"), None);
    }

    #[test]
    fn a_locked_database_is_busy_at_once_and_the_connection_is_kept() {
        let (_dir, path) = database();
        let readers = DirectReaders::open(&path, 2).expect("readers");
        // An exclusive lock in WAL mode keeps every other connection out,
        // readers included.
        let holder = Connection::open(&path).expect("open");
        holder
            .pragma_update(None, "locking_mode", "exclusive")
            .expect("exclusive");
        holder
            .execute_batch("BEGIN EXCLUSIVE; UPDATE t SET v = 8;")
            .expect("lock");
        let started = std::time::Instant::now();
        assert!(matches!(value(&readers, "a"), Err(Miss::Busy)));
        // No busy timeout: the read did not sleep waiting for the lock.
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(readers.idle.lock().expect("idle").len(), 1);
        drop(holder);
        assert_eq!(value(&readers, "a").expect("read"), Some(7));
    }

    #[test]
    fn readers_cannot_write() {
        let (_dir, path) = database();
        let readers = DirectReaders::open(&path, 1).expect("readers");
        let wrote = readers.query_one("UPDATE t SET v = 9 RETURNING v", [], |row| {
            row.get::<_, i64>(0).map_err(StoreError::Embedded)
        });
        assert!(
            matches!(wrote, Err(Miss::Failed(StoreError::Embedded(_)))),
            "{wrote:?}"
        );
    }

    #[test]
    fn a_missing_file_fails_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(DirectReaders::open(&dir.path().join("absent.db"), 1).is_err());
    }
}
