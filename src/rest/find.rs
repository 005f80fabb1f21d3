//! `POST /tools/find` and `POST /tools/count-resources`: the body is read into a
//! [`FindQuery`] (actors' find engine), then each result is rendered as Orthanc does
//! (`Expand`, `ResponseContent`, `RequestedTags`).

use actix_web::{web, HttpRequest};
use pacsnode_actors::find::{self, FindQuery, LabelsConstraint, OrderBy, OrderKey};
use pacsnode_actors::index::IndexError;
use pacsnode_actors::model::main_tags::TagNum;
use pacsnode_actors::model::Level;
use serde_json::{json, Map, Value};

use super::error::{ApiError, ApiResult};
use super::metadata::metadata_number;
use super::middleware::not_allowed;
use super::requested::parse_names;
use super::resource_json::{write_expanded, EXPAND_PAGE};
use super::respond::{wants_xml, Answer};
use super::response::{render_many, Content};
use super::tools::parse_json;
use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tools/find")
            .route(web::post().to(find))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/tools/count-resources")
            .route(web::post().to(count))
            .default_service(not_allowed("POST")),
    );
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg.into())
}

fn number(body: &Value, key: &str) -> ApiResult<u64> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| bad(format!("Field \"{key}\" must be a positive integer"))),
    }
}

fn strings<'a>(body: &'a Value, key: &str) -> ApiResult<Vec<&'a str>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| bad(format!("Field \"{key}\" must contain strings")))
            })
            .collect(),
        Some(_) => Err(bad(format!("Field \"{key}\" must be an array of strings"))),
    }
}

fn one_tag(name: &str) -> ApiResult<TagNum> {
    Ok(parse_names([name])?
        .first()
        .copied()
        .unwrap_or((0xffff, 0xffff)))
}

/// A parsed body: the query, and how to answer.
struct Request {
    query: FindQuery,
    case_sensitive: Option<bool>,
    content: Content,
}

async fn parse(state: &AppState, raw: &[u8]) -> ApiResult<Request> {
    let body = parse_json(raw)?;
    if !body.is_object() {
        return Err(bad("The body must contain a JSON object"));
    }
    let level = body
        .get("Level")
        .and_then(Value::as_str)
        .and_then(|l| Level::parse(l).or_else(|| Level::from_plural(&l.to_lowercase())))
        .ok_or_else(|| bad("Field \"Level\" is missing, or should be a resource level"))?;
    let case_sensitive = match body.get("CaseSensitive") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(bad("Field \"CaseSensitive\" must be a Boolean")),
    };
    let mut q = FindQuery::new(level);
    match body.get("Query") {
        None | Some(Value::Null) => {}
        Some(Value::Object(query)) => {
            for (name, pattern) in query {
                let pattern = pattern.as_str().ok_or_else(|| {
                    bad(format!("Tag \"{name}\" must be associated with a string"))
                })?;
                if !pattern.is_empty() {
                    let tag = one_tag(name)?;
                    if find::is_range_tag(tag)
                        && pattern.split('\\').any(|p| p.matches('-').count() > 1)
                    {
                        return Err(bad(format!("Bad range for {name}: {pattern}")));
                    }
                    let sensitive = case_sensitive.unwrap_or(false);
                    q.constraints
                        .push(find::constraint(level, tag, pattern, sensitive));
                }
            }
        }
        Some(_) => return Err(bad("Field \"Query\" must be a JSON object")),
    }
    match body.get("MetadataQuery") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (name, pattern) in m {
                let kind = metadata_number(state, name)
                    .ok_or_else(|| bad(format!("Unknown metadata: {name}")))?;
                let pattern = pattern
                    .as_str()
                    .ok_or_else(|| bad("Field \"MetadataQuery\" must contain strings"))?;
                q.metadata.push((kind, pattern.to_string()));
            }
        }
        Some(_) => return Err(bad("Field \"MetadataQuery\" must be a JSON object")),
    }
    q.labels = strings(&body, "Labels")?
        .into_iter()
        .map(String::from)
        .collect();
    q.labels_constraint = match body.get("LabelsConstraint").map(|v| v.as_str()) {
        None | Some(Some("All")) => LabelsConstraint::All,
        Some(Some("Any")) => LabelsConstraint::Any,
        Some(Some("None")) => LabelsConstraint::None,
        _ => {
            return Err(bad(
                "Field \"LabelsConstraint\" must be \"All\", \"Any\", or \"None\"",
            ))
        }
    };
    q.since = number(&body, "Since")?;
    q.limit = number(&body, "Limit")?;
    if let Some(orders) = body.get("OrderBy") {
        let orders = orders
            .as_array()
            .ok_or_else(|| bad("Field \"OrderBy\" must be an array"))?;
        for o in orders {
            let key = o.get("Key").and_then(Value::as_str).unwrap_or("");
            let descending = match o.get("Direction").and_then(Value::as_str) {
                Some("ASC") | None => false,
                Some("DESC") => true,
                Some(d) => return Err(bad(format!("Unknown OrderBy direction: {d}"))),
            };
            let key = match o.get("Type").and_then(Value::as_str) {
                Some(t @ ("DicomTag" | "DicomTagAsInt")) => {
                    let tag = one_tag(key)?;
                    OrderKey::Tag {
                        tag,
                        source: find::source_of(level, tag),
                        as_int: t == "DicomTagAsInt",
                    }
                }
                Some(t @ ("Metadata" | "MetadataAsInt" | "MetadataAsFloat")) => {
                    OrderKey::Metadata {
                        kind: metadata_number(state, key)
                            .ok_or_else(|| bad(format!("Unknown metadata: {key}")))?,
                        as_float: t != "Metadata",
                    }
                }
                _ => return Err(bad("Field \"OrderBy\": unknown \"Type\"")),
            };
            q.order_by.push(OrderBy { key, descending });
        }
    }
    for (key, parent_level) in [
        ("ParentPatient", Level::Patient),
        ("ParentStudy", Level::Study),
        ("ParentSeries", Level::Series),
    ] {
        if let Some(id) = body.get(key) {
            let id = id
                .as_str()
                .ok_or_else(|| bad(format!("Field \"{key}\" must be a string")))?;
            let row = state.reader.resource(parent_level, id).await?;
            q.parent = Some((row.id, parent_level));
        }
    }
    let requested = parse_names(strings(&body, "RequestedTags")?)?;
    let content = Content::from_body(&body, requested)?;
    Ok(Request {
        query: q,
        case_sensitive,
        content,
    })
}

