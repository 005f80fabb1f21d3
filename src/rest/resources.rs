//! Browsing and deleting resources: `/{level}`, `/{level}/{id}`, parents and children,
//! `/statistics` of a resource, `/patients/{id}/protected`.

use actix_web::{web, HttpRequest};
use pacsnode_actors::index::{read, IndexError, ResourceRow};
use pacsnode_actors::model::Level;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::middleware::not_allowed;
use super::requested;
use super::resource_json::{write_expanded, TagFormat, EXPAND_PAGE};
use super::respond::{arg, flag, wants_xml, Answer};
use super::response::{render_many, render_sync, Content};
use super::AppState;
use pacsnode_actors::model::main_tags::TagNum;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Literal prefixes per level (no regex on the first segment): these are the hot routes.
    for level in Level::ALL {
        let prefix = format!("/{}", level.plural());
        if level != Level::Instance {
            // `/instances` is registered with its POST in `upload`.
            cfg.service(
                web::resource(prefix.clone())
                    .route(web::get().to(list))
                    .default_service(not_allowed("GET")),
            );
        }
        cfg.service(
            web::resource(format!("{prefix}/{{id}}"))
                .route(web::get().to(get_one))
                .route(web::delete().to(delete))
                .default_service(not_allowed("DELETE,GET")),
        )
        .service(
            web::resource(format!("{prefix}/{{id}}/statistics"))
                .route(web::get().to(statistics))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource(format!(
                "{prefix}/{{id}}/{{rel:patient|study|series|studies|instances}}"
            ))
            .route(web::get().to(related))
            .default_service(not_allowed("GET")),
        );
    }
    cfg.service(
        web::resource("/patients/{id}/protected")
            .route(web::get().to(get_protected))
            .route(web::put().to(put_protected))
            .default_service(not_allowed("GET,PUT")),
    );
}

/// The level named by the first path segment (`/patients/...`).
pub fn level_of(req: &HttpRequest) -> Level {
    req.path()
        .split('/')
        .find(|s| !s.is_empty())
        .and_then(Level::from_plural)
        .unwrap_or(Level::Instance)
}

/// Looks up `{id}` at the level of the path.
pub async fn lookup(state: &AppState, req: &HttpRequest) -> ApiResult<ResourceRow> {
    let id = req.match_info().get("id").unwrap_or_default();
    Ok(state.reader.resource(level_of(req), id).await?)
}

fn parse_u64(req: &HttpRequest, name: &str) -> ApiResult<Option<u64>> {
    match arg(req, name) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!("Argument \"{name}\" must be an integer: {v}"))
        }),
    }
}

/// `GET /instances` (registered with `POST /instances`).
pub async fn list_instances(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    list(state, req).await
}

async fn list(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let level = level_of(&req);
    let since = parse_u64(&req, "since")?;
    let limit = parse_u64(&req, "limit")?;
    if since.is_some() != limit.is_some() {
        let missing = if since.is_some() { "limit" } else { "since" };
        return Err(ApiError::bad_request(format!(
            "Missing \"{missing}\" argument for GET request against: {}",
            req.path()
        )));
    }
    let (since, limit) = (since.unwrap_or(0), limit.unwrap_or(0));
    if flag(&req, "expand")?.unwrap_or(false) {
        let format = TagFormat::from_request(&req, TagFormat::Simplify)?;
        let requested = requested::from_request(&req)?;
        let rows = state.reader.list(level, since, limit).await?;
        if requested.is_empty() && !wants_xml(&req) {
            // Serialized straight from the rows, as `/tools/find` does.
            let body = state
                .reader
                .with(move |c| {
                    write_expanded(c, format, |each| {
                        rows.chunks(EXPAND_PAGE).try_for_each(each)
                    })
                })
                .await?;
            return Ok(Answer::Bytes(body, "application/json; charset=utf-8"));
        }
        Ok(Answer::Json(
            expand_rows(&state, rows, format, requested).await?,
        ))
    } else {
        Ok(Answer::Json(json!(
            state.reader.list_ids(level, since, limit).await?
        )))
    }
}

async fn get_one(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let format = TagFormat::from_request(&req, TagFormat::Simplify)?;
    let (level, id) = (
        level_of(&req),
        req.match_info().get("id").unwrap_or_default().to_string(),
    );
    let content = Content::Expand {
        format,
        requested: requested::from_request(&req)?,
    };
    let st = state.clone();
    let json = state
        .reader
        .with(move |c| match read::resource_by_public_id(c, &id)? {
            Some(row) if row.level == level => render_sync(c, &st, &row, &content),
            _ => Err(IndexError::UnknownResource),
        })
        .await?;
    Ok(Answer::Json(json))
}

