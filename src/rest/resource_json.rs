//! The JSON of a resource, as `GET /{level}/{id}` and `?expand` answer it.

use actix_web::HttpRequest;
use pacsnode_actors::index::ResourceRow;
use pacsnode_actors::model::main_tags::{self, MainTag};
use pacsnode_actors::model::{Level, MetadataType};
use serde_json::{json, Map, Value};

use super::error::ApiResult;
use super::respond::flag;
use super::AppState;

/// How DICOM tags are shown (`?simplify`, `?short`, `?full`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagFormat {
    Simplify,
    Short,
    Full,
}

impl TagFormat {
    /// Reads the format from the GET arguments; simplify wins over short, short over full.
    pub fn from_request(req: &HttpRequest, default: TagFormat) -> ApiResult<TagFormat> {
        if flag(req, "simplify")?.unwrap_or(false) {
            return Ok(TagFormat::Simplify);
        }
        if flag(req, "short")?.unwrap_or(false) {
            return Ok(TagFormat::Short);
        }
        if flag(req, "full")?.unwrap_or(false) {
            return Ok(TagFormat::Full);
        }
        Ok(default)
    }
}

/// Renders stored main tags (`{"gggg,eeee": value}`) restricted to `only` in a format.
pub fn format_main_tags(stored: &Map<String, Value>, only: &[MainTag], format: TagFormat) -> Value {
    let mut out = Map::new();
    for m in only {
        let key = main_tags::tag_key(m.tag);
        let Some(v) = stored.get(&key) else { continue };
        match format {
            TagFormat::Simplify => out.insert(m.name.to_string(), v.clone()),
            TagFormat::Short => out.insert(key, v.clone()),
            TagFormat::Full => {
                out.insert(key, json!({"Name": m.name, "Type": "String", "Value": v}))
            }
        };
    }
    sort_object(out)
}

fn sort_object(m: Map<String, Value>) -> Value {
    let mut entries: Vec<_> = m.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Object(entries.into_iter().collect())
}

fn metadata_value(meta: &[(i64, String, i64)], kind: MetadataType) -> Option<&str> {
    meta.iter()
        .find(|(k, _, _)| *k == kind.number())
        .map(|(_, v, _)| v.as_str())
}

/// The full JSON of one resource.
pub async fn expand(state: &AppState, row: &ResourceRow, format: TagFormat) -> ApiResult<Value> {
    let reader = &state.reader;
    let meta = reader.metadata(row.id).await?;
    let mut out = Map::new();
    out.insert("ID".into(), json!(row.public_id));
    out.insert("Type".into(), json!(row.level.name()));
    out.insert(
        "MainDicomTags".into(),
        format_main_tags(&row.main_tags, main_tags::for_level(row.level), format),
    );
    out.insert("Labels".into(), json!(reader.labels(row.id).await?));
    if let Some(parent) = row.parent_id {
        let p = reader.resource_by_id(parent).await?;
        let key = match row.level {
            Level::Study => "ParentPatient",
            Level::Series => "ParentStudy",
            _ => "ParentSeries",
        };
        out.insert(key.into(), json!(p.public_id));
    }
    if let Some(child) = row.level.child() {
        let key = match child {
            Level::Study => "Studies",
            Level::Series => "Series",
            _ => "Instances",
        };
        out.insert(key.into(), json!(reader.children_ids(row.id).await?));
    }
    if row.level != Level::Instance {
        out.insert("IsStable".into(), json!(row.is_stable));
        if let Some(v) = metadata_value(&meta, MetadataType::LastUpdate) {
            out.insert("LastUpdate".into(), json!(v));
        }
    }
    match row.level {
        Level::Patient => {
            out.insert("IsProtected".into(), json!(row.protected));
        }
        Level::Study => {
            out.insert(
                "PatientMainDicomTags".into(),
                format_main_tags(&row.main_tags, main_tags::PATIENT, format),
            );
        }
        Level::Series => {
            let expected = metadata_value(&meta, MetadataType::ExpectedNumberOfInstances)
                .and_then(|v| v.parse::<u64>().ok());
            let status = series_status(state, row.id, expected).await?;
            out.insert("Status".into(), json!(status));
            out.insert(
                "ExpectedNumberOfInstances".into(),
                json!(expected.filter(|_| status != "Unknown")),
            );
        }
        Level::Instance => {
            let dicom = reader
                .attachments(row.id)
                .await?
                .into_iter()
                .find(|a| a.file_type == 1);
            if let Some(a) = dicom {
                out.insert("FileSize".into(), json!(a.uncompressed_size));
                out.insert("FileUuid".into(), json!(a.uuid));
            }
            let index = metadata_value(&meta, MetadataType::IndexInSeries)
                .and_then(|v| v.parse::<i64>().ok());
            out.insert("IndexInSeries".into(), json!(index));
        }
    }
    for (kind, key) in [
        (MetadataType::AnonymizedFrom, "AnonymizedFrom"),
        (MetadataType::ModifiedFrom, "ModifiedFrom"),
    ] {
        if let Some(v) = metadata_value(&meta, kind) {
            out.insert(key.into(), json!(v));
        }
    }
    Ok(sort_object(out))
}

/// Orthanc's series status from ExpectedNumberOfInstances and the instances' IndexInSeries.
async fn series_status(
    state: &AppState,
    series: i64,
    expected: Option<u64>,
) -> ApiResult<&'static str> {
    let Some(expected) = expected.filter(|e| *e > 0) else {
        return Ok("Unknown");
    };
    let indexes = state
        .reader
        .children_metadata(series, MetadataType::IndexInSeries.number())
        .await?;
    let mut seen = vec![false; expected as usize];
    for index in indexes {
        let Some(i) = index.and_then(|v| v.trim().parse::<u64>().ok()) else {
            return Ok("Unknown");
        };
        if i < 1 || i > expected || seen[(i - 1) as usize] {
            return Ok("Inconsistent");
        }
        seen[(i - 1) as usize] = true;
    }
    Ok(if seen.iter().all(|s| *s) {
        "Complete"
    } else {
        "Missing"
    })
}
