//! The index: SQLite through sqlx, the only place with SQL.
//!
//! * [`IndexActor`] owns the single writer connection. Every write is a job sent to it as a
//!   message; jobs that arrive while a commit is in flight are grouped into the next
//!   transaction (group commit: one fsync for many ingests), each in its own savepoint, and
//!   each caller is answered only after that transaction committed.
//! * [`IndexReader`] is a pool of read connections (WAL lets them run beside the writer);
//!   handlers query it directly, because reads need no ordering.

mod actor;
mod read;
pub mod write;

pub use actor::{IndexActor, IndexWriter, Write, WriteJob};
pub use read::{AttachmentRow, ChangeRow, IndexReader, ResourceRow, Statistics};
pub use write::{
    DeleteOutcome, NewInstance, RemoteTable, StorageLimits, StoreOutcome, StoreStatus,
};

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqliteConnection};

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
    Database(#[from] sqlx::Error),
    /// The writer actor is gone (shutting down).
    #[error("the index is shutting down")]
    Unavailable,
}

fn options(path: &Path) -> Result<SqliteConnectOptions, sqlx::Error> {
    Ok(
        SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            .pragma("cache_size", "-16000")
            .pragma("temp_store", "memory")
            .disable_statement_logging(),
    )
}

/// Opens the index in `dir` (creating and migrating it): the writer connection and a reader.
pub async fn open(dir: &Path, readers: u32) -> Result<(SqliteConnection, IndexReader), IndexError> {
    std::fs::create_dir_all(dir).map_err(|e| IndexError::BadRequest(e.to_string()))?;
    let path = dir.join("index.sqlite");
    let mut writer = options(&path)?.connect().await?;
    sqlx::migrate!("../migrations/sqlite")
        .run(&mut writer)
        .await
        .map_err(|e| IndexError::Database(e.into()))?;
    let pool = SqlitePoolOptions::new()
        .max_connections(readers.max(1))
        .min_connections(1)
        .connect_with(options(&path)?.read_only(true))
        .await?;
    Ok((writer, IndexReader::new(pool)))
}
