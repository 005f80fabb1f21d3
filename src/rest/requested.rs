//! `RequestedTags` (`/tools/find`) and `?requested-tags=` (resources and lists): main tags of
//! the resource and its ancestors, Orthanc's computed tags, and any other tag, read from the
//! dataset stored in the index for the resource's first instance (never from the files).

use std::sync::Arc;

use actix_web::HttpRequest;
use pacsnode_actors::find::{self, dataset, Source};
use pacsnode_actors::index::{read, IndexError, ResourceRow};
use pacsnode_actors::model::dicom::dictionary::parse_tag;
use pacsnode_actors::model::dicom::{self, Format, JsonOptions, PrivateDictionary};
use pacsnode_actors::model::main_tags::{self, TagNum};
use pacsnode_actors::model::Level;
use rusqlite::Connection;
use serde_json::{json, Map, Value};

use super::error::{ApiError, ApiResult};
use super::resource_json::TagFormat;
use super::respond::query_pairs;

/// Parses tag names or numbers (`PatientName`, `0010,0010`, `00100010`).
pub fn parse_names<'a>(names: impl IntoIterator<Item = &'a str>) -> ApiResult<Vec<TagNum>> {
    names
        .into_iter()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            parse_tag(n)
                .map(|t| (t.0, t.1))
                .ok_or_else(|| ApiError::bad_request(format!("Unknown DICOM tag: \"{n}\"")))
        })
        .collect()
}

/// The `requested-tags` (or older `requestedTags`) GET argument: `;`-separated tags.
pub fn from_request(req: &HttpRequest) -> ApiResult<Vec<TagNum>> {
    let q = query_pairs(req);
    match q
        .iter()
        .find(|(k, _)| k == "requested-tags" || k == "requestedTags")
    {
        Some((_, v)) => parse_names(v.split(';')),
        None => Ok(Vec::new()),
    }
}

/// Orthanc's computed tags, for the level they are defined at.
fn computed(c: &Connection, row: &ResourceRow, tag: TagNum) -> Result<Option<String>, IndexError> {
    let n = |depth| read::count_descendants(c, row.id, depth).map(|n| Some(n.to_string()));
    match (row.level, tag) {
        (_, (0x0008, 0x0056)) => Ok(Some("ONLINE".into())),
        (Level::Patient, (0x0020, 0x1200)) => n(1),
        (Level::Patient, (0x0020, 0x1202)) => n(2),
        (Level::Patient, (0x0020, 0x1204)) => n(3),
        (Level::Study, (0x0020, 0x1206)) => n(1),
        (Level::Study, (0x0020, 0x1208)) => n(2),
        (Level::Series, (0x0020, 0x1209)) => n(1),
        (Level::Study, (0x0008, 0x0061)) => {
            Ok(Some(read::modalities_in_study(c, row.id)?.join("\\")))
        }
        (Level::Study, (0x0008, 0x0062)) => {
            Ok(Some(read::sop_classes_in_study(c, row.id)?.join("\\")))
        }
        _ => Ok(None),
    }
}

fn render(
    dict: &PrivateDictionary,
    tag: TagNum,
    value: Value,
    format: TagFormat,
    out: &mut Map<String, Value>,
) {
    let key = main_tags::tag_key(tag);
    match format {
        TagFormat::Short => {
            out.insert(key, value);
        }
        TagFormat::Simplify => {
            out.insert(dict.name(dicom::Tag(tag.0, tag.1), None), value);
        }
        TagFormat::Full => {
            let name = dict.name(dicom::Tag(tag.0, tag.1), None);
            out.insert(key, json!({"Name": name, "Type": "String", "Value": value}));
        }
    }
}

/// The `RequestedTags` object of a resource.
pub fn requested_tags_sync(
    c: &Connection,
    row: &ResourceRow,
    tags: &[TagNum],
    format: TagFormat,
    dict: &Arc<PrivateDictionary>,
) -> Result<Value, IndexError> {
    let mut out = Map::new();
    let mut from_dataset = Vec::new();
    for &tag in tags {
        if let Some(v) = computed(c, row, tag)? {
            render(dict, tag, Value::String(v), format, &mut out);
            continue;
        }
        match find::source_of(row.level, tag) {
            Source::Main(level) => {
                let mut r = row.clone();
                while r.level > level {
                    match r.parent_id {
                        Some(p) => r = read::resource_by_id(c, p)?,
                        None => break,
                    }
                }
                if let Some(v) = r.main_tags.get(tag) {
                    render(dict, tag, Value::String(v.into()), format, &mut out);
                }
            }
            _ => from_dataset.push(tag),
        }
    }
    if !from_dataset.is_empty() {
        let instance =
            dataset::representative_instance(c, row.id, row.level).map_err(IndexError::from)?;
        let file = match instance {
            Some(i) => dataset::load(c, i).map_err(IndexError::from)?,
            None => None,
        };
        if let Some(file) = file {
            let full = dicom::to_orthanc_json(
                &file.dataset,
                Format::Full,
                &JsonOptions {
                    dictionary: dict.clone(),
                    ..Default::default()
                },
            );
            let mut picked = Map::new();
            for tag in from_dataset {
                let key = main_tags::tag_key(tag);
                if let Some(v) = full.get(&key) {
                    picked.insert(key, v.clone());
                }
            }
            let picked = Value::Object(picked);
            let rendered = match format {
                TagFormat::Full => picked,
                TagFormat::Short => dicom::orthanc_json::simplify(&picked, Format::Short),
                TagFormat::Simplify => dicom::orthanc_json::simplify(&picked, Format::Simplify),
            };
            if let Value::Object(m) = rendered {
                out.extend(m);
            }
        }
    }
    Ok(Value::Object(out))
}