async fn delete(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let level = level_of(&req);
    let id = req.match_info().get("id").unwrap_or_default().to_string();
    let remaining = delete_resource(&state, level, id).await?;
    Ok(Answer::Json(json!({ "RemainingAncestor": remaining })))
}

/// Deletes a resource and removes its files after the commit; answers the remaining ancestor.
pub async fn delete_resource(state: &AppState, level: Level, id: String) -> ApiResult<Value> {
    let outcome = state
        .writer
        .write(move |c| pacsnode_actors::index::write::delete_resource(c, &id, level))
        .await?;
    pacsnode_actors::ingest::remove_files(&state.storage, outcome.obsolete_files).await;
    Ok(match outcome.remaining_ancestor {
        Some((l, id)) => {
            json!({"ID": id, "Path": format!("/{}/{}", l.plural(), id), "Type": l.name()})
        }
        None => Value::Null,
    })
}

async fn statistics(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let row = lookup(&state, &req).await?;
    let s = state.reader.resource_statistics(row.id).await?;
    let mut out = serde_json::Map::new();
    for level in Level::ALL.into_iter().filter(|l| *l > row.level) {
        let key = match level {
            Level::Study => "CountStudies",
            Level::Series => "CountSeries",
            _ => "CountInstances",
        };
        out.insert(key.into(), json!(s.counts[level as usize]));
    }
    let mb = |v: u64| json!(v / (1024 * 1024));
    for (key, v) in [
        ("DiskSize", s.disk_size),
        ("UncompressedSize", s.uncompressed_size),
        ("DicomDiskSize", s.dicom_disk_size),
        ("DicomUncompressedSize", s.dicom_uncompressed_size),
    ] {
        out.insert(key.into(), json!(v.to_string()));
        out.insert(format!("{key}MB"), mb(v));
    }
    Ok(Answer::Json(Value::Object(out)))
}

async fn get_protected(state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<Answer> {
    let row = state.reader.resource(Level::Patient, &id).await?;
    Ok(Answer::Text(if row.protected { "1" } else { "0" }.into()))
}

async fn put_protected(
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let text = String::from_utf8_lossy(&body).trim().to_ascii_lowercase();
    let protected = match text.as_str() {
        "1" | "true" => true,
        "0" | "false" => false,
        _ => return Err(ApiError::bad_request("Expected \"0\" or \"1\" in the body")),
    };
    let id = id.into_inner();
    state
        .writer
        .write(move |c| pacsnode_actors::index::write::set_protected(c, &id, protected))
        .await?;
    Ok(Answer::Empty)
}

async fn related(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let row = lookup(&state, &req).await?;
    let rel = req.match_info().get("rel").unwrap_or_default();
    let target = Level::from_plural(rel)
        .or_else(|| Level::parse(rel))
        .unwrap_or(Level::Instance);
    let format = TagFormat::from_request(&req, TagFormat::Simplify)?;
    let singular =
        matches!(rel, "patient" | "study") || (rel == "series" && row.level == Level::Instance);
    if singular {
        if target >= row.level {
            return Err(ApiError::unknown_resource());
        }
        let mut current = row;
        while current.level > target {
            let parent = current.parent_id.ok_or_else(ApiError::unknown_resource)?;
            current = state.reader.resource_by_id(parent).await?;
        }
        let requested = requested::from_request(&req)?;
        let one = expand_rows(&state, vec![current], format, requested).await?;
        return Ok(Answer::Json(one[0].clone()));
    }
    if target <= row.level {
        return Err(ApiError::unknown_resource());
    }
    let rows = state.reader.descendants(row.id, target).await?;
    if flag(&req, "expand")? == Some(false) {
        return Ok(Answer::Json(json!(rows
            .iter()
            .map(|r| r.public_id.clone())
            .collect::<Vec<_>>())));
    }
    let requested = requested::from_request(&req)?;
    Ok(Answer::Json(
        expand_rows(&state, rows, format, requested).await?,
    ))
}

/// The expanded JSON of resources (with `RequestedTags` when asked), in one reader trip.
async fn expand_rows(
    state: &web::Data<AppState>,
    rows: Vec<ResourceRow>,
    format: TagFormat,
    requested: Vec<TagNum>,
) -> ApiResult<Value> {
    let content = Content::Expand { format, requested };
    let st = state.clone();
    let list = state
        .reader
        .with(move |c| render_many(c, &st, &rows, &content))
        .await?;
    Ok(Value::Array(list))
}
