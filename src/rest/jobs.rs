//! `/jobs`: the job queue's state and controls, and the outputs of finished jobs.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use pacsnode_actors::jobs::{Control, JobError, JobRequest};
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult, OrthancCode};
use super::middleware::not_allowed;
use super::respond::{flag, Answer};
use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/jobs")
            .route(web::get().to(list))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/jobs/{id}")
            .route(web::get().to(get))
            .route(web::delete().to(delete))
            .default_service(not_allowed("DELETE,GET")),
    )
    .service(
        web::resource("/jobs/{id}/{action:cancel|pause|resume|resubmit}")
            .route(web::post().to(control))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/jobs/{id}/{output}")
            .route(web::get().to(output))
            .route(web::delete().to(delete_output))
            .default_service(not_allowed("DELETE,GET")),
    );
}

/// The options every job-creating route reads from its body.
pub struct JobOptions {
    pub asynchronous: bool,
    pub priority: i64,
    pub user_data: Option<Value>,
}

impl JobOptions {
    /// `Asynchronous` / `Synchronous` (synchronous unless said otherwise), `Priority`,
    /// `UserData`.
    pub fn from_body(body: &Value) -> ApiResult<JobOptions> {
        let flag = |k: &str| match body.get(k) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::bad_request(format!("\"{k}\" must be a Boolean"))),
        };
        let asynchronous =
            flag("Asynchronous")? == Some(true) || flag("Synchronous")? == Some(false);
        let priority = match body.get("Priority") {
            None => 0,
            Some(v) => v
                .as_i64()
                .ok_or_else(|| ApiError::bad_request("\"Priority\" must be an integer"))?,
        };
        Ok(JobOptions {
            asynchronous,
            priority,
            user_data: body.get("UserData").cloned(),
        })
    }
}

/// Refuses unknown resources before any work starts (404, as Orthanc).
pub async fn check_resources(state: &AppState, resources: &[String]) -> ApiResult<()> {
    for r in resources {
        if state.reader.resource_any(r).await?.is_none() {
            return Err(ApiError::new(OrthancCode::UnknownResource, r.clone()));
        }
    }
    Ok(())
}

/// Queues a job with the options of its request; answers the job's id.
pub async fn submit(
    state: &AppState,
    request: JobRequest,
    options: JobOptions,
) -> ApiResult<String> {
    Ok(state
        .jobs
        .submit(request, options.priority, options.user_data)
        .await?)
}

/// What Orthanc answers when a job is submitted asynchronously.
pub fn submitted(id: &str) -> Answer {
    Answer::Json(json!({ "ID": id, "Path": format!("/jobs/{id}") }))
}

