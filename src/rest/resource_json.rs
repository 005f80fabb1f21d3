//! The JSON of a resource, as `GET /{level}/{id}` and `?expand` answer it.

use actix_web::HttpRequest;
use pacsnode_actors::index::read::{self, Extras};
use pacsnode_actors::index::{IndexError, ResourceRow};
use pacsnode_actors::model::main_tags::{self, MainTag};
use pacsnode_actors::model::stored_tags::StoredTags;
use pacsnode_actors::model::{Level, MetadataType};
use rusqlite::Connection;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Value};

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

/// Stored main tags restricted to `only`, shown in a format: serialized straight from the
/// stored tags, keys in JSON-object (sorted) order.
pub struct MainTags<'a> {
    stored: &'a StoredTags,
    only: &'static [MainTag],
    format: TagFormat,
}

impl Serialize for MainTags<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Walk the stored tags (a few) rather than looking up each main tag.
        let mut tags: Vec<(&MainTag, &str)> = self
            .stored
            .iter()
            .filter_map(|(tag, v)| Some((self.only.iter().find(|m| m.tag == tag)?, v)))
            .collect();
        match self.format {
            TagFormat::Simplify => tags.sort_unstable_by_key(|(m, _)| m.name),
            _ => tags.sort_unstable_by_key(|(m, _)| m.tag),
        }
        let mut map = s.serialize_map(Some(tags.len()))?;
        for (m, v) in tags {
            match self.format {
                TagFormat::Simplify => map.serialize_entry(m.name, v)?,
                TagFormat::Short => map.serialize_entry(&main_tags::tag_key(m.tag), v)?,
                TagFormat::Full => map.serialize_entry(
                    &main_tags::tag_key(m.tag),
                    &json!({"Name": m.name, "Type": "String", "Value": v}),
                )?,
            }
        }
        map.end()
    }
}

/// One field of a resource's JSON, borrowed from its row and [`Extras`] where possible.
pub enum Field<'a> {
    Str(&'a str),
    Bool(bool),
    List(&'a [String]),
    Tags(MainTags<'a>),
    Json(Value),
}

impl Serialize for Field<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Str(v) => s.serialize_str(v),
            Field::Bool(v) => s.serialize_bool(*v),
            Field::List(v) => v.serialize(s),
            Field::Tags(v) => v.serialize(s),
            Field::Json(v) => v.serialize(s),
        }
    }
}

/// The JSON of a resource as `GET /{level}/{id}` answers it: its fields in key order.
pub struct Expanded<'a>(Vec<(&'static str, Field<'a>)>);

impl Serialize for Expanded<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

fn metadata_value(meta: &[(i64, String, i64)], kind: MetadataType) -> Option<&str> {
    // Many resources' extras hold only these.
    debug_assert!(read::JSON_METADATA.contains(&kind));
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
    let fields = expanded(c, row, &extras, format)?;
    serde_json::to_value(fields).map_err(|e| IndexError::BadRequest(e.to_string()))
}

/// The fields of a resource's JSON (the series status and the instance's file need a query).
pub fn expanded<'a>(
    c: &Connection,
    row: &'a ResourceRow,
    extras: &'a Extras,
    format: TagFormat,
) -> Result<Expanded<'a>, IndexError> {
    let meta = &extras.metadata;
    let tags = |only| {
        Field::Tags(MainTags {
            stored: &row.main_tags,
            only,
            format,
        })
    };
    let mut out = vec![
        ("ID", Field::Str(&row.public_id)),
        ("Type", Field::Str(row.level.name())),
        ("MainDicomTags", tags(main_tags::for_level(row.level))),
        ("Labels", Field::List(&extras.labels)),
    ];
    if let Some(p) = &extras.parent {
        let key = match row.level {
            Level::Study => "ParentPatient",
            Level::Series => "ParentStudy",
            _ => "ParentSeries",
        };
        out.push((key, Field::Str(p)));
    }
    if let Some(child) = row.level.child() {
        let key = match child {
            Level::Study => "Studies",
            Level::Series => "Series",
            _ => "Instances",
        };
        out.push((key, Field::List(&extras.children)));
    }
    if row.level != Level::Instance {
        out.push(("IsStable", Field::Bool(row.is_stable)));
        if let Some(v) = metadata_value(meta, MetadataType::LastUpdate) {
            out.push(("LastUpdate", Field::Str(v)));
        }
    }
    match row.level {
        Level::Patient => out.push(("IsProtected", Field::Bool(row.protected))),
        Level::Study => out.push(("PatientMainDicomTags", tags(main_tags::PATIENT))),
        Level::Series => {
            let expected = metadata_value(meta, MetadataType::ExpectedNumberOfInstances)
                .and_then(|v| v.parse::<u64>().ok());
            let indexes = read::children_metadata(c, row.id, MetadataType::IndexInSeries.number())?;
            let status = series_status(expected, &indexes);
            out.push(("Status", Field::Str(status)));
            let expected = expected.filter(|_| status != "Unknown");
            out.push(("ExpectedNumberOfInstances", Field::Json(json!(expected))));
        }
        Level::Instance => {
            if let Some(a) = read::attachments(c, row.id)?
                .into_iter()
                .find(|a| a.file_type == 1)
            {
                out.push(("FileSize", Field::Json(json!(a.uncompressed_size))));
                out.push(("FileUuid", Field::Json(json!(a.uuid))));
            }
            let index = metadata_value(meta, MetadataType::IndexInSeries)
                .and_then(|v| v.parse::<i64>().ok());
            out.push(("IndexInSeries", Field::Json(json!(index))));
        }
    }
    for (kind, key) in [
        (MetadataType::AnonymizedFrom, "AnonymizedFrom"),
        (MetadataType::ModifiedFrom, "ModifiedFrom"),
    ] {
        if let Some(v) = metadata_value(meta, kind) {
            out.push((key, Field::Str(v)));
        }
    }
    // The order of a JSON object's keys in every answer (serde_json's map is sorted).
    out.sort_unstable_by_key(|(k, _)| *k);
    Ok(Expanded(out))
}

/// How many resources are read and expanded at a time (rows, then their extras).
pub const EXPAND_PAGE: usize = 500;

/// The JSON array of many expanded resources, serialized as it is built (no `Value` tree):
/// `fill` hands over the rows a page at a time, whose extras are read per page. Blocking.
pub fn write_expanded(
    c: &Connection,
    format: TagFormat,
    fill: impl FnOnce(
        &mut dyn FnMut(&[ResourceRow]) -> Result<(), IndexError>,
    ) -> Result<(), IndexError>,
) -> Result<Vec<u8>, IndexError> {
    use serde::ser::SerializeSeq;
    let bad = |e: serde_json::Error| IndexError::BadRequest(e.to_string());
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::pretty(&mut out);
    let mut seq = ser.serialize_seq(None).map_err(bad)?;
    let none = Extras::default();
    fill(&mut |page: &[ResourceRow]| {
        let extras = read::extras_many(c, page)?;
        for row in page {
            let fields = expanded(c, row, extras.get(&row.id).unwrap_or(&none), format)?;
            seq.serialize_element(&fields).map_err(bad)?;
        }
        Ok(())
    })?;
    SerializeSeq::end(seq).map_err(bad)?;
    Ok(out)
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
