//! The job table: what `/jobs` shows, and what the job queue runs again after a restart.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::IndexError;

type Result<T> = std::result::Result<T, IndexError>;

/// One job as the index keeps it. `request`, `content` and `user_data` are JSON texts.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: String,
    pub kind: String,
    pub state: String,
    pub priority: i64,
    pub progress: i64,
    pub creation_time: String,
    pub completion_time: Option<String>,
    pub timestamp: String,
    pub runtime_ms: i64,
    pub error_code: i64,
    pub error_details: String,
    pub request: String,
    pub content: String,
    pub user_data: Option<String>,
}

const COLS: &str = "id, type, state, priority, progress, creation_time, completion_time, \
                    timestamp, runtime_ms, error_code, error_details, request, content, user_data";

fn from_row(r: &Row) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        state: r.get(2)?,
        priority: r.get(3)?,
        progress: r.get(4)?,
        creation_time: r.get(5)?,
        completion_time: r.get(6)?,
        timestamp: r.get(7)?,
        runtime_ms: r.get(8)?,
        error_code: r.get(9)?,
        error_details: r.get(10)?,
        request: r.get(11)?,
        content: r.get(12)?,
        user_data: r.get(13)?,
    })
}

/// Inserts a new job, or replaces the row of a job with the same id (state changes).
pub fn put_job(c: &Connection, j: &JobRow) -> Result<()> {
    c.prepare_cached(&format!(
        "INSERT INTO jobs ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
         ON CONFLICT(id) DO UPDATE SET state = ?3, priority = ?4, progress = ?5, \
         completion_time = ?7, timestamp = ?8, runtime_ms = ?9, error_code = ?10, \
         error_details = ?11, content = ?13"
    ))?
    .execute(params![
        j.id,
        j.kind,
        j.state,
        j.priority,
        j.progress,
        j.creation_time,
        j.completion_time,
        j.timestamp,
        j.runtime_ms,
        j.error_code,
        j.error_details,
        j.request,
        j.content,
        j.user_data
    ])?;
    Ok(())
}

pub fn job(c: &Connection, id: &str) -> Result<Option<JobRow>> {
    Ok(
        c.prepare_cached(&format!("SELECT {COLS} FROM jobs WHERE id = ?"))?
            .query_row([id], from_row)
            .optional()?,
    )
}

/// Every job, oldest first.
pub fn jobs(c: &Connection) -> Result<Vec<JobRow>> {
    let mut stmt = c.prepare_cached(&format!("SELECT {COLS} FROM jobs ORDER BY seq"))?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

pub fn delete_job(c: &Connection, id: &str) -> Result<bool> {
    Ok(c.prepare_cached("DELETE FROM jobs WHERE id = ?")?
        .execute([id])?
        > 0)
}

/// Keeps the `keep` most recent finished jobs (`JobsHistorySize`); answers the ids removed.
pub fn trim_history(c: &Connection, keep: usize) -> Result<Vec<String>> {
    let mut stmt = c.prepare_cached(
        "SELECT id FROM jobs WHERE state IN ('Success', 'Failure') ORDER BY seq DESC LIMIT -1 OFFSET ?",
    )?;
    let old: Vec<String> = stmt
        .query_map([keep as i64], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    for id in &old {
        delete_job(c, id)?;
    }
    Ok(old)
}
