//! The index: SQLite, the only place with SQL.
//!
//! * [`IndexActor`] owns the single writer connection on its own thread. Every write is a
//!   job sent to its bounded mailbox; the jobs waiting when a transaction starts are grouped
//!   into it (group commit: one fsync for many ingests), each in its own savepoint, and every
//!   caller is answered only after that transaction committed.
//! * [`IndexReader`] is a pool of read connections (WAL lets them run beside the writer),
//!   used from blocking threads.
//!
//! The schema is created by sqlx's migrator (`migrations/sqlite`, and a PostgreSQL folder
//! later). The queries themselves use rusqlite: sqlx's SQLite driver runs every statement
//! through a worker thread and costs two thread wake-ups per statement, which was measured
//! as most of the CPU of an ingest (perf, 20 statements per instance); rusqlite runs the
//! same statements directly on the index threads.

mod actor;
pub mod attachments;
mod checkpoint;
mod header;
pub mod jobs;
mod log;
pub mod read;
mod store;
pub mod write;

pub use actor::{IndexActor, IndexWriter};
pub use header::{decode_header, encode_header, HEADER_ENCODING};
pub use jobs::JobRow;
pub use log::{remotes, ChangeRow};
pub use read::{AttachmentRow, IndexReader, ResourceRow, Statistics};
pub use store::{store_instance, NewInstance, StorageLimits, StoreOutcome, StoreStatus};
pub use write::{DeleteOutcome, RemoteTable};

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// Errors of the index layer.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// No resource with that id (or of that level).
    #[error("unknown resource")]
    UnknownResource,
    /// A metadata or attachment that does not exist.
    #[error("inexistent item")]
    InexistentItem,
    /// The storage is full and MaximumStorageMode is Reject.
    #[error("the storage is full")]
    FullStorage,
    /// The revision given by If-Match is not the current one.
    #[error("revision mismatch")]
    Revision,
    /// A bad argument reached the index.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// The schema could not be created or migrated.
    #[error("cannot migrate the index: {0}")]
    Migration(String),
    /// The group transaction holding the write could not be committed.
    #[error("cannot commit to the index: {0}")]
    Commit(String),
    /// The index threads are gone (shutting down).
    #[error("the index is shutting down")]
    Unavailable,
}

/// What a connection is for: its page cache is sized for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Role {
    /// Queries: 8 MB. A large Expand reads its studies' patients, series and metadata from
    /// small covering indexes (migration 0008): twice that cache made it no faster.
    Reader,
    /// The single writer: 8 MB (inserts touch the right edge of most B-trees; a bigger cache
    /// only filled up with the pages of stability updates).
    Writer,
    /// Checkpoints only (they copy WAL frames without the page cache): 1 MB.
    Checkpointer,
}

/// Opens a connection with pacsnode's settings (WAL, full sync, foreign keys).
pub(crate) fn connect(path: &Path, role: Role) -> Result<rusqlite::Connection, IndexError> {
    use rusqlite::OpenFlags;
    let read_only = role == Role::Reader;
    let cache_kb = match role {
        Role::Reader => 8000,
        Role::Writer => 8000,
        Role::Checkpointer => 1000,
    };
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = rusqlite::Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
         PRAGMA temp_store = MEMORY; PRAGMA journal_size_limit = 4194304;",
    )?;
    conn.execute_batch(&format!("PRAGMA cache_size = -{cache_kb}"))?;
    conn.set_prepared_statement_cache_capacity(64);
    crate::find::matching::register(&conn)?;
    Ok(conn)
}

async fn migrate(path: &Path) -> Result<(), IndexError> {
    let m = |e: &dyn std::fmt::Display| IndexError::Migration(e.to_string());
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .map_err(|e| m(&e))?
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .disable_statement_logging();
    let mut conn = opts.connect().await.map_err(|e| m(&e))?;
    sqlx::migrate!("../migrations/sqlite")
        .run(&mut conn)
        .await
        .map_err(|e| m(&e))?;
    conn.close().await.map_err(|e| m(&e))
}

/// Copies the WAL into the database and empties it (at shutdown, so that the next start
/// does not replay it).
pub fn checkpoint(dir: &Path) -> Result<(), IndexError> {
    let conn = connect(&dir.join("index.sqlite"), Role::Checkpointer)?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// Opens the index in `dir` (creating and migrating it): the writer actor and a reader pool.
pub async fn open(dir: &Path, readers: usize) -> Result<(IndexWriter, IndexReader), IndexError> {
    let folder = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::create_dir_all(folder))
        .await
        .map_err(|e| IndexError::Migration(e.to_string()))?
        .map_err(|e| IndexError::Migration(e.to_string()))?;
    let path: PathBuf = dir.join("index.sqlite");
    migrate(&path).await?;
    // Opening SQLite connections blocks: off the async thread too.
    tokio::task::spawn_blocking(move || {
        let writer = IndexActor::start(connect(&path, Role::Writer)?)
            .map_err(|e| IndexError::Migration(format!("cannot start the index threads: {e}")))?;
        let reader = IndexReader::open(&path, readers)?;
        Ok((writer, reader))
    })
    .await
    .map_err(|_| IndexError::Unavailable)?
}
