//! The job queue (`/jobs`): an actor that owns the queue, runs `ConcurrentJobs` jobs at a time
//! by priority, and keeps every job in the index (so that jobs survive a restart when
//! `SaveJobs` is true, and so that several nodes can share them later).
//!
//! A job type is a variant of [`JobRequest`] (what the job does, stored as JSON) and a `run`
//! function that reports progress and checks for cancellation; see [`archive`].

pub mod archive;
pub mod dicomdir;
pub mod modality_store;
pub mod modify;
pub mod move_scu;
mod queue;

pub use queue::start;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::index::{IndexError, IndexReader, IndexWriter, JobRow};
use crate::storage::StorageArea;

/// Errors of the job queue, with Orthanc's numbers.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    #[error("unknown job")]
    UnknownJob,
    #[error("unknown resource: {0}")]
    UnknownResource(String),
    #[error("bad sequence of calls: {0}")]
    BadSequence(String),
    #[error("canceled job")]
    Canceled,
    #[error("{0}")]
    Failed(String),
    #[error("the job queue is not available")]
    Unavailable,
}

impl JobError {
    /// Orthanc's error code and description, as `/jobs/{id}` shows them.
    pub fn orthanc(&self) -> (i64, &'static str) {
        match self {
            JobError::UnknownJob => (7, "Accessing an inexistent item"),
            JobError::UnknownResource(_) => (17, "Unknown resource"),
            JobError::BadSequence(_) => (6, "Bad sequence of calls"),
            JobError::Canceled => (37, "Canceled job"),
            JobError::Failed(_) | JobError::Unavailable => (-1, "Internal error"),
        }
    }
}

impl From<IndexError> for JobError {
    fn from(e: IndexError) -> Self {
        match e {
            IndexError::UnknownResource => JobError::UnknownResource(String::new()),
            e => JobError::Failed(e.to_string()),
        }
    }
}

/// What a job does: one variant per job type, stored as JSON to run it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "Type")]
pub enum JobRequest {
    Archive(archive::ArchiveRequest),
    OrthancPeerStore(Box<crate::peers::PeerStoreRequest>),
    DicomModalityStore(Box<modality_store::ModalityStoreRequest>),
    DicomMoveScu(Box<move_scu::MoveScuRequest>),
    ResourceModification(Box<modify::ModifyRequest>),
    SplitStudy(Box<modify::ModifyRequest>),
    MergeStudy(Box<modify::ModifyRequest>),
}

impl JobRequest {
    /// The job's `Type` in `/jobs/{id}`.
    pub fn kind(&self) -> &'static str {
        match self {
            JobRequest::Archive(_) => "Archive",
            JobRequest::OrthancPeerStore(_) => "OrthancPeerStore",
            JobRequest::DicomModalityStore(_) => "DicomModalityStore",
            JobRequest::DicomMoveScu(_) => "DicomMoveScu",
            JobRequest::ResourceModification(_) => "ResourceModification",
            JobRequest::SplitStudy(_) => "SplitStudy",
            JobRequest::MergeStudy(_) => "MergeStudy",
        }
    }
}

/// What a running job sees: the index, the storage, its progress and its cancel flag.
#[derive(Clone)]
pub struct JobContext {
    pub reader: IndexReader,
    pub writer: IndexWriter,
    pub storage: StorageArea,
    /// Where jobs that make new instances store them.
    pub ingest: Option<actix::Addr<crate::ingest::IngestActor>>,
    pub progress: Arc<AtomicU8>,
    pub cancel: Arc<AtomicBool>,
    /// Where the job may write its output (`/jobs/{id}/archive`).
    pub output: PathBuf,
}

impl JobContext {
    pub fn set_progress(&self, done: u64, total: u64) {
        let p = (done * 100).checked_div(total).unwrap_or(100);
        self.progress.store(p.min(100) as u8, Ordering::Relaxed);
    }

    pub fn check_cancel(&self) -> Result<(), JobError> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(JobError::Canceled)
        } else {
            Ok(())
        }
    }
}

/// The result of a job that succeeded: its `Content`, and whether it left an output file.
pub struct JobDone {
    pub content: Value,
    pub output: bool,
}

