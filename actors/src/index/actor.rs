//! [`IndexActor`]: the single writer, with group commit.

use std::collections::VecDeque;
use std::future::Future;

use actix::prelude::*;
use futures_util::future::LocalBoxFuture;
use sqlx::{Connection, SqliteConnection};
use tokio::sync::oneshot;

use super::IndexError;

/// Called once the transaction holding the job committed (or failed).
type Done = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A write to run inside the next group transaction. It receives the writer connection and
/// gives it back with the function that answers its caller after the commit.
pub type WriteJob =
    Box<dyn FnOnce(SqliteConnection) -> LocalBoxFuture<'static, (SqliteConnection, Done)> + Send>;

/// Queues one write job (built by [`IndexActor::job`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Write(pub WriteJob);

/// The owner of the writer connection.
pub struct IndexActor {
    conn: Option<SqliteConnection>,
    queue: VecDeque<WriteJob>,
    max_batch: usize,
}

impl IndexActor {
    pub fn new(conn: SqliteConnection) -> Self {
        IndexActor {
            conn: Some(conn),
            queue: VecDeque::new(),
            max_batch: 256,
        }
    }

    /// Wraps an async write into a job and the receiver of its result. The write runs in its
    /// own savepoint: if it fails, only its own changes are rolled back.
    pub fn job<R, F, Fut>(f: F) -> (WriteJob, oneshot::Receiver<Result<R, IndexError>>)
    where
        R: Send + 'static,
        F: FnOnce(SqliteConnection) -> Fut + Send + 'static,
        Fut: Future<Output = (SqliteConnection, Result<R, IndexError>)> + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: WriteJob = Box::new(move |mut conn: SqliteConnection| {
            Box::pin(async move {
                if let Err(e) = sqlx::query("SAVEPOINT job").execute(&mut conn).await {
                    let done: Done = Box::new(move |_| {
                        let _ = tx.send(Err(IndexError::Database(e)));
                    });
                    return (conn, done);
                }
                let (mut conn, result) = f(conn).await;
                let sql = if result.is_ok() {
                    "RELEASE job"
                } else {
                    "ROLLBACK TO job; RELEASE job"
                };
                let release = sqlx::raw_sql(sql).execute(&mut conn).await;
                let done: Done = Box::new(move |commit: Result<(), String>| {
                    let answer = match (result, release, commit) {
                        (Err(e), _, _) => Err(e),
                        (Ok(_), Err(e), _) => Err(IndexError::Database(e)),
                        (Ok(_), Ok(_), Err(msg)) => Err(IndexError::BadRequest(msg)),
                        (Ok(r), Ok(_), Ok(())) => Ok(r),
                    };
                    let _ = tx.send(answer);
                });
                (conn, done)
            }) as LocalBoxFuture<'static, (SqliteConnection, Done)>
        });
        (job, rx)
    }

    fn start_batch(&mut self, ctx: &mut Context<Self>) {
        let Some(conn) = self.conn.take() else { return };
        let n = self.queue.len().min(self.max_batch);
        let batch: Vec<WriteJob> = self.queue.drain(..n).collect();
        let fut = run_batch(conn, batch);
        ctx.spawn(fut.into_actor(self).map(|conn, actor, ctx| {
            actor.conn = Some(conn);
            if !actor.queue.is_empty() {
                actor.start_batch(ctx);
            }
        }));
    }
}

/// Runs a batch of jobs in one transaction, commits once, then answers every job.
async fn run_batch(mut conn: SqliteConnection, batch: Vec<WriteJob>) -> SqliteConnection {
    let mut dones = Vec::with_capacity(batch.len());
    if sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut conn)
        .await
        .is_err()
    {
        // A transaction left open by a failed commit: roll it back and start again. If that
        // fails too, each job's savepoint runs as its own transaction.
        let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
        let _ = sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await;
    }
    for job in batch {
        let (c, done) = job(conn).await;
        conn = c;
        dones.push(done);
    }
    let commit = sqlx::query("COMMIT")
        .execute(&mut conn)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    if commit.is_err() {
        let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
    }
    for d in dones {
        d(commit.clone());
    }
    conn
}

impl Actor for IndexActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if let Some(conn) = self.conn.take() {
            actix::spawn(async move {
                let _ = conn.close().await;
            });
        }
    }
}

impl Handler<Write> for IndexActor {
    type Result = ();

    fn handle(&mut self, msg: Write, ctx: &mut Context<Self>) {
        self.queue.push_back(msg.0);
        if self.conn.is_some() {
            self.start_batch(ctx);
        }
    }
}

/// A cloneable handle to send writes to the [`IndexActor`] and await their commit.
#[derive(Clone)]
pub struct IndexWriter(pub Addr<IndexActor>);

impl IndexWriter {
    /// Runs `f` in the next group transaction and waits until it is committed.
    pub async fn write<R, F, Fut>(&self, f: F) -> Result<R, IndexError>
    where
        R: Send + 'static,
        F: FnOnce(SqliteConnection) -> Fut + Send + 'static,
        Fut: Future<Output = (SqliteConnection, Result<R, IndexError>)> + 'static,
    {
        let (job, rx) = IndexActor::job(f);
        self.0
            .send(Write(job))
            .await
            .map_err(|_| IndexError::Unavailable)?;
        rx.await.map_err(|_| IndexError::Unavailable)?
    }
}
