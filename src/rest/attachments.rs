//! `/{level}/{id}/attachments[/{name}[/{operation}]]`: the DICOM file of an instance and the
//! attachments users add (content types 1024–65535, or the names of `UserContentType`), with
//! revisions as Orthanc has them: `ETag: "{revision}-{md5}"` on every answer, `If-None-Match`
//! answered 304, `If-Match` required to change or delete when `CheckRevisions` is on.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use pacsnode_actors::index::attachments::{self, NewAttachment};
use pacsnode_actors::index::{AttachmentRow, ResourceRow};
use pacsnode_actors::storage::StoredCompression;
use serde_json::{json, Map, Value};

use super::error::{ApiError, ApiResult, OrthancCode};
use super::metadata::{etag, md5_hex, name_of, revision_header, L};
use super::middleware::not_allowed;
use super::resources::lookup;
use super::respond::{arg, flag, json_or_xml, Answer};
use super::AppState;

const OPERATIONS: &[&str] = &[
    "compress",
    "compressed-data",
    "compressed-md5",
    "compressed-size",
    "data",
    "info",
    "is-compressed",
    "md5",
    "size",
    "uncompress",
    "verify-md5",
];
/// Content types below this one are Orthanc's own (the DICOM file...): read-only here.
const FIRST_USER_TYPE: i64 = 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(format!("/{L}/{{id}}/attachments"))
            .route(web::get().to(list))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource(format!("/{L}/{{id}}/attachments/{{name}}"))
            .route(web::get().to(operations))
            .route(web::put().to(put))
            .route(web::delete().to(delete))
            .default_service(not_allowed("DELETE,GET,PUT")),
    )
    .service(
        web::resource(format!("/{L}/{{id}}/attachments/{{name}}/{{op}}"))
            .route(web::get().to(get))
            .route(web::post().to(post))
            .default_service(not_allowed("GET,POST")),
    );
}

/// The name of a content type: Orthanc's, a `UserContentType` one, or the number.
fn type_name(state: &AppState, file_type: i64) -> String {
    match file_type {
        1 => "dicom".into(),
        2 => "dicom-as-json".into(),
        3 => "dicom-until-pixel-data".into(),
        n => state
            .settings
            .user_content_type
            .iter()
            .find(|(_, v)| user_type(v) == Some(n))
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| n.to_string()),
    }
}

/// The number of a `UserContentType` entry (`1024`, or `[1024, "mime/type"]`).
fn user_type(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.get(0).and_then(Value::as_i64))
}

/// The content type a name means; an unknown name is a 404.
fn type_number(state: &AppState, name: &str) -> ApiResult<i64> {
    let n = match name {
        "dicom" => Some(1),
        "dicom-as-json" => Some(2),
        "dicom-until-pixel-data" => Some(3),
        _ => state
            .settings
            .user_content_type
            .get(name)
            .and_then(user_type)
            .or_else(|| name.parse::<i64>().ok().filter(|n| (1..=65535).contains(n))),
    };
    n.ok_or_else(|| ApiError::inexistent_item(format!("Unknown attachment: {name}")))
}

/// The MIME type of an attachment's data.
fn mime(state: &AppState, file_type: i64) -> String {
    if file_type == 1 {
        return "application/dicom".into();
    }
    state
        .settings
        .user_content_type
        .values()
        .find(|v| user_type(v) == Some(file_type))
        .and_then(|v| v.get(1))
        .and_then(Value::as_str)
        .unwrap_or("application/octet-stream")
        .to_string()
}

async fn find(state: &AppState, req: &HttpRequest) -> ApiResult<(ResourceRow, AttachmentRow)> {
    let row = lookup(state, req).await?;
    let number = type_number(state, &name_of(req))?;
    let att = state
        .reader
        .attachments(row.id)
        .await?
        .into_iter()
        .find(|a| a.file_type == number)
        .ok_or_else(|| ApiError::bare(OrthancCode::UnknownResource))?;
    Ok((row, att))
}

/// What a GET answers before its body: 304 when `If-None-Match` names the current revision,
/// 400 (with the `ETag`) when it is malformed.
fn not_modified(req: &HttpRequest, att: &AttachmentRow) -> Option<HttpResponse> {
    let tag = etag(att.revision, &att.uncompressed_md5);
    match revision_header(req, header::IF_NONE_MATCH) {
        Ok(Some((rev, md5))) if rev == att.revision && md5 == att.uncompressed_md5 => Some(
            HttpResponse::NotModified()
                .insert_header((header::ETAG, tag))
                .finish(),
        ),
        Ok(_) => None,
        Err(e) => {
            let mut res = e.error_response();
            if let Ok(v) = tag.parse() {
                res.headers_mut().insert(header::ETAG, v);
            }
            Some(res)
        }
    }
}

