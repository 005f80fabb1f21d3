//! The JSON of a resource, as `GET /{level}/{id}` and `?expand` answer it.

use actix_web::HttpRequest;
use pacsnode_actors::index::read::{self, Extras};
use pacsnode_actors::index::{IndexError, ResourceRow};
use pacsnode_actors::model::main_tags::{self, MainTag};
use pacsnode_actors::model::{Level, MetadataType};
use rusqlite::Connection;
use serde_json::{json, Map, Value};

use super::error::ApiResult;
use super::respond::flag;

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

impl TagFormat {
    /// The same choice from the `Simplify` / `Short` / `Full` booleans of a JSON body.
    pub fn from_body(body: &Value, default: TagFormat) -> TagFormat {
        let on = |k: &str| body.get(k).and_then(Value::as_bool).unwrap_or(false);
        if on("Simplify") {
            TagFormat::Simplify
        } else if on("Short") {
            TagFormat::Short
        } else if on("Full") {
            TagFormat::Full
        } else {
            default
        }
    }
}

/// Renders stored main tags (`{"gggg,eeee": value}`) restricted to `only` in a format.
pub fn format_main_tags(stored: &Map<String, Value>, only: &[MainTag], format: TagFormat) -> Value {
    let mut out = Map::new();
    // Walk the stored keys (a few) rather than formatting a key per main tag.
    for (key, v) in stored {
        let Some(tag) = main_tags::parse_tag_key(key) else {
            continue;
        };
        let Some(m) = only.iter().find(|m| m.tag == tag) else {
            continue;
        };
        match format {
            TagFormat::Simplify => out.insert(m.name.to_string(), v.clone()),
            TagFormat::Short => out.insert(key.clone(), v.clone()),
            TagFormat::Full => out.insert(
                key.clone(),
                json!({"Name": m.name, "Type": "String", "Value": v}),
            ),
        };
    }
    Value::Object(out)
}

fn metadata_value(meta: &[(i64, String, i64)], kind: MetadataType) -> Option<&str> {
    meta.iter()
        .find(|(k, _, _)| *k == kind.number())
        .map(|(_, v, _)| v.as_str())
}

/// Builds the JSON of a resource from the index. Blocking.
pub fn expand_sync(
    c: &Connection,
    row: &ResourceRow,
    format: TagFormat,
) -> Result<Value, IndexError> {
    expand_with(c, row, read::extras(c, row.id)?, format)
}

/// The same, with the resource's [`Extras`] already read (see [`read::extras_many`]).
pub fn expand_with(
    c: &Connection,
    row: &ResourceRow,
    extras: Extras,
    format: TagFormat,
) -> Result<Value, IndexError> {
    let meta = extras.metadata;
    let mut out = Map::new();
    out.insert("ID".into(), json!(row.public_id));
    out.insert("Type".into(), json!(row.level.name()));
    out.insert(
        "MainDicomTags".into(),
        format_main_tags(&row.main_tags, main_tags::for_level(row.level), format),
    );
    out.insert("Labels".into(), json!(extras.labels));
    if let Some(p) = extras.parent {
        let key = match row.level {
            Level::Study => "ParentPatient",
            Level::Series => "ParentStudy",
            _ => "ParentSeries",
        };
        out.insert(key.into(), json!(p));
    }
    if let Some(child) = row.level.child() {
        let key = match child {
            Level::Study => "Studies",
            Level::Series => "Series",
            _ => "Instances",
        };
        out.insert(key.into(), json!(extras.children));
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
            let indexes = read::children_metadata(c, row.id, MetadataType::IndexInSeries.number())?;
            let status = series_status(expected, &indexes);
            out.insert("Status".into(), json!(status));
            out.insert(
                "ExpectedNumberOfInstances".into(),
                json!(expected.filter(|_| status != "Unknown")),
            );
        }
        Level::Instance => {
            if let Some(a) = read::attachments(c, row.id)?
                .into_iter()
                .find(|a| a.file_type == 1)
            {
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
    Ok(Value::Object(out))
}

/// Orthanc's series status from ExpectedNumberOfInstances and the instances' IndexInSeries.
fn series_status(expected: Option<u64>, indexes: &[Option<String>]) -> &'static str {
    let Some(expected) = expected.filter(|e| *e > 0) else {
        return "Unknown";
    };
    let mut seen = vec![false; expected.min(1 << 20) as usize];
    for index in indexes {
        let Some(i) = index.as_deref().and_then(|v| v.trim().parse::<u64>().ok()) else {
            return "Unknown";
        };
        if i < 1 || i > seen.len() as u64 || seen[(i - 1) as usize] {
            return "Inconsistent";
        }
        seen[(i - 1) as usize] = true;
    }
    if seen.iter().all(|s| *s) {
        "Complete"
    } else {
        "Missing"
    }
}