async fn list(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let rows = state.jobs.list().await?;
    if flag(&req, "expand")?.unwrap_or(false) {
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            match state.jobs.info(&r.id).await {
                Ok(v) => out.push(v),
                Err(JobError::UnknownJob) => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(Answer::Json(Value::Array(out)));
    }
    Ok(Answer::Json(json!(rows
        .iter()
        .map(|r| &r.id)
        .collect::<Vec<_>>())))
}

fn id_of(req: &HttpRequest) -> String {
    req.match_info().get("id").unwrap_or_default().to_string()
}

async fn get(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    Ok(Answer::Json(state.jobs.info(&id_of(&req)).await?))
}

async fn delete(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    state.jobs.control(&id_of(&req), Control::Delete).await?;
    Ok(Answer::Json(json!({})))
}

async fn control(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let c = match req.match_info().get("action") {
        Some("cancel") => Control::Cancel,
        Some("pause") => Control::Pause,
        Some("resume") => Control::Resume,
        _ => Control::Resubmit,
    };
    state.jobs.control(&id_of(&req), c).await?;
    Ok(Answer::Json(json!({})))
}

async fn output(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let id = id_of(&req);
    state.jobs.info(&id).await?;
    let name = req.match_info().get("output").unwrap_or_default();
    let (path, request) = match state.jobs.output(&id).await? {
        Some(found) if name == "archive" => found,
        _ => return Err(ApiError::bare(OrthancCode::InexistentItem)),
    };
    let bytes = web::block(move || std::fs::read(path))
        .await?
        .map_err(|_| ApiError::bare(OrthancCode::InexistentItem))?;
    let filename = request["Filename"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{id}.zip"));
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((header::CONTENT_DISPOSITION, disposition(&filename)))
        .body(bytes))
}

async fn delete_output(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let id = id_of(&req);
    state.jobs.info(&id).await?;
    let name = req.match_info().get("output").unwrap_or_default();
    if name != "archive" || !state.jobs.drop_output(&id).await? {
        return Err(ApiError::bare(OrthancCode::InexistentItem));
    }
    Ok(Answer::Json(json!({})))
}

/// `filename="..."` without the characters that would break the header (quotes, controls).
pub fn disposition(filename: &str) -> String {
    let clean: String = filename
        .chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect();
    format!("filename=\"{clean}\"")
}

/// A transfer syntax this server can write, or 400 as Orthanc answers.
pub fn checked_syntax(ts: &str) -> ApiResult<String> {
    let ts = ts.trim();
    if pacsnode_actors::transcode::is_supported(ts) {
        Ok(ts.to_string())
    } else {
        Err(ApiError::bad_request(format!(
            "Unknown transfer syntax: {ts}"
        )))
    }
}

/// The `"Transcode"` option of a job-creating body.
pub fn transcode_of(body: &Value) -> ApiResult<Option<String>> {
    match body.get("Transcode") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(ts)) => checked_syntax(ts).map(Some),
        Some(_) => Err(ApiError::bad_request("\"Transcode\" must be a string")),
    }
}

/// `(transfer syntax, lossy quality)` asked by `?transcode=` / `"Transcode"` and
/// `?lossy-quality=` / `"LossyQuality"`.
pub fn transcoding(req: &HttpRequest, body: &Value) -> ApiResult<(Option<String>, Option<u8>)> {
    let ts = match super::respond::arg(req, "transcode") {
        Some(ts) => Some(checked_syntax(&ts)?),
        None => transcode_of(body)?,
    };
    let quality = match super::respond::arg(req, "lossy-quality")
        .or_else(|| body.get("LossyQuality").map(|v| v.to_string()))
    {
        None => None,
        Some(q) => match q.parse::<u8>() {
            Ok(q) if (1..=100).contains(&q) => Some(q),
            _ => {
                return Err(ApiError::new(
                    OrthancCode::ParameterOutOfRange,
                    format!("The lossy quality must be between 1 and 100: {q}"),
                ))
            }
        },
    };
    Ok((ts, quality))
}

/// Runs a transfer job (peer or modality store) as the body asks: queued (`Asynchronous`,
/// answers the job) or waited for (answers its `Content`; a failed job is a network error
/// with its details).
pub async fn transfer(state: &AppState, job: JobRequest, body: &Value) -> ApiResult<Answer> {
    let options = JobOptions::from_body(if body.is_object() { body } else { &Value::Null })?;
    run(state, job, options, OrthancCode::NetworkProtocol).await
}

/// Queues a job and answers it (`Asynchronous`), or waits for its end and answers its
/// `Content`; a failed job is an error `failure` with the job's details.
pub async fn run(
    state: &AppState,
    job: JobRequest,
    options: JobOptions,
    failure: OrthancCode,
) -> ApiResult<Answer> {
    let asynchronous = options.asynchronous;
    let id = submit(state, job, options).await?;
    if asynchronous {
        return Ok(submitted(&id));
    }
    let info = state.jobs.wait(&id).await?;
    if info["State"] != "Success" {
        let details = info["ErrorDetails"].as_str().unwrap_or("the job failed");
        return Err(ApiError::new(failure, details));
    }
    Ok(Answer::Json(info["Content"].clone()))
}