async fn read(state: &AppState, att: &AttachmentRow) -> ApiResult<Vec<u8>> {
    let storage = state.storage.clone();
    let uuid = att.uuid.clone();
    let compression = if att.compression == 2 {
        StoredCompression::ZlibWithSize
    } else {
        StoredCompression::None
    };
    Ok(web::block(move || storage.read(&uuid, compression)).await??)
}

async fn list(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let row = lookup(&state, &req).await?;
    let list = state.reader.attachments(row.id).await?;
    if flag(&req, "full")?.unwrap_or(false) {
        let m: Map<String, Value> = list
            .iter()
            .map(|a| (type_name(&state, a.file_type), json!(a.file_type)))
            .collect();
        return Ok(Answer::Json(Value::Object(m)));
    }
    Ok(Answer::Json(json!(list
        .iter()
        .map(|a| type_name(&state, a.file_type))
        .collect::<Vec<_>>())))
}

async fn operations(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let (_, att) = find(&state, &req).await?;
    if let Some(res) = not_modified(&req, &att) {
        return Ok(res);
    }
    let mut res = json_or_xml(&req, &json!(OPERATIONS));
    if let Ok(v) = etag(att.revision, &att.uncompressed_md5).parse() {
        res.headers_mut().insert(header::ETAG, v);
    }
    Ok(res)
}

async fn get(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let (_, att) = find(&state, &req).await?;
    if let Some(res) = not_modified(&req, &att) {
        return Ok(res);
    }
    let op = req.match_info().get("op").unwrap_or_default().to_string();
    let tag = etag(att.revision, &att.uncompressed_md5);
    let text = |s: String| {
        HttpResponse::Ok()
            .content_type("text/plain")
            .insert_header((header::ETAG, tag.clone()))
            .body(s)
    };
    Ok(match op.as_str() {
        "size" => text(att.uncompressed_size.to_string()),
        "compressed-size" => text(att.compressed_size.to_string()),
        "md5" => text(att.uncompressed_md5.clone()),
        "compressed-md5" => text(att.compressed_md5.clone()),
        "is-compressed" => text(if att.compression == 2 { "1" } else { "0" }.into()),
        "info" => {
            let mut res = json_or_xml(
                &req,
                &json!({
                    "CompressedMD5": att.compressed_md5, "CompressedSize": att.compressed_size,
                    "ContentType": att.file_type, "UncompressedMD5": att.uncompressed_md5,
                    "UncompressedSize": att.uncompressed_size, "Uuid": att.uuid,
                }),
            );
            if let Ok(v) = tag.parse() {
                res.headers_mut().insert(header::ETAG, v);
            }
            res
        }
        "data" => {
            let bytes = read(&state, &att).await?;
            let mut res = ranged(&req, bytes, &mime(&state, att.file_type))?;
            res.headers_mut().insert(header::ETAG, header_value(&tag)?);
            if let Some(name) = arg(&req, "filename") {
                let v = header_value(&format!("filename=\"{name}\""))?;
                res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            res
        }
        "compressed-data" => {
            let storage = state.storage.clone();
            let uuid = att.uuid.clone();
            let raw = web::block(move || storage.read_raw(&uuid)).await??;
            let content_type = match att.compression {
                2 => "application/octet-stream".to_string(),
                _ => mime(&state, att.file_type),
            };
            let mut res = ranged(&req, raw, &content_type)?;
            res.headers_mut().insert(header::ETAG, header_value(&tag)?);
            res
        }
        _ => return Err(ApiError::unknown_resource()),
    })
}

fn header_value(v: &str) -> ApiResult<header::HeaderValue> {
    v.parse()
        .map_err(|_| ApiError::bad_request(format!("Bad header value: {v}")))
}

/// The answer of a data route: all of it, or the part a `Range: bytes=A-B` header asks for
/// (206; as Orthanc reads it, `bytes=-B` means bytes 0 to B and `bytes=-` all of them).
fn ranged(req: &HttpRequest, data: Vec<u8>, content_type: &str) -> ApiResult<HttpResponse> {
    let Some(range) = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(HttpResponse::Ok().content_type(content_type).body(data));
    };
    let bad = || ApiError::new(OrthancCode::BadRange, format!("Bad range: {range}"));
    let (first, last) = range
        .trim()
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(bad)?;
    let number = |s: &str, default: u64| -> ApiResult<u64> {
        match s.trim() {
            "" => Ok(default),
            s => s.parse().map_err(|_| bad()),
        }
    };
    let size = data.len() as u64;
    let end = size.checked_sub(1).ok_or_else(bad)?;
    let (first, last) = (number(first, 0)?, number(last, end)?.min(end));
    if first > last {
        return Err(bad());
    }
    let part = web::Bytes::from(data).slice(first as usize..=last as usize);
    Ok(HttpResponse::PartialContent()
        .content_type("application/octet-stream")
        .insert_header((
            header::CONTENT_RANGE,
            format!("bytes {first}-{last}/{size}"),
        ))
        .body(part))
}

