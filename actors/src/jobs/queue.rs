//! The queue itself: the task that owns the running jobs and answers the [`Jobs`] handle's
//! messages; every state change is written to the index before it is answered.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::{now, run, Control, JobContext, JobDone, JobError, JobRequest, Jobs, JobsConfig, Msg};
use crate::index::{jobs as sql, IndexError, IndexReader, IndexWriter, JobRow};
use crate::storage::StorageArea;

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
    ingest: Option<actix::Addr<crate::ingest::IngestActor>>,
    me: mpsc::Sender<Msg>,
    running: HashMap<String, Running>,
    outputs: VecDeque<String>,
    /// Who waits for the end of a job (`Jobs::wait`).
    waiters: HashMap<String, Vec<oneshot::Sender<Result<Value, JobError>>>>,
}

/// Starts the queue: jobs left pending or running by the previous run are queued again
/// (all are forgotten when `SaveJobs` is false), and outputs of the previous run removed.
pub async fn start(
    config: JobsConfig,
    reader: IndexReader,
    writer: IndexWriter,
    storage: StorageArea,
    ingest: Option<actix::Addr<crate::ingest::IngestActor>>,
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
        ingest,
        me: tx.clone(),
        running: HashMap::new(),
        outputs: VecDeque::new(),
        waiters: HashMap::new(),
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
                self.notify(&id).await;
            }
            Msg::Wait(id, tx) => {
                self.waiters.entry(id.clone()).or_default().push(tx);
                self.notify(&id).await;
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
                self.notify(&id).await;
                self.pump().await;
            }
        }
    }

    /// Answers those waiting for a job if it has ended (or does not exist).
    async fn notify(&mut self, id: &str) {
        if !self.waiters.contains_key(id) {
            return;
        }
        let answer = match self.row(id).await {
            Ok(row) if matches!(row.state.as_str(), "Success" | "Failure") => Ok(self.json(&row)),
            Ok(_) => return,
            Err(e) => Err(e),
        };
        for tx in self.waiters.remove(id).unwrap_or_default() {
            let _ = tx.send(answer.clone());
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
                ingest: self.ingest.clone(),
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
