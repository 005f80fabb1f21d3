//! What a find answers for each resource: its id, the expanded JSON (`Expand`), or the parts
//! listed in `ResponseContent`; with `RequestedTags` when some were asked for.

use pacsnode_actors::index::read::{self, Extras};
use pacsnode_actors::index::{IndexError, ResourceRow};
use pacsnode_actors::model::main_tags::TagNum;
use rusqlite::Connection;
use serde_json::{json, Map, Value};

use super::error::{ApiError, ApiResult};
use super::metadata::metadata_name;
use super::requested::requested_tags_sync;
use super::resource_json::{expand_sync, expand_with, TagFormat, EXPAND_PAGE};
use super::AppState;

/// The form of each answer of a find.
#[derive(Debug, Clone)]
pub enum Content {
    Ids,
    Expand {
        format: TagFormat,
        requested: Vec<TagNum>,
    },
    Fields {
        fields: Vec<String>,
        format: TagFormat,
        requested: Vec<TagNum>,
    },
}

const FIELDS: &[&str] = &[
    "MainDicomTags",
    "Children",
    "Parent",
    "IsStable",
    "Status",
    "Labels",
    "Metadata",
    "Attachments",
    "IsProtected",
    "RequestedTags",
];

impl Content {
    /// Reads `Expand`, `ResponseContent` and the tag format of a find body.
    pub fn from_body(body: &Value, requested: Vec<TagNum>) -> ApiResult<Content> {
        let format = TagFormat::from_body(body, TagFormat::Simplify);
        if let Some(list) = body.get("ResponseContent") {
            let list = list.as_array().ok_or_else(|| {
                ApiError::bad_request("Field \"ResponseContent\" must be an array")
            })?;
            let mut fields = Vec::new();
            for f in list {
                let f = f.as_str().unwrap_or("");
                if !FIELDS.contains(&f) {
                    return Err(ApiError::bad_request(format!(
                        "Unsupported value in \"ResponseContent\": {f}"
                    )));
                }
                fields.push(f.to_string());
            }
            return Ok(Content::Fields {
                fields,
                format,
                requested,
            });
        }
        if body.get("Expand").and_then(Value::as_bool).unwrap_or(false) {
            Ok(Content::Expand { format, requested })
        } else {
            Ok(Content::Ids)
        }
    }
}

/// The answer for one resource. Blocking.
pub fn render_sync(
    c: &Connection,
    state: &AppState,
    row: &ResourceRow,
    content: &Content,
) -> Result<Value, IndexError> {
    render_with(c, state, row, None, content)
}

/// The answers for many resources, in order: their extras are read with a few set-based
/// queries per page of rows rather than one query each. Blocking.
pub fn render_many(
    c: &Connection,
    state: &AppState,
    rows: &[ResourceRow],
    content: &Content,
) -> Result<Vec<Value>, IndexError> {
    if matches!(content, Content::Ids) {
        return Ok(rows.iter().map(|r| json!(r.public_id)).collect());
    }
    let mut out = Vec::with_capacity(rows.len());
    for page in rows.chunks(EXPAND_PAGE) {
        let mut extras = read::extras_many(c, page)?;
        for row in page {
            out.push(render_with(c, state, row, extras.remove(&row.id), content)?);
        }
    }
    Ok(out)
}

fn render_with(
    c: &Connection,
    state: &AppState,
    row: &ResourceRow,
    extras: Option<Extras>,
    content: &Content,
) -> Result<Value, IndexError> {
    let expand = |format: TagFormat| match extras {
        Some(e) => expand_with(c, row, e, format),
        None => expand_sync(c, row, format),
    };
    match content {
        Content::Ids => Ok(json!(row.public_id)),
        Content::Expand { format, requested } => {
            let mut v = expand(*format)?;
            add_requested(c, state, row, requested, *format, &mut v)?;
            Ok(v)
        }
        Content::Fields {
            fields,
            format,
            requested,
        } => {
            let full = expand(*format)?;
            let mut out = Map::new();
            out.insert("ID".into(), json!(row.public_id));
            out.insert("Type".into(), json!(row.level.name()));
            let has = |f: &str| fields.iter().any(|x| x == f);
            let keys: &[(&str, &[&str])] = &[
                ("MainDicomTags", &["MainDicomTags", "PatientMainDicomTags"]),
                ("Children", &["Studies", "Series", "Instances"]),
                ("Parent", &["ParentPatient", "ParentStudy", "ParentSeries"]),
                ("IsStable", &["IsStable"]),
                ("Status", &["Status"]),
                ("Labels", &["Labels"]),
                ("IsProtected", &["IsProtected"]),
            ];
            for (field, names) in keys {
                if has(field) {
                    for n in *names {
                        if let Some(v) = full.get(*n) {
                            out.insert(n.to_string(), v.clone());
                        }
                    }
                }
            }
            if has("Metadata") {
                let meta: Map<String, Value> = read::metadata(c, row.id)?
                    .into_iter()
                    .map(|(k, v, _)| (metadata_name(state, k), json!(v)))
                    .collect();
                out.insert("Metadata".into(), Value::Object(meta));
            }
            if has("Attachments") {
                let list: Vec<Value> = read::attachments(c, row.id)?
                    .into_iter()
                    .map(|a| {
                        json!({
                            "Uuid": a.uuid,
                            "ContentType": a.file_type,
                            "UncompressedSize": a.uncompressed_size,
                            "CompressedSize": a.compressed_size,
                            "UncompressedMD5": a.uncompressed_md5,
                            "CompressedMD5": a.compressed_md5,
                            "CompressionType": a.compression,
                            "Revision": a.revision,
                        })
                    })
                    .collect();
                out.insert("Attachments".into(), Value::Array(list));
            }
            let mut v = Value::Object(out);
            add_requested(c, state, row, requested, *format, &mut v)?;
            Ok(v)
        }
    }
}

/// Adds `RequestedTags` to an answer, when tags were requested.
pub fn add_requested(
    c: &Connection,
    state: &AppState,
    row: &ResourceRow,
    requested: &[TagNum],
    format: TagFormat,
    v: &mut Value,
) -> Result<(), IndexError> {
    if requested.is_empty() {
        return Ok(());
    }
    let tags = requested_tags_sync(c, row, requested, format, &state.dictionary)?;
    if let Value::Object(m) = v {
        m.insert("RequestedTags".into(), tags);
    }
    Ok(())
}