/// A find's answer: JSON to render, or JSON already serialized.
enum Found {
    Json(Value),
    Bytes(Vec<u8>),
}

async fn find(
    state: web::Data<AppState>,
    http: HttpRequest,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let xml = wants_xml(&http);
    let req = parse(&state, &body).await?;
    if req.case_sensitive == Some(true) && req.query.since > 0 {
        return Err(bad("\"CaseSensitive\" cannot be combined with \"Since\""));
    }
    let (q, content) = (req.query, req.content);
    let limit = state.settings.limit_find_results(q.level);
    let st = state.clone();
    let out = state
        .reader
        .with(move |c| {
            let mut q = q;
            if limit > 0 && (q.limit == 0 || q.limit > limit) {
                q.limit = limit;
            }
            if let Content::Ids = content {
                let ids = find::execute(c, &q).map_err(IndexError::from)?;
                let ids = ids.into_iter().map(|(_, p)| json!(p)).collect();
                return Ok(Found::Json(Value::Array(ids)));
            }
            let page = EXPAND_PAGE;
            match &content {
                // The common case, serialized as it is read (thousands of studies).
                Content::Expand { format, requested } if requested.is_empty() && !xml => {
                    let body =
                        write_expanded(c, *format, |each| find::rows_in_pages(c, &q, page, each))?;
                    Ok(Found::Bytes(body))
                }
                content => {
                    let mut out = Vec::new();
                    find::rows_in_pages(c, &q, page, &mut |rows| {
                        out.extend(render_many(c, &st, rows, content)?);
                        Ok(())
                    })?;
                    Ok(Found::Json(Value::Array(out)))
                }
            }
        })
        .await?;
    Ok(match out {
        Found::Json(v) => Answer::Json(v),
        Found::Bytes(b) => Answer::Bytes(b, "application/json; charset=utf-8"),
    })
}

async fn count(state: web::Data<AppState>, body: web::Bytes) -> ApiResult<Answer> {
    let req = parse(&state, &body).await?;
    if req.case_sensitive == Some(true) {
        return Err(bad(
            "\"CaseSensitive\" is not allowed in /tools/count-resources",
        ));
    }
    let q = req.query;
    let n = state
        .reader
        .with(move |c| find::count(c, &q).map_err(IndexError::from))
        .await?;
    let mut out = Map::new();
    out.insert("Count".into(), json!(n));
    Ok(Answer::Json(Value::Object(out)))
}
