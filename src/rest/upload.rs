//! `POST /instances`: a DICOM file, a ZIP of DICOM files (DICOMDIR entries skipped), a
//! `multipart/form-data` upload, each possibly with `Content-Encoding: gzip`.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpMessage, HttpRequest};
use futures_util::StreamExt;
use pacsnode_actors::index::StoreStatus;
use pacsnode_actors::ingest::{Origin, StoreInstance, StoredInstance};
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult, OrthancCode};
use super::middleware::{not_allowed, HttpUser};
use super::respond::Answer;
use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/instances")
            .route(web::post().to(upload))
            .route(web::get().to(super::resources::list_instances))
            .default_service(not_allowed("GET,POST")),
    );
}

fn too_large() -> ApiError {
    ApiError::new(OrthancCode::BadRequest, "The request body is too large")
}

/// Reads the whole body, never more than `max` bytes, within the request timeout.
pub async fn read_body(
    mut payload: web::Payload,
    max: u64,
    timeout: Duration,
) -> ApiResult<Vec<u8>> {
    let read = async {
        let mut body = Vec::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::bad_request(format!("Cannot read the request body: {e}")))?;
            if body.len() as u64 + chunk.len() as u64 > max {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| ApiError::bad_request("Timeout while reading the request body"))?
}

fn gunzip(data: &[u8], max: u64) -> ApiResult<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .take(max + 1)
        .read_to_end(&mut out)
        .map_err(|_| {
            ApiError::new(
                OrthancCode::BadFileFormat,
                "Cannot decompress the gzip body",
            )
        })?;
    if out.len() as u64 > max {
        return Err(too_large());
    }
    Ok(out)
}

pub(super) fn answer_of(stored: &StoredInstance) -> Value {
    let ids = &stored.ids;
    json!({
        "ID": ids.instance,
        "ParentPatient": ids.patient,
        "ParentSeries": ids.series,
        "ParentStudy": ids.study,
        "Path": format!("/instances/{}", ids.instance),
        "Status": match stored.status { StoreStatus::Success => "Success", StoreStatus::AlreadyStored => "AlreadyStored", StoreStatus::FilteredOut => "FilteredOut" },
    })
}

pub(super) fn origin_of(req: &HttpRequest) -> Origin {
    Origin {
        kind: "RestApi",
        remote_ip: req.peer_addr().map(|a| a.ip().to_string()),
        remote_aet: Some(String::new()),
        http_username: Some(
            req.extensions()
                .get::<HttpUser>()
                .map(|u| u.0.clone())
                .unwrap_or_default(),
        ),
        ..Default::default()
    }
}

pub(super) async fn store(
    state: &AppState,
    data: Vec<u8>,
    origin: Origin,
) -> ApiResult<StoredInstance> {
    if data.is_empty() {
        return Err(ApiError::new(
            OrthancCode::BadFileFormat,
            "Received an empty DICOM file",
        ));
    }
    Ok(state
        .ingest
        .send(StoreInstance {
            data: Arc::new(data),
            origin,
            refresh_parents: false,
        })
        .await??)
}

async fn upload(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult<Answer> {
    let s = &state.settings;
    let max = s.pacsnode_maximum_request_body_size;
    if req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|n| n > max)
    {
        return Err(too_large());
    }
    let mut body = read_body(
        payload,
        max,
        Duration::from_secs(s.http_request_timeout.max(1)),
    )
    .await?;
    if let Some(enc) = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        match enc.trim().to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => {
                body = web::block(move || gunzip(&body, max)).await??;
            }
            "identity" | "" => {}
            other => {
                return Err(ApiError::new(
                    OrthancCode::BadRequest,
                    format!("Unsupported Content-Encoding: {other}"),
                ))
            }
        }
    }
    let origin = origin_of(&req);
    if req
        .content_type()
        .eq_ignore_ascii_case("multipart/form-data")
    {
        let boundary = multipart_boundary(&req)
            .ok_or_else(|| ApiError::bad_request("Missing multipart boundary"))?;
        let parts = web::block(move || split_multipart(&body, &boundary)).await?;
        let parts = match chunked_upload(&state, &req, parts, max)? {
            Some(parts) => parts,
            None => return Ok(Answer::Empty),
        };
        for part in parts {
            store(&state, part, origin.clone()).await?;
        }
        return Ok(Answer::Empty);
    }
    if body.starts_with(b"PK\x03\x04") {
        let (limit, ratio) = (
            s.pacsnode_maximum_zip_uncompressed_size,
            s.pacsnode_maximum_zip_ratio,
        );
        let entries = web::block(move || unzip(&body, limit, ratio)).await??;
        let mut answers = Vec::new();
        for (name, entry) in entries {
            match store(&state, entry, origin.clone()).await {
                Ok(stored) => answers.push(answer_of(&stored)),
                // The good entries are stored; the others go to the log, not to the answer:
                // Orthanc's clients (and its test suite) expect one item per stored instance.
                Err(e) if e.code == OrthancCode::BadFileFormat => {
                    tracing::warn!("ZIP entry {name} not stored: {e}")
                }
                Err(e) => return Err(e),
            }
        }
        return Ok(Answer::Json(Value::Array(answers)));
    }
    let stored = store(&state, body, origin).await?;
    Ok(Answer::Json(answer_of(&stored)))
}

