//! `POST /tools/find`: the resources of a level whose main DICOM tags (or those of their
//! ancestors) match a query, with DICOM matching rules (`pacsnode_actors::find`).

use std::collections::HashMap;

use actix_web::web;
use pacsnode_actors::find::{self, Constraint};
use pacsnode_actors::index::{read, IndexError, ResourceRow};
use pacsnode_actors::model::dicom::dictionary::parse_tag;
use pacsnode_actors::model::Level;
use rusqlite::Connection;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult, OrthancCode};
use super::middleware::not_allowed;
use super::resource_json::{expand_sync, TagFormat};
use super::respond::Answer;
use super::tools::parse_json;
use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tools/find")
            .route(web::post().to(find))
            .default_service(not_allowed("POST")),
    );
}

fn number(body: &Value, key: &str) -> ApiResult<u64> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| ApiError::bad_request(format!("\"{key}\" must be a positive integer"))),
    }
}

async fn find(state: web::Data<AppState>, body: web::Bytes) -> ApiResult<Answer> {
    let body = parse_json(&body)?;
    if !body.is_object() {
        return Err(ApiError::bad_request("The body must contain a JSON object"));
    }
    let level = body
        .get("Level")
        .and_then(Value::as_str)
        .and_then(Level::parse)
        .ok_or_else(|| {
            ApiError::bad_request("Field \"Level\" is missing or is not a resource level")
        })?;
    let case_sensitive = body.get("CaseSensitive").and_then(Value::as_bool);
    let case_sensitive_pn = state
        .settings
        .raw
        .get("CaseSensitivePN")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut constraints = Vec::new();
    if let Some(query) = body.get("Query") {
        let query = query
            .as_object()
            .ok_or_else(|| ApiError::bad_request("Field \"Query\" must be a JSON object"))?;
        for (name, pattern) in query {
            let tag = parse_tag(name)
                .ok_or_else(|| ApiError::bad_request(format!("Unknown DICOM tag: {name}")))?;
            let pattern = pattern.as_str().ok_or_else(|| {
                ApiError::bad_request(format!("The value of {name} must be a string"))
            })?;
            let c = find::constraint(
                level,
                (tag.0, tag.1),
                pattern,
                case_sensitive,
                case_sensitive_pn,
            )
            .map_err(|e| ApiError::new(OrthancCode::NotImplemented, e.to_string()))?;
            constraints.push(c);
        }
    }
    let (since, limit) = (number(&body, "Since")?, number(&body, "Limit")?);
    let expand = body.get("Expand").and_then(Value::as_bool).unwrap_or(false);
    let format = TagFormat::from_body(&body, TagFormat::Simplify);
    let out = state
        .reader
        .with(move |c| run(c, level, &constraints, since, limit, expand, format))
        .await?;
    Ok(Answer::Json(out))
}

fn run(
    c: &Connection,
    level: Level,
    constraints: &[Constraint],
    since: u64,
    limit: u64,
    expand: bool,
    format: TagFormat,
) -> Result<Value, IndexError> {
    let mut stmt = c.prepare_cached("SELECT id FROM resources WHERE level = ? ORDER BY id")?;
    let ids = stmt
        .query_map([level as i64], |r| r.get::<_, i64>(0))?
        .collect::<Result<Vec<i64>, _>>()?;
    let mut cache: HashMap<i64, ResourceRow> = HashMap::new();
    let (mut skipped, mut out) = (0u64, Vec::new());
    // The highest level whose tags are needed (a study keeps a copy of its patient's tags).
    let top = constraints
        .iter()
        .map(|k| {
            if k.level == Level::Patient && level >= Level::Study {
                Level::Study
            } else {
                k.level
            }
        })
        .min()
        .unwrap_or(level);
    for id in ids {
        let row = read::resource_by_id(c, id)?;
        let mut chain = vec![row.clone()];
        while chain.last().is_some_and(|r| r.level > top) {
            let Some(parent) = chain.last().and_then(|r| r.parent_id) else {
                break;
            };
            let p = match cache.get(&parent) {
                Some(p) => p.clone(),
                None => {
                    let p = read::resource_by_id(c, parent)?;
                    cache.insert(parent, p.clone());
                    p
                }
            };
            chain.push(p);
        }
        let tags_at = |l: Level| {
            // A study keeps a copy of its patient's tags (as Orthanc's PatientMainDicomTags).
            let l = if l == Level::Patient && level >= Level::Study {
                Level::Study
            } else {
                l
            };
            chain.iter().find(|r| r.level == l).map(|r| &r.main_tags)
        };
        if !find::matches_all(constraints, tags_at) {
            continue;
        }
        if skipped < since {
            skipped += 1;
            continue;
        }
        out.push(if expand {
            expand_sync(c, &row, format)?
        } else {
            json!(row.public_id)
        });
        if limit > 0 && out.len() as u64 >= limit {
            break;
        }
    }
    Ok(Value::Array(out))
}