/// `/compress` and `/uncompress`: stores the data again with the other compression.
async fn recompress(
    state: &AppState,
    row: &ResourceRow,
    att: &AttachmentRow,
    compress: bool,
) -> ApiResult<()> {
    if (att.compression == 2) == compress {
        return Ok(());
    }
    let data = read(state, att).await?;
    let storage = state.storage.clone();
    let (file, compressed_md5) = web::block(move || -> ApiResult<_> {
        let (file, handle) = storage.write(&data, compress)?;
        let md5 = md5_hex(&storage.read_raw(&file.uuid)?);
        if let Err(e) = storage.sync(&handle) {
            storage.remove(&file.uuid);
            return Err(pacsnode_actors::storage::StorageError::from(e).into());
        }
        Ok((file, md5))
    })
    .await??;
    let (id, file_type, uuid) = (row.public_id.clone(), att.file_type, file.uuid.clone());
    let done = state
        .writer
        .write(move |c| attachments::set_compression(c, &id, file_type, &file, &compressed_md5))
        .await;
    remove_later(state, Some(done.as_ref().map_or(uuid, |old| old.clone())));
    done?;
    Ok(())
}

async fn post(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let (row, att) = find(&state, &req).await?;
    match req.match_info().get("op").unwrap_or_default() {
        op @ ("compress" | "uncompress") => {
            recompress(&state, &row, &att, op == "compress").await?;
            Ok(Answer::Json(json!({})))
        }
        "verify-md5" => {
            let bytes = read(&state, &att).await?;
            let md5 = web::block(move || md5_hex(&bytes)).await?;
            if md5 != att.uncompressed_md5 {
                return Err(ApiError::new(
                    OrthancCode::CorruptedFile,
                    "The MD5 of the attachment does not match",
                ));
            }
            Ok(Answer::Json(json!({})))
        }
        _ => Err(ApiError::unknown_resource()),
    }
}

/// The content type a PUT or DELETE names, refused when it is one of Orthanc's own.
fn writable(state: &AppState, req: &HttpRequest) -> ApiResult<i64> {
    let number = type_number(state, &name_of(req))?;
    if number < FIRST_USER_TYPE {
        return Err(ApiError::new(
            OrthancCode::ForbiddenAccess,
            "Cannot modify a system attachment",
        ));
    }
    Ok(number)
}

fn now() -> String {
    chrono::Local::now().format("%Y%m%dT%H%M%S").to_string()
}

async fn put(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let row = lookup(&state, &req).await?;
    let file_type = writable(&state, &req)?;
    let expected = revision_header(&req, header::IF_MATCH)?;
    let storage = state.storage.clone();
    let compress = state.settings.storage_compression;
    // The file is durable before the index records it, as an instance's.
    let new = web::block(move || -> ApiResult<NewAttachment> {
        let (file, handle) = storage.write(&body, compress)?;
        let md5 = md5_hex(&body);
        let compressed_md5 = if compress {
            md5_hex(&storage.read_raw(&file.uuid)?)
        } else {
            md5.clone()
        };
        if let Err(e) = storage.sync(&handle) {
            storage.remove(&file.uuid);
            return Err(pacsnode_actors::storage::StorageError::from(e).into());
        }
        Ok(NewAttachment {
            file_type,
            file,
            md5,
            compressed_md5,
        })
    })
    .await??;
    let (uuid, md5) = (new.file.uuid.clone(), new.md5.clone());
    let (id, check, now) = (row.public_id.clone(), state.settings.check_revisions, now());
    let done = state
        .writer
        .write(move |c| attachments::set_attachment(c, &id, &new, expected, check, &now))
        .await;
    let obsolete = match &done {
        Ok((_, old)) => old.clone(),
        Err(_) => Some(uuid),
    };
    remove_later(&state, obsolete);
    let (revision, _) = done?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::ETAG, etag(revision, &md5)))
        .body("{}"))
}

async fn delete(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let row = lookup(&state, &req).await?;
    let file_type = writable(&state, &req)?;
    let expected = revision_header(&req, header::IF_MATCH)?;
    let (id, check, now) = (row.public_id.clone(), state.settings.check_revisions, now());
    let uuid = state
        .writer
        .write(move |c| attachments::delete_attachment(c, &id, file_type, expected, check, &now))
        .await?;
    remove_later(&state, Some(uuid));
    Ok(Answer::Json(json!({})))
}

/// Removes a file no committed row references, off the async thread.
fn remove_later(state: &AppState, uuid: Option<String>) {
    if let Some(uuid) = uuid {
        let storage = state.storage.clone();
        actix_web::rt::spawn(async move {
            pacsnode_actors::ingest::remove_files(&storage, vec![uuid]).await;
        });
    }
}
