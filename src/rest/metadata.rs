//! `/{level}/{id}/metadata[/{name}]` (with revisions, `ETag` / `If-Match` when
//! `CheckRevisions`).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use md5::{Digest, Md5};
use pacsnode_actors::model::MetadataType;
use serde_json::{json, Map, Value};

use super::error::{ApiError, ApiResult, OrthancCode};
use super::middleware::not_allowed;
use super::resources::lookup;
use super::respond::{flag, Answer};
use super::AppState;

/// The levels in a route.
pub(crate) const L: &str = "{level:patients|studies|series|instances}";

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

pub(crate) fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn etag(revision: i64, md5: &str) -> String {
    format!("\"{revision}-{md5}\"")
}

/// The revision and MD5 named by an `If-Match` or `If-None-Match` header (`"1-md5"`,
/// quotes optional); `None` if absent, 400 if malformed.
pub(crate) fn revision_header(
    req: &HttpRequest,
    name: header::HeaderName,
) -> ApiResult<Option<(i64, String)>> {
    let Some(v) = req.headers().get(&name).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let v = v.trim().trim_matches('"');
    v.split_once('-')
        .and_then(|(rev, md5)| Some((rev.parse().ok()?, md5.to_string())))
        .map(Some)
        .ok_or_else(|| ApiError::bad_request(format!("Bad revision in \"{name}\": {v}")))
}

pub(crate) fn name_of(req: &HttpRequest) -> String {
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
    let md5 = md5_hex(value.as_bytes());
    let tag = etag(revision, &md5);
    if revision_header(&req, header::IF_NONE_MATCH)? == Some((revision, md5)) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, tag))
            .finish());
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
    let mut expected = revision_header(&req, header::IF_MATCH)?;
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
    let expected = revision_header(&req, header::IF_MATCH)?;
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