/// Settings of the queue.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    pub concurrent: usize,
    pub history: usize,
    pub save: bool,
    /// How many job outputs (archives) are kept (`MediaArchiveSize`).
    pub outputs_kept: usize,
    pub outputs_dir: PathBuf,
}

pub(crate) enum Msg {
    Submit(
        JobRequest,
        i64,
        Option<Value>,
        oneshot::Sender<Result<String, JobError>>,
    ),
    Info(String, oneshot::Sender<Result<Value, JobError>>),
    List(oneshot::Sender<Result<Vec<JobRow>, JobError>>),
    Control(String, Control, oneshot::Sender<Result<(), JobError>>),
    Output(
        String,
        oneshot::Sender<Result<Option<(PathBuf, Value)>, JobError>>,
    ),
    DropOutput(String, oneshot::Sender<bool>),
    Finished(String, Result<JobDone, JobError>),
    /// Answers when the job has ended.
    Wait(String, oneshot::Sender<Result<Value, JobError>>),
}

/// What `/jobs/{id}/{action}` asks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Control {
    Cancel,
    Pause,
    Resume,
    Resubmit,
    Delete,
}

/// The handle to the job queue (cheap to clone).
#[derive(Clone)]
pub struct Jobs(pub(crate) mpsc::Sender<Msg>);

impl Jobs {
    async fn ask<R>(&self, msg: impl FnOnce(oneshot::Sender<R>) -> Msg) -> Result<R, JobError> {
        let (tx, rx) = oneshot::channel();
        self.0
            .send(msg(tx))
            .await
            .map_err(|_| JobError::Unavailable)?;
        rx.await.map_err(|_| JobError::Unavailable)
    }

    /// Queues a job; answers its id.
    pub async fn submit(
        &self,
        request: JobRequest,
        priority: i64,
        user_data: Option<Value>,
    ) -> Result<String, JobError> {
        self.ask(|tx| Msg::Submit(request, priority, user_data, tx))
            .await?
    }

    /// The JSON of `/jobs/{id}`.
    pub async fn info(&self, id: &str) -> Result<Value, JobError> {
        self.ask(|tx| Msg::Info(id.to_string(), tx)).await?
    }

    /// Every job, oldest first.
    pub async fn list(&self) -> Result<Vec<JobRow>, JobError> {
        self.ask(Msg::List).await?
    }

    pub async fn control(&self, id: &str, c: Control) -> Result<(), JobError> {
        self.ask(|tx| Msg::Control(id.to_string(), c, tx)).await?
    }

    /// The output file of a finished job while it is kept, with what the job was asked.
    pub async fn output(&self, id: &str) -> Result<Option<(PathBuf, Value)>, JobError> {
        self.ask(|tx| Msg::Output(id.to_string(), tx)).await?
    }

    /// Forgets the output of a job; false if there was none.
    pub async fn drop_output(&self, id: &str) -> Result<bool, JobError> {
        self.ask(|tx| Msg::DropOutput(id.to_string(), tx)).await
    }

    /// Waits until a job is finished (the queue answers when it ends); answers its JSON.
    /// Needs no timer: callable from a blocking thread through `block_on`.
    pub async fn wait(&self, id: &str) -> Result<Value, JobError> {
        self.ask(|tx| Msg::Wait(id.to_string(), tx)).await?
    }
}

/// Orthanc's timestamps: local time with microseconds.
pub fn now() -> String {
    chrono::Local::now().format("%Y%m%dT%H%M%S%.6f").to_string()
}

/// Runs one job to its end.
pub(crate) async fn run(request: JobRequest, ctx: JobContext) -> Result<JobDone, JobError> {
    match request {
        JobRequest::Archive(a) => archive::run_job(a, ctx).await,
        JobRequest::OrthancPeerStore(s) => crate::peers::run_store(*s, ctx).await,
        JobRequest::DicomModalityStore(s) => modality_store::run(*s, ctx).await,
        JobRequest::DicomMoveScu(s) => move_scu::run(*s, ctx).await,
        JobRequest::ResourceModification(m)
        | JobRequest::SplitStudy(m)
        | JobRequest::MergeStudy(m) => modify::run(*m, ctx).await,
    }
}
