//! Tags outside the main tags, read from the dataset stored in the index for each instance
//! (never from the files). A patient, study or series is represented by its first instance,
//! as Orthanc does.

use rusqlite::{Connection, OptionalExtension};

use super::{matching, Constraint, FindError};
use crate::model::dicom::{self, DicomFile, Format, JsonOptions, ParseOptions};
use crate::model::main_tags;
use crate::model::Level;

/// The first instance below a resource (the resource itself for an instance).
pub fn representative_instance(
    c: &Connection,
    mut id: i64,
    mut level: Level,
) -> Result<Option<i64>, FindError> {
    let mut stmt =
        c.prepare_cached("SELECT id FROM resources WHERE parent_id = ? ORDER BY id LIMIT 1")?;
    while level != Level::Instance {
        match stmt.query_row([id], |r| r.get::<_, i64>(0)).optional()? {
            Some(child) => id = child,
            None => return Ok(None),
        }
        level = level.child().unwrap_or(Level::Instance);
    }
    Ok(Some(id))
}

/// The stored dataset of an instance (everything before Pixel Data).
pub fn load(c: &Connection, instance: i64) -> Result<Option<DicomFile>, FindError> {
    let blob: Option<(Vec<u8>, i64)> = c
        .prepare_cached("SELECT header, encoding FROM instance_headers WHERE resource_id = ?")?
        .query_row([instance], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((blob, encoding)) = blob else {
        return Ok(None);
    };
    let bytes = crate::index::decode_header(blob, encoding)?;
    Ok(dicom::parse(&bytes, &ParseOptions::default()).ok())
}

/// Whether the resource's dataset satisfies every constraint.
pub fn matches_all(
    c: &Connection,
    id: i64,
    level: Level,
    constraints: &[&Constraint],
) -> Result<bool, FindError> {
    let file = match representative_instance(c, id, level)? {
        Some(instance) => load(c, instance)?,
        None => None,
    };
    // Orthanc's rendering of the values (numbers of binary VRs as text, character sets).
    let tags =
        file.map(|f| dicom::to_orthanc_json(&f.dataset, Format::Short, &JsonOptions::default()));
    Ok(constraints.iter().all(|k| {
        let value = tags
            .as_ref()
            .and_then(|t| t.get(main_tags::tag_key(k.tag)))
            .and_then(|v| v.as_str());
        matching::matches(&k.pattern, k.flags, value)
    }))
}
