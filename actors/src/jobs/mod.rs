//! The job queue (`/jobs`): an actor that owns the queue, runs `ConcurrentJobs` jobs at a time
//! by priority, and keeps every job in the index (so that jobs survive a restart when
//! `SaveJobs` is true, and so that several nodes can share them later).
//!
//! A job type is a variant of [`JobRequest`] (what the job does, stored as JSON) and a `run`
//! function that reports progress and checks for cancellation; see [`archive`].

pub mod archive;
pub mod dicomdir;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::index::{jobs as sql, IndexError, IndexReader, IndexWriter, JobRow};
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
    OrthancPeerStore(crate::peers::PeerStoreRequest),
}

impl JobRequest {
    /// The job's `Type` in `/jobs/{id}`.
    pub fn kind(&self) -> &'static str {
        match self {
            JobRequest::Archive(_) => "Archive",
            JobRequest::OrthancPeerStore(_) => "OrthancPeerStore",
        }
    }
}

/// What a running job sees: the index, the storage, its progress and its cancel flag.
#[derive(Clone)]
pub struct JobContext {
    pub reader: IndexReader,
    pub writer: IndexWriter,
    pub storage: StorageArea,
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

enum Msg {
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
pub struct Jobs(mpsc::Sender<Msg>);

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

    /// Waits until a job is finished; answers its JSON.
    pub async fn wait(&self, id: &str) -> Result<Value, JobError> {
        loop {
            let info = self.info(id).await?;
            if matches!(info["State"].as_str(), Some("Success" | "Failure")) {
                return Ok(info);
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

struct Running {
    progress: Arc<AtomicU8>,
    cancel: Arc<AtomicBool>,
    /// Paused rather than canceled: back to Paused when it stops.
    pausing: bool,
    started: Instant,
}

struct Queue {
    config: JobsConfig,
    reader: IndexReader,
    writer: IndexWriter,
    storage: StorageArea,
    me: mpsc::Sender<Msg>,
    running: HashMap<String, Running>,
    outputs: VecDeque<String>,
}

pub fn now() -> String {
    chrono::Local::now().format("%Y%m%dT%H%M%S%.6f").to_string()
}

/// Starts the queue: jobs left pending or running by the previous run are queued again
/// (all are forgotten when `SaveJobs` is false), and outputs of the previous run removed.
pub async fn start(
    config: JobsConfig,
    reader: IndexReader,
    writer: IndexWriter,
    storage: StorageArea,
) -> Result<Jobs, IndexError> {
    let dir = config.outputs_dir.clone();
    let _ = tokio::task::spawn_blocking(move || {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
    })
    .await;
    let save = config.save;
    writer
        .write(move |c| {
            for mut j in sql::jobs(c)? {
                if !save {
                    sql::delete_job(c, &j.id)?;
                } else if matches!(j.state.as_str(), "Running" | "Retry") {
                    j.state = "Pending".into();
                    sql::put_job(c, &j)?;
                }
            }
            Ok(())
        })
        .await?;
    let (tx, mut rx) = mpsc::channel(64);
    let mut q = Queue {
        config,
        reader,
        writer,
        storage,
        me: tx.clone(),
        running: HashMap::new(),
        outputs: VecDeque::new(),
    };
    tokio::spawn(async move {
        q.pump().await;
        while let Some(msg) = rx.recv().await {
            q.handle(msg).await;
        }
    });
    Ok(Jobs(tx))
}

impl Queue {
    async fn row(&self, id: &str) -> Result<JobRow, JobError> {
        let id = id.to_string();
        self.reader
            .with(move |c| sql::job(c, &id))
            .await?
            .ok_or(JobError::UnknownJob)
    }

    async fn put(&self, row: JobRow) -> Result<(), JobError> {
        Ok(self.writer.write(move |c| sql::put_job(c, &row)).await?)
    }

    async fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Submit(request, priority, user_data, tx) => {
                let _ = tx.send(self.submit(request, priority, user_data).await);
            }
            Msg::Info(id, tx) => {
                let info = self.row(&id).await.map(|r| self.json(&r));
                let _ = tx.send(info);
            }
            Msg::List(tx) => {
                let rows = self.reader.with(sql::jobs).await;
                let _ = tx.send(rows.map_err(JobError::from));
            }
            Msg::Control(id, c, tx) => {
                let _ = tx.send(self.control(&id, c).await);
            }
            Msg::Output(id, tx) => {
                let found = match self.row(&id).await {
                    Ok(row) if self.outputs.contains(&id) => Ok(Some((
                        self.output_path(&id),
                        serde_json::from_str(&row.request).unwrap_or(Value::Null),
                    ))),
                    Ok(_) => Ok(None),
                    Err(e) => Err(e),
                };
                let _ = tx.send(found);
            }
            Msg::DropOutput(id, tx) => {
                let kept = self.outputs.iter().position(|o| *o == id);
                if let Some(i) = kept {
                    self.outputs.remove(i);
                    self.remove_output(&id).await;
                }
                let _ = tx.send(kept.is_some());
            }
            Msg::Finished(id, result) => {
                if let Err(e) = self.finished(&id, result).await {
                    tracing::error!("job {id}: cannot record its end: {e}");
                }
                self.pump().await;
            }
        }
    }

    fn output_path(&self, id: &str) -> PathBuf {
        self.config.outputs_dir.join(format!("{id}.out"))
    }

    async fn remove_output(&self, id: &str) {
        let path = self.output_path(id);
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
    }

    async fn submit(
        &mut self,
        request: JobRequest,
        priority: i64,
        user_data: Option<Value>,
    ) -> Result<String, JobError> {
        let now = now();
        let row = JobRow {
            id: uuid::Uuid::new_v4().to_string(),
            kind: request.kind().into(),
            state: "Pending".into(),
            priority,
            progress: 0,
            creation_time: now.clone(),
            completion_time: None,
            timestamp: now,
            runtime_ms: 0,
            error_code: 0,
            error_details: String::new(),
            request: serde_json::to_string(&request)
                .map_err(|e| JobError::Failed(e.to_string()))?,
            content: json!({ "Description": "REST API" }).to_string(),
            user_data: user_data.map(|v| v.to_string()),
        };
        let id = row.id.clone();
        self.put(row).await?;
        self.pump().await;
        Ok(id)
    }

    /// Starts pending jobs, by priority then age, while fewer than `ConcurrentJobs` run.
    async fn pump(&mut self) {
        while self.running.len() < self.config.concurrent.max(1) {
            let next = match self.reader.with(sql::jobs).await {
                Ok(rows) => rows
                    .into_iter()
                    .filter(|r| r.state == "Pending")
                    .max_by_key(|r| r.priority),
                Err(e) => {
                    tracing::error!("job queue: {e}");
                    return;
                }
            };
            let Some(mut row) = next else { return };
            let request: JobRequest = match serde_json::from_str(&row.request) {
                Ok(r) => r,
                Err(e) => {
                    let _ = self
                        .finished(&row.id, Err(JobError::Failed(format!("unknown job: {e}"))))
                        .await;
                    continue;
                }
            };
            row.state = "Running".into();
            row.timestamp = now();
            if self.put(row.clone()).await.is_err() {
                return;
            }
            let ctx = JobContext {
                reader: self.reader.clone(),
                writer: self.writer.clone(),
                storage: self.storage.clone(),
                progress: Arc::new(AtomicU8::new(0)),
                cancel: Arc::new(AtomicBool::new(false)),
                output: self.output_path(&row.id),
            };
            self.running.insert(
                row.id.clone(),
                Running {
                    progress: ctx.progress.clone(),
                    cancel: ctx.cancel.clone(),
                    pausing: false,
                    started: Instant::now(),
                },
            );
            let me = self.me.clone();
            let id = row.id.clone();
            tokio::spawn(async move {
                // The job runs as its own task: a panic fails this job only.
                let result = tokio::spawn(run(request, ctx))
                    .await
                    .unwrap_or_else(|e| Err(JobError::Failed(format!("the job panicked: {e}"))));
                let _ = me.send(Msg::Finished(id, result)).await;
            });
        }
    }

    async fn finished(
        &mut self,
        id: &str,
        result: Result<JobDone, JobError>,
    ) -> Result<(), JobError> {
        let run = self.running.remove(id);
        let mut row = self.row(id).await?;
        let now = now();
        row.timestamp = now.clone();
        if let Some(r) = &run {
            row.runtime_ms += r.started.elapsed().as_millis() as i64;
        }
        match result {
            Ok(done) => {
                row.state = "Success".into();
                row.progress = 100;
                row.completion_time = Some(now);
                row.content = done.content.to_string();
                if done.output {
                    self.outputs.push_back(id.to_string());
                    while self.outputs.len() > self.config.outputs_kept {
                        if let Some(old) = self.outputs.pop_front() {
                            self.remove_output(&old).await;
                        }
                    }
                }
            }
            Err(JobError::Canceled) if run.as_ref().is_some_and(|r| r.pausing) => {
                row.state = "Paused".into();
                row.progress = 0;
            }
            Err(e) => {
                let (code, _) = e.orthanc();
                row.state = "Failure".into();
                row.completion_time = Some(now);
                row.error_code = code;
                row.error_details = match &e {
                    JobError::Canceled => String::new(),
                    e => e.to_string(),
                };
                if let Some(r) = &run {
                    row.progress = r.progress.load(Ordering::Relaxed) as i64;
                }
                self.remove_output(id).await;
            }
        }
        self.put(row).await?;
        let keep = self.config.history;
        let gone = self
            .writer
            .write(move |c| sql::trim_history(c, keep))
            .await?;
        for old in gone {
            if let Some(i) = self.outputs.iter().position(|o| *o == old) {
                self.outputs.remove(i);
                self.remove_output(&old).await;
            }
        }
        Ok(())
    }

    async fn control(&mut self, id: &str, c: Control) -> Result<(), JobError> {
        let mut row = self.row(id).await?;
        let state = row.state.clone();
        let bad = || Err(JobError::BadSequence(format!("the job is {state}")));
        if let Some(run) = self.running.get_mut(id) {
            return match c {
                Control::Cancel | Control::Pause => {
                    run.pausing = c == Control::Pause;
                    run.cancel.store(true, Ordering::Relaxed);
                    Ok(())
                }
                Control::Resume => Ok(()),
                _ => bad(),
            };
        }
        row.timestamp = now();
        match (c, state.as_str()) {
            (Control::Cancel, "Pending" | "Paused" | "Retry") => {
                let (code, _) = JobError::Canceled.orthanc();
                row.state = "Failure".into();
                row.error_code = code;
                row.completion_time = Some(now());
            }
            (Control::Cancel, _) => return Ok(()),
            (Control::Pause, "Pending" | "Retry") => row.state = "Paused".into(),
            (Control::Pause, "Paused") | (Control::Resume, "Pending") => return Ok(()),
            (Control::Resume, "Paused") | (Control::Resubmit, "Failure") => {
                row.state = "Pending".into();
                row.progress = 0;
                row.error_code = 0;
                row.error_details.clear();
                row.completion_time = None;
            }
            (Control::Delete, "Success" | "Failure") => {
                let id = id.to_string();
                self.writer.write(move |c| sql::delete_job(c, &id)).await?;
                if let Some(i) = self.outputs.iter().position(|o| o == &row.id) {
                    self.outputs.remove(i);
                    self.remove_output(&row.id).await;
                }
                return Ok(());
            }
            _ => return bad(),
        }
        self.put(row).await?;
        self.pump().await;
        Ok(())
    }

    /// The JSON of `/jobs/{id}`.
    fn json(&self, r: &JobRow) -> Value {
        let run = self.running.get(&r.id);
        let progress = run.map_or(r.progress, |x| x.progress.load(Ordering::Relaxed) as i64);
        let runtime = r.runtime_ms + run.map_or(0, |x| x.started.elapsed().as_millis() as i64);
        let description = match r.error_code {
            0 => "Success",
            37 => "Canceled job",
            17 => "Unknown resource",
            7 => "Accessing an inexistent item",
            6 => "Bad sequence of calls",
            _ => "Internal error",
        };
        let mut v = json!({
            "ID": r.id,
            "Type": r.kind,
            "State": r.state,
            "Priority": r.priority,
            "Progress": progress,
            "CreationTime": r.creation_time,
            "EffectiveRuntime": runtime as f64 / 1000.0,
            "Timestamp": r.timestamp,
            "ErrorCode": r.error_code,
            "ErrorDescription": description,
            "ErrorDetails": r.error_details,
            "Content": serde_json::from_str::<Value>(&r.content).unwrap_or(json!({})),
        });
        if let Some(t) = &r.completion_time {
            v["CompletionTime"] = json!(t);
        }
        if let Some(u) = &r.user_data {
            v["UserData"] = serde_json::from_str(u).unwrap_or(Value::Null);
        }
        v
    }
}

/// Runs one job to its end.
async fn run(request: JobRequest, ctx: JobContext) -> Result<JobDone, JobError> {
    match request {
        JobRequest::Archive(a) => archive::run_job(a, ctx).await,
        JobRequest::OrthancPeerStore(s) => crate::peers::run_store(s, ctx).await,
    }
}
