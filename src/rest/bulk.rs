//! `POST /tools/bulk-content`: the JSON of many resources at once, optionally moved to one
//! level (ancestors or descendants, without duplicates), with their metadata.

use actix_web::web;
use pacsnode_actors::index::{read, IndexError, ResourceRow};
use pacsnode_actors::model::{Level, MetadataType};
use rusqlite::Connection;
use serde_json::{Map, Value};

use super::error::{ApiError, ApiResult};
use super::middleware::not_allowed;
use super::resource_json::{expand_sync, TagFormat};
use super::respond::Answer;
use super::tools::parse_json;
use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tools/bulk-content")
            .route(web::post().to(bulk_content))
            .default_service(not_allowed("POST")),
    );
}

async fn bulk_content(state: web::Data<AppState>, body: web::Bytes) -> ApiResult<Answer> {
    let body = parse_json(&body)?;
    let ids: Vec<String> = body
        .get("Resources")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request("Missing \"Resources\" array"))?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| ApiError::bad_request("\"Resources\" must list ids"))
        })
        .collect::<ApiResult<_>>()?;
    let level = match body.get("Level").and_then(Value::as_str) {
        Some(l) => Some(
            Level::parse(l).ok_or_else(|| ApiError::bad_request(format!("Unknown level: {l}")))?,
        ),
        None => None,
    };
    let with_metadata = body
        .get("Metadata")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let format = TagFormat::from_body(&body, TagFormat::Simplify);
    let user_metadata = state.settings.user_metadata.clone();
    let out = state
        .reader
        .with(move |c| {
            let mut rows: Vec<ResourceRow> = Vec::new();
            for id in &ids {
                let Some(row) = read::resource_by_public_id(c, id)? else {
                    return Err(IndexError::UnknownResource);
                };
                for r in at_level(c, row, level)? {
                    if !rows.iter().any(|x| x.id == r.id) {
                        rows.push(r);
                    }
                }
            }
            rows.iter()
                .map(|row| {
                    let mut json = expand_sync(c, row, format)?;
                    if with_metadata {
                        let mut m = Map::new();
                        for (kind, value, _) in read::metadata(c, row.id)? {
                            let name = MetadataType::from_number(kind)
                                .map(|t| t.orthanc_name().to_string())
                                .or_else(|| {
                                    user_metadata
                                        .iter()
                                        .find(|(_, n)| **n == kind)
                                        .map(|(k, _)| k.clone())
                                })
                                .unwrap_or_else(|| kind.to_string());
                            m.insert(name, Value::String(value));
                        }
                        json["Metadata"] = Value::Object(m);
                    }
                    Ok(json)
                })
                .collect::<Result<Vec<_>, IndexError>>()
        })
        .await?;
    Ok(Answer::Json(Value::Array(out)))
}

/// The resource itself, its ancestor, or its descendants at `level`.
fn at_level(
    c: &Connection,
    row: ResourceRow,
    level: Option<Level>,
) -> Result<Vec<ResourceRow>, IndexError> {
    let Some(level) = level else {
        return Ok(vec![row]);
    };
    if level > row.level {
        return read::descendants(c, row.id, level);
    }
    let mut current = row;
    while current.level > level {
        let parent = current.parent_id.ok_or(IndexError::UnknownResource)?;
        current = read::resource_by_id(c, parent)?;
    }
    Ok(vec![current])
}
