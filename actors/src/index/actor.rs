//! [`IndexActor`]: the single writer, on its own thread, with group commit.
//!
//! Durability: a batch commits with `synchronous = FULL` (the WAL is fsynced) unless every job
//! in it is an instance store, which commits with `synchronous = NORMAL` (the WAL is written,
//! not fsynced) while the stored file is fsynced beside it; the folders new files go to are
//! recorded durably, so the start-up scan puts the index back in line with the files after a
//! power loss (see [`crate::recovery`]). A `kill -9` loses nothing either way. Checkpoints
//! run on their own thread ([`super::checkpoint`]).

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::checkpoint::Checkpointer;
use super::IndexError;

/// Called once the transaction holding the job committed (or failed).
type Done = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A write: runs inside the group transaction, returns how to answer its caller.
struct Job {
    run: Box<dyn FnOnce(&Connection) -> Done + Send>,
    /// An instance store, whose file is fsynced: the WAL need not be (see the module doc).
    lazy_sync: bool,
}

/// The writer actor: its mailbox is bounded; it owns the only writable connection.
pub struct IndexActor {
    /// Declared first: dropped before the checkpointer its WAL hook points into.
    conn: Connection,
    checkpointer: Checkpointer,
    mailbox: mpsc::Receiver<Job>,
    max_batch: usize,
    /// The connection's current `synchronous` setting: FULL (true) or NORMAL.
    full_sync: bool,
}

/// A cloneable handle to send writes to the [`IndexActor`] and await their commit.
#[derive(Clone)]
pub struct IndexWriter(mpsc::Sender<Job>);

impl IndexActor {
    /// Starts the actor on its own thread.
    pub fn start(conn: Connection) -> std::io::Result<IndexWriter> {
        let (tx, rx) = mpsc::channel(1024);
        let path = conn.path().unwrap_or_default().into();
        let checkpointer = Checkpointer::install(&conn, path)?;
        let actor = IndexActor {
            conn,
            checkpointer,
            mailbox: rx,
            max_batch: 256,
            full_sync: true,
        };
        std::thread::Builder::new()
            .name("index-writer".into())
            .spawn(move || actor.run())?;
        Ok(IndexWriter(tx))
    }

    fn run(mut self) {
        while let Some(first) = self.mailbox.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match self.mailbox.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
        tracing::debug!("index writer stopped");
    }

    fn set_full_sync(&mut self, full: bool) {
        if full != self.full_sync {
            let pragma = if full { "FULL" } else { "NORMAL" };
            match self
                .conn
                .execute_batch(&format!("PRAGMA synchronous = {pragma}"))
            {
                Ok(()) => self.full_sync = full,
                Err(e) => tracing::error!("cannot set synchronous = {pragma}: {e}"),
            }
        }
    }

    /// Runs a batch of jobs in one transaction, commits once, then answers every job.
    fn commit(&mut self, batch: Vec<Job>) {
        self.set_full_sync(batch.iter().any(|j| !j.lazy_sync));
        if let Err(e) = self.conn.execute_batch("BEGIN IMMEDIATE") {
            tracing::error!("cannot start a transaction: {e}");
            let _ = self.conn.execute_batch("ROLLBACK; BEGIN IMMEDIATE");
        }
        let dones: Vec<Done> = batch.into_iter().map(|job| (job.run)(&self.conn)).collect();
        let result = self.conn.execute_batch("COMMIT").map_err(|e| e.to_string());
        if result.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        // Answered before any checkpoint work: the callers' next requests are prepared
        // (parsed, written, fsynced) while the writer copies the tail of the WAL.
        for done in dones {
            done(result.clone());
        }
        if result.is_ok() {
            self.checkpointer.committed(&self.conn);
        }
    }
}

impl IndexWriter {
    /// Runs `f` in the next group transaction (in its own savepoint) and waits for the commit.
    pub async fn write<R, F>(&self, f: F) -> Result<R, IndexError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, IndexError> + Send + 'static,
    {
        let (job, rx) = job(f, false);
        self.0
            .send(job)
            .await
            .map_err(|_| IndexError::Unavailable)?;
        rx.await.map_err(|_| IndexError::Unavailable)?
    }

    /// The same as [`IndexWriter::write`], from a blocking thread (never an async one).
    pub fn write_blocking<R, F>(&self, f: F) -> Result<R, IndexError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, IndexError> + Send + 'static,
    {
        self.run_blocking(f, false)
    }

    /// Sends the record of a stored instance to the next group commit, from a blocking
    /// thread, without waiting: the caller fsyncs the file meanwhile, then waits with
    /// [`Pending::wait`]. The commit may leave the WAL unsynced (see the module doc).
    pub fn store_start<R, F>(&self, f: F) -> Result<Pending<R>, IndexError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, IndexError> + Send + 'static,
    {
        let (job, rx) = job(f, true);
        self.0
            .blocking_send(job)
            .map_err(|_| IndexError::Unavailable)?;
        Ok(Pending(rx))
    }

    fn run_blocking<R, F>(&self, f: F, lazy_sync: bool) -> Result<R, IndexError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, IndexError> + Send + 'static,
    {
        let (job, rx) = job(f, lazy_sync);
        self.0
            .blocking_send(job)
            .map_err(|_| IndexError::Unavailable)?;
        Pending(rx).wait()
    }
}

/// A write sent to the writer whose commit is not awaited yet.
pub struct Pending<R>(oneshot::Receiver<Result<R, IndexError>>);

impl<R> Pending<R> {
    /// Waits for the commit of the write (from a blocking thread).
    pub fn wait(self) -> Result<R, IndexError> {
        self.0
            .blocking_recv()
            .map_err(|_| IndexError::Unavailable)?
    }
}

/// Wraps a write in a savepoint, with the channel that answers its caller after the commit.
fn job<R, F>(f: F, lazy_sync: bool) -> (Job, oneshot::Receiver<Result<R, IndexError>>)
where
    R: Send + 'static,
    F: FnOnce(&Connection) -> Result<R, IndexError> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let run = Box::new(move |conn: &Connection| -> Done {
        let result = match conn.execute_batch("SAVEPOINT job") {
            Ok(()) => {
                let r = f(conn);
                let end = if r.is_ok() {
                    "RELEASE job"
                } else {
                    "ROLLBACK TO job; RELEASE job"
                };
                match (r, conn.execute_batch(end)) {
                    (Ok(v), Ok(())) => Ok(v),
                    (Ok(_), Err(e)) => Err(IndexError::Database(e)),
                    (Err(e), _) => Err(e),
                }
            }
            Err(e) => Err(IndexError::Database(e)),
        };
        Box::new(move |commit: Result<(), String>| {
            let answer = match (result, commit) {
                (Ok(v), Ok(())) => Ok(v),
                (Ok(_), Err(msg)) => Err(IndexError::Commit(msg)),
                (Err(e), _) => Err(e),
            };
            let _ = tx.send(answer);
        })
    });
    (Job { run, lazy_sync }, rx)
}
