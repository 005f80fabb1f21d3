//! ZIP archives: `/{patients,studies,series}/{id}/archive` and `/tools/create-archive`,
//! streamed to the client (the first bytes leave before the study is read, memory stays
//! bounded, and a client that disconnects stops the work) or run as a job.

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse, Responder};
use pacsnode_actors::jobs::archive::{plan, write_zip, ArchiveRequest};
use pacsnode_actors::jobs::JobRequest;
use serde_json::Value;
use tokio::sync::mpsc;

use super::error::{ApiError, ApiResult};
use super::jobs::{check_resources, disposition, submit, submitted, transcoding, JobOptions};
use super::middleware::not_allowed;
use super::resources::level_of;
use super::respond::{arg, flag};
use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    for level in ["patients", "studies", "series"] {
        for kind in ["archive", "media"] {
            cfg.service(
                web::resource(format!("/{level}/{{id}}/{kind}"))
                    .route(web::get().to(get_archive))
                    .route(web::post().to(post_archive))
                    .default_service(not_allowed("GET,POST")),
            );
        }
    }
    for tool in ["create-archive", "create-media", "create-media-extended"] {
        cfg.service(
            web::resource(format!("/tools/{tool}"))
                .route(web::get().to(get_create))
                .route(web::post().to(post_create))
                .default_service(not_allowed("GET,POST")),
        );
    }
}

/// The body of a POST (empty: `{}`), as JSON.
fn body_json(body: &[u8]) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))
}

fn utf8_of(v: &Value) -> ApiResult<bool> {
    match v.get("Utf8") {
        None => Ok(true),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::bad_request("\"Utf8\" must be a Boolean")),
    }
}

/// `(media, extended)` from the route and the request (`?extended`, `"Extended": true`).
fn media_of(req: &HttpRequest, body: &Value) -> ApiResult<(bool, bool)> {
    let path = req.path();
    let media = path.ends_with("/media") || path.contains("/tools/create-media");
    let extended = path.ends_with("-extended")
        || body.get("Extended").and_then(Value::as_bool) == Some(true)
        || flag(req, "extended")?.unwrap_or(false);
    Ok((media, media && extended))
}

async fn checked_id(state: &AppState, req: &HttpRequest) -> ApiResult<String> {
    let id = req.match_info().get("id").unwrap_or_default().to_string();
    state.reader.resource(level_of(req), &id).await?;
    Ok(id)
}

async fn get_archive(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let id = checked_id(&state, &req).await?;
    let (media, extended) = media_of(&req, &Value::Null)?;
    let (transcode, lossy_quality) = transcoding(&req, &Value::Null)?;
    let request = ArchiveRequest {
        resources: vec![id.clone()],
        utf8: true,
        media,
        extended,
        filename: arg(&req, "filename"),
        transcode,
        lossy_quality,
    };
    stream(&state, request, &id).await
}

async fn post_archive(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let id = checked_id(&state, &req).await?;
    let v = body_json(&body)?;
    let (media, extended) = media_of(&req, &v)?;
    let (transcode, lossy_quality) = transcoding(&req, &v)?;
    let request = ArchiveRequest {
        resources: vec![id.clone()],
        utf8: utf8_of(&v)?,
        media,
        extended,
        filename: v["Filename"].as_str().map(str::to_string),
        transcode,
        lossy_quality,
    };
    submit_or_stream(&state, &req, request, &v, &id).await
}

async fn get_create(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let resources: Vec<String> = arg(&req, "resources")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let (media, extended) = media_of(&req, &Value::Null)?;
    let (transcode, lossy_quality) = transcoding(&req, &Value::Null)?;
    let request = ArchiveRequest {
        resources,
        utf8: true,
        media,
        extended,
        filename: arg(&req, "filename"),
        transcode,
        lossy_quality,
    };
    stream(&state, request, "archive").await
}

async fn post_create(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let v = body_json(&body)?;
    let (list, options) = match &v {
        Value::Array(list) => (list.clone(), Value::Object(Default::default())),
        Value::Object(m) => match m.get("Resources") {
            Some(Value::Array(list)) => (list.clone(), v.clone()),
            _ => return Err(ApiError::bad_request("\"Resources\" must be a list of ids")),
        },
        _ => return Err(ApiError::bad_request("expected a list of ids or an object")),
    };
    let resources = list
        .iter()
        .map(|r| r.as_str().map(str::to_string))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| ApiError::bad_request("\"Resources\" must be a list of ids"))?;
    let (media, extended) = media_of(&req, &options)?;
    let (transcode, lossy_quality) = transcoding(&req, &options)?;
    let request = ArchiveRequest {
        resources,
        utf8: utf8_of(&options)?,
        media,
        extended,
        filename: options["Filename"].as_str().map(str::to_string),
        transcode,
        lossy_quality,
    };
    submit_or_stream(&state, &req, request, &options, "archive").await
}

async fn submit_or_stream(
    state: &AppState,
    req: &HttpRequest,
    request: ArchiveRequest,
    body: &Value,
    name: &str,
) -> ApiResult<HttpResponse> {
    let options = JobOptions::from_body(body)?;
    if !options.asynchronous {
        return stream(state, request, name).await;
    }
    // Unknown resources are refused now, as when streaming, not by a failed job later.
    check_resources(state, &request.resources).await?;
    let id = submit(state, JobRequest::Archive(request), options).await?;
    Ok(submitted(&id).respond_to(req))
}

/// Streams the ZIP as it is written: the index is read first (one transaction, unknown ids
/// answer 404 before any byte), then a blocking thread reads the files into the ZIP through
/// a bounded channel.
async fn stream(state: &AppState, request: ArchiveRequest, name: &str) -> ApiResult<HttpResponse> {
    let filename = request
        .filename
        .clone()
        .unwrap_or_else(|| format!("{name}.zip"));
    check_resources(state, &request.resources).await?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let (reader, storage) = (state.reader.clone(), state.storage.clone());
    // The answer starts now; the index is read and the files zipped behind it. A failure
    // from here on is told to the client by a broken stream (the status line is sent).
    tokio::spawn(async move {
        let plan = match reader.with(move |c| Ok(plan(c, &request))).await {
            Ok(Ok(plan)) => plan,
            Ok(Err(e)) => return fail(&tx, e.to_string()).await,
            Err(e) => return fail(&tx, e.to_string()).await,
        };
        let _ = tokio::task::spawn_blocking(move || {
            let out = ChannelWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(CHUNK),
            };
            if let Err(e) = write_zip(&plan, &storage, out, |_| Ok(())) {
                if !tx.is_closed() {
                    tracing::warn!("archive: {e}");
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                }
            }
        })
        .await;
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((header::CONTENT_DISPOSITION, disposition(&filename)))
        .streaming(body))
}

async fn fail(tx: &mpsc::Sender<Result<Bytes, std::io::Error>>, e: String) {
    tracing::warn!("archive: {e}");
    let _ = tx.send(Err(std::io::Error::other(e))).await;
}

const CHUNK: usize = 256 * 1024;

/// A writer whose bytes go to the HTTP body in chunks; writing fails once the client is gone.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = self.send();
    }
}