/// jQuery File Upload's chunks (`X-File-Name`, `X-File-Size`): accumulates them until the file
/// is whole. Returns the parts to store now, or `None` while the file is incomplete.
fn chunked_upload(
    state: &AppState,
    req: &HttpRequest,
    parts: Vec<Vec<u8>>,
    max: u64,
) -> ApiResult<Option<Vec<Vec<u8>>>> {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (Some(name), Some(size)) = (header("x-file-name"), header("x-file-size")) else {
        return Ok(Some(parts));
    };
    let size: u64 = size
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_request("Bad X-File-Size"))?;
    if size > max {
        return Err(too_large());
    }
    let mut chunks = state.chunks.lock().unwrap_or_else(|e| e.into_inner());
    // All the files being uploaded in chunks together stay under the maximum body size.
    let buffered: u64 = chunks.values().map(|b| b.len() as u64).sum();
    let incoming: u64 = parts.iter().map(|p| p.len() as u64).sum();
    if buffered + incoming > max || (chunks.len() >= 64 && !chunks.contains_key(&name)) {
        chunks.remove(&name);
        return Err(too_large());
    }
    let buffer = chunks.entry(name.clone()).or_default();
    for part in parts {
        buffer.extend_from_slice(&part);
    }
    if (buffer.len() as u64) < size {
        return Ok(None);
    }
    let whole = chunks.remove(&name).unwrap_or_default();
    Ok(Some(vec![whole]))
}

/// Extracts the files of a ZIP, bounding the total uncompressed size and the ratio.
fn unzip(data: &[u8], max_total: u64, max_ratio: u64) -> ApiResult<Vec<(String, Vec<u8>)>> {
    let bad =
        |e: String| ApiError::new(OrthancCode::BadFileFormat, format!("Bad ZIP archive: {e}"));
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(data)).map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).map_err(|e| bad(e.to_string()))?;
        let name = file.name().map(|n| n.to_string()).unwrap_or_default();
        let base = name.rsplit('/').next().unwrap_or("");
        if file.is_dir() || base.eq_ignore_ascii_case("DICOMDIR") || base.is_empty() {
            continue;
        }
        let budget = max_total.saturating_sub(total);
        let ratio_budget = file
            .compressed_size()
            .max(1)
            .saturating_mul(max_ratio)
            .max(1 << 20);
        let mut buf = Vec::new();
        (&mut file)
            .take(budget.min(ratio_budget) + 1)
            .read_to_end(&mut buf)
            .map_err(|e| bad(e.to_string()))?;
        if buf.len() as u64 > budget {
            return Err(too_large());
        }
        if buf.len() as u64 > ratio_budget {
            return Err(bad(format!("suspicious compression ratio for {name}")));
        }
        total += buf.len() as u64;
        if !buf.is_empty() {
            out.push((name, buf));
        }
    }
    Ok(out)
}

fn multipart_boundary(req: &HttpRequest) -> Option<String> {
    let ct = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    ct.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("boundary")).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Splits a multipart body into the contents of its parts.
pub fn split_multipart(body: &[u8], boundary: &str) -> Vec<Vec<u8>> {
    let delim = format!("--{boundary}").into_bytes();
    let mut parts = Vec::new();
    let mut positions = Vec::new();
    let mut i = 0;
    while let Some(p) = find(&body[i..], &delim) {
        positions.push(i + p);
        i += p + delim.len();
    }
    for w in positions.windows(2) {
        let part = &body[w[0] + delim.len()..w[1]];
        let Some(h) = find(part, b"\r\n\r\n") else {
            continue;
        };
        let mut content = &part[h + 4..];
        if content.ends_with(b"\r\n") {
            content = &content[..content.len() - 2];
        }
        if !content.is_empty() {
            parts.push(content.to_vec());
        }
    }
    parts
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_parts_are_split() {
        let body = b"--xx\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nABC\r\n--xx\r\nA: b\r\n\r\nDE\r\n--xx--\r\n";
        assert_eq!(
            split_multipart(body, "xx"),
            vec![b"ABC".to_vec(), b"DE".to_vec()]
        );
    }
}
