//! `/{level}/{id}/metadata[/{name}]` (with revisions, `ETag` / `If-Match` when
//! `CheckRevisions`) and the read side of `/{level}/{id}/attachments`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use md5::{Digest, Md5};
use pacsnode_actors::index::AttachmentRow;
use pacsnode_actors::model::MetadataType;
use serde_json::{json, Map, Value};

use super::error::{ApiError, ApiResult, OrthancCode};
use super::middleware::not_allowed;
use super::resources::lookup;
use super::respond::{arg, flag, json_or_xml, Answer};
use super::tags::read_file;
use super::AppState;

const L: &str = "{level:patients|studies|series|instances}";
const ATTACHMENT_OPERATIONS: &[&str] = &[
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

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(format!("/{L}/{{id}}/metadata"))
            .route(web::get().to(list))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource(format!("/{L}/{{id}}/metadata/{{name}}"))
            .route(web::get().to(get))
            .route(web::put().to(put))
            .route(web::delete().to(delete))
            .default_service(not_allowed("DELETE,GET,PUT")),
    )
    .service(
        web::resource(format!("/{L}/{{id}}/attachments"))
            .route(web::get().to(attachments))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource(format!("/{L}/{{id}}/attachments/{{name}}"))
            .route(web::get().to(attachment_operations))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource(format!("/{L}/{{id}}/attachments/{{name}}/{{op}}"))
            .route(web::get().to(attachment_get))
            .route(web::post().to(attachment_post))
            .default_service(not_allowed("GET,POST")),
    );
}

/// Resolves a metadata name (built-in, user-defined, or a number) to its number.
pub(crate) fn metadata_number(state: &AppState, name: &str) -> Option<i64> {
    if let Some(m) = MetadataType::from_orthanc_name(name) {
        return Some(m.number());
    }
    if let Some(n) = state.settings.user_metadata.get(name) {
        return Some(*n);
    }
    name.parse::<i64>().ok().filter(|n| *n > 0 && *n <= 65535)
}

pub(crate) fn metadata_name(state: &AppState, number: i64) -> String {
    if let Some(m) = MetadataType::from_number(number) {
        return m.orthanc_name().to_string();
    }
    state
        .settings
        .user_metadata
        .iter()
        .find(|(_, n)| **n == number)
        .map(|(k, _)| k.clone())
        .unwrap_or_else(|| number.to_string())
}

fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn etag(revision: i64, md5: &str) -> String {
    format!("\"{revision}-{md5}\"")
}

/// The revision given by `If-Match` (`"rev-md5"`).
fn if_match(req: &HttpRequest) -> ApiResult<Option<i64>> {
    let Some(v) = req
        .headers()
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    let v = v.trim().trim_matches('"');
    let rev = v.split('-').next().unwrap_or("");
    rev.parse().map(Some).map_err(|_| {
        ApiError::new(
            OrthancCode::Revision,
            format!("Bad revision in \"If-Match\": {v}"),
        )
    })
}

fn name_of(req: &HttpRequest) -> String {
    req.match_info().get("name").unwrap_or_default().to_string()
}

async fn list(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let row = lookup(&state, &req).await?;
    let numeric = flag(&req, "numeric")?.unwrap_or(false);
    let key = |n: i64| {
        if numeric {
            n.to_string()
        } else {
            metadata_name(&state, n)
        }
    };
    let meta = state.reader.metadata(row.id).await?;
    if flag(&req, "expand")?.unwrap_or(false) {
        let m: Map<String, Value> = meta
            .into_iter()
            .map(|(n, v, _)| (key(n), json!(v)))
            .collect();
        return Ok(Answer::Json(Value::Object(m)));
    }
    if numeric {
        return Ok(Answer::Json(json!(meta
            .iter()
            .map(|(n, _, _)| n)
            .collect::<Vec<_>>())));
    }
    Ok(Answer::Json(json!(meta
        .iter()
        .map(|(n, _, _)| key(*n))
        .collect::<Vec<_>>())))
}

async fn get(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let row = lookup(&state, &req).await?;
    let name = name_of(&req);
    let number = metadata_number(&state, &name)
        .ok_or_else(|| ApiError::inexistent_item(format!("Unknown metadata: {name}")))?;
    let (value, revision) = state
        .reader
        .metadata_one(row.id, number)
        .await?
        .ok_or_else(|| ApiError::silent(OrthancCode::InexistentItem))?;
    let tag = etag(revision, &md5_hex(value.as_bytes()));
    let none_match = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    if let Some(v) = none_match.map(str::trim) {
        let well_formed = v.len() > 2 && v.starts_with('"') && v.ends_with('"') && v.contains('-');
        if !well_formed {
            return Err(ApiError::bad_request(format!(
                "Bad format of the \"If-None-Match\" header: {v}"
            )));
        }
        if v == tag {
            return Ok(HttpResponse::NotModified().finish());
        }
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain")
        .insert_header((header::ETAG, tag))
        .body(value))
}

fn writable(number: i64) -> ApiResult<()> {
    if number < 1024 {
        return Err(ApiError::new(
            OrthancCode::ForbiddenAccess,
            "Cannot modify a reserved metadata",
        ));
    }
    Ok(())
}

async fn put(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let row = lookup(&state, &req).await?;
    let name = name_of(&req);
    let number = metadata_number(&state, &name)
        .ok_or_else(|| ApiError::inexistent_item(format!("Unknown metadata: {name}")))?;
    writable(number)?;
    let value = String::from_utf8_lossy(&body).into_owned();
    let mut expected = if_match(&req)?;
    if state.settings.check_revisions && expected.is_none() {
        if state.reader.metadata_one(row.id, number).await?.is_some() {
            return Err(ApiError::new(
                OrthancCode::Revision,
                "HTTP header \"If-Match\" is missing, as \"CheckRevisions\" is \"true\"",
            ));
        }
    } else if !state.settings.check_revisions {
        expected = None;
    }
    let (id, v, now) = (
        row.public_id.clone(),
        value.clone(),
        chrono::Local::now().format("%Y%m%dT%H%M%S").to_string(),
    );
    let revision = state
        .writer
        .write(move |c| {
            pacsnode_actors::index::write::set_metadata(c, &id, number, &v, expected, &now)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain")
        .insert_header((header::ETAG, etag(revision, &md5_hex(value.as_bytes()))))
        .finish())
}

async fn delete(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let row = lookup(&state, &req).await?;
    let name = name_of(&req);
    let number = metadata_number(&state, &name)
        .ok_or_else(|| ApiError::inexistent_item(format!("Unknown metadata: {name}")))?;
    writable(number)?;
    let expected = if_match(&req)?;
    if state.settings.check_revisions && expected.is_none() {
        return Err(ApiError::new(
            OrthancCode::Revision,
            "HTTP header \"If-Match\" is missing, as \"CheckRevisions\" is \"true\"",
        ));
    }
    let id = row.public_id.clone();
    let now = chrono::Local::now().format("%Y%m%dT%H%M%S").to_string();
    let expected = if state.settings.check_revisions {
        expected
    } else {
        None
    };
    state
        .writer
        .write(move |c| {
            pacsnode_actors::index::write::delete_metadata(c, &id, number, expected, &now)
        })
        .await?;
    Ok(Answer::Empty)
}

fn attachment_name(file_type: i64) -> String {
    match file_type {
        1 => "dicom".into(),
        2 => "dicom-as-json".into(),
        3 => "dicom-until-pixel-data".into(),
        n => n.to_string(),
    }
}

async fn find_attachment(
    state: &AppState,
    req: &HttpRequest,
) -> ApiResult<(pacsnode_actors::index::ResourceRow, AttachmentRow)> {
    let row = lookup(state, req).await?;
    let name = name_of(req);
    let att = state
        .reader
        .attachments(row.id)
        .await?
        .into_iter()
        .find(|a| attachment_name(a.file_type) == name || a.file_type.to_string() == name)
        .ok_or_else(|| ApiError::bare(OrthancCode::UnknownResource))?;
    Ok((row, att))
}

async fn attachments(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let row = lookup(&state, &req).await?;
    let list = state.reader.attachments(row.id).await?;
    if flag(&req, "full")?.unwrap_or(false) {
        let m: Map<String, Value> = list
            .iter()
            .map(|a| (attachment_name(a.file_type), json!(a.file_type)))
            .collect();
        return Ok(Answer::Json(Value::Object(m)));
    }
    Ok(Answer::Json(json!(list
        .iter()
        .map(|a| attachment_name(a.file_type))
        .collect::<Vec<_>>())))
}

async fn attachment_operations(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    find_attachment(&state, &req).await?;
    Ok(Answer::Json(json!(ATTACHMENT_OPERATIONS)))
}

async fn attachment_get(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let (row, att) = find_attachment(&state, &req).await?;
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
            res.headers_mut().insert(
                header::ETAG,
                tag.parse()
                    .map_err(|_| ApiError::bare(OrthancCode::InternalError))?,
            );
            res
        }
        "data" => {
            let bytes = read_file(&state, &row).await?;
            let mut res = HttpResponse::Ok();
            res.content_type(if att.file_type == 1 {
                "application/dicom"
            } else {
                "application/octet-stream"
            });
            res.insert_header((header::ETAG, tag.clone()));
            if let Some(name) = arg(&req, "filename") {
                res.insert_header((header::CONTENT_DISPOSITION, format!("filename=\"{name}\"")));
            }
            res.body(bytes)
        }
        "compressed-data" => {
            let storage = state.storage.clone();
            let uuid = att.uuid.clone();
            let raw = web::block(move || storage.read_raw(&uuid)).await??;
            HttpResponse::Ok()
                .content_type("application/octet-stream")
                .insert_header((header::ETAG, tag))
                .body(raw)
        }
        _ => return Err(ApiError::unknown_resource()),
    })
}

async fn attachment_post(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let (row, att) = find_attachment(&state, &req).await?;
    match req.match_info().get("op").unwrap_or_default() {
        "verify-md5" => {
            let bytes = read_file(&state, &row).await?;
            let md5 = web::block(move || md5_hex(&bytes)).await?;
            if md5 != att.uncompressed_md5 {
                return Err(ApiError::new(
                    OrthancCode::CorruptedFile,
                    "The MD5 of the attachment does not match",
                ));
            }
            Ok(Answer::Json(json!({})))
        }
        _ => Err(ApiError::new(
            OrthancCode::NotImplemented,
            "Changing the compression of an attachment is not supported yet",
        )),
    }
}
