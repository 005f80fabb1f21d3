//! The find engine of `/tools/find`, `/tools/count-resources` (and later of the C-FIND SCP):
//! a query on DICOM tags, metadata, labels and parents, answered by one SQL statement on the
//! index (`sql.rs`), with the DICOM matching rules of `matching.rs`. Tags outside the main
//! tags are checked afterwards on the stored datasets (`dataset.rs`).
//!
//! Speed: equalities on identifiers (PatientID, the UIDs) use the `identifier` index,
//! AccessionNumber, StudyDate and PatientName of studies have expression indexes, and the
//! rest is one pass over the resources of a level, evaluated inside SQLite, that stops at
//! `Limit` when there is no `OrderBy`.

pub mod dataset;
pub mod matching;
mod sql;

use rusqlite::Connection;

use crate::index::IndexError;
use crate::model::main_tags::{self, TagNum};
use crate::model::Level;

pub use matching::{is_person_name, is_range_tag, matches};

/// Where the value a constraint tests is stored, relative to the level of the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// In the main tags of the resource of this level (the queried one or an ancestor).
    Main(Level),
    /// In the main tags of a descendant of this level (any one of them may match).
    Below(Level),
    /// Outside the main tags: read from a stored dataset of the resource.
    Dataset,
}

/// One constraint on a DICOM tag.
#[derive(Debug, Clone)]
pub struct Constraint {
    pub tag: TagNum,
    pub pattern: String,
    /// [`matching::CASE_INSENSITIVE`] and [`matching::RANGE`] bits.
    pub flags: i64,
    pub source: Source,
}

/// The labels part of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelsConstraint {
    All,
    Any,
    None,
}

/// What a result list is sorted by.
#[derive(Debug, Clone)]
pub enum OrderKey {
    /// A main tag (as text, or as a number when `as_int`).
    Tag {
        tag: TagNum,
        source: Source,
        as_int: bool,
    },
    /// A metadata of the resource (as text, or as a number when `as_float`).
    Metadata { kind: i64, as_float: bool },
}

/// One `OrderBy` entry.
#[derive(Debug, Clone)]
pub struct OrderBy {
    pub key: OrderKey,
    pub descending: bool,
}

/// A whole query.
#[derive(Debug, Clone)]
pub struct FindQuery {
    pub level: Level,
    pub constraints: Vec<Constraint>,
    /// Metadata type and DICOM-style pattern.
    pub metadata: Vec<(i64, String)>,
    pub labels: Vec<String>,
    pub labels_constraint: LabelsConstraint,
    /// The internal id and level of `ParentPatient` / `ParentStudy` / `ParentSeries`.
    pub parent: Option<(i64, Level)>,
    pub order_by: Vec<OrderBy>,
    pub since: u64,
    /// 0: no limit.
    pub limit: u64,
}

impl FindQuery {
    pub fn new(level: Level) -> Self {
        FindQuery {
            level,
            constraints: Vec::new(),
            metadata: Vec::new(),
            labels: Vec::new(),
            labels_constraint: LabelsConstraint::All,
            parent: None,
            order_by: Vec::new(),
            since: 0,
            limit: 0,
        }
    }
}

/// Errors of a query.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    /// A malformed range, pattern or combination.
    #[error("bad query: {0}")]
    BadQuery(String),
    #[error(transparent)]
    Index(#[from] IndexError),
}

impl From<FindError> for IndexError {
    fn from(e: FindError) -> Self {
        match e {
            FindError::Index(e) => e,
            FindError::BadQuery(m) => IndexError::BadRequest(m),
        }
    }
}

impl From<rusqlite::Error> for FindError {
    fn from(e: rusqlite::Error) -> Self {
        FindError::Index(IndexError::Database(e))
    }
}

/// The level whose main tags hold `tag`, if it is a main tag (patient tags first).
pub fn main_level_of(tag: TagNum) -> Option<Level> {
    Level::ALL
        .iter()
        .copied()
        .find(|l| main_tags::for_level(*l).iter().any(|m| m.tag == tag))
}

/// Where a tag is read when querying `level` (a study keeps a copy of its patient's tags).
pub fn source_of(level: Level, tag: TagNum) -> Source {
    match main_level_of(tag) {
        Some(Level::Patient) if level >= Level::Study => Source::Main(Level::Study),
        Some(owner) if owner <= level => Source::Main(owner),
        Some(owner) => Source::Below(owner),
        None => Source::Dataset,
    }
}

/// Builds the constraint `tag: pattern` of a query at `level`. (The REST API applies
/// `CaseSensitive` to every tag; the C-FIND SCP will pass `CaseSensitivePN` for PN tags.)
pub fn constraint(level: Level, tag: TagNum, pattern: &str, case_sensitive: bool) -> Constraint {
    // ModalitiesInStudy: the studies with a series of one of these modalities.
    let (tag, source) = if tag == (0x0008, 0x0061) && level == Level::Study {
        ((0x0008, 0x0060), Source::Below(Level::Series))
    } else {
        (tag, source_of(level, tag))
    };
    let mut flags = if case_sensitive {
        0
    } else {
        matching::CASE_INSENSITIVE
    };
    if is_range_tag(tag) {
        flags |= matching::RANGE;
    }
    Constraint {
        tag,
        pattern: pattern.to_string(),
        flags,
        source,
    }
}

/// The internal and public ids of the matching resources, in order, after `Since` and `Limit`.
pub fn execute(c: &Connection, q: &FindQuery) -> Result<Vec<(i64, String)>, FindError> {
    let post: Vec<&Constraint> = q
        .constraints
        .iter()
        .filter(|k| k.source == Source::Dataset)
        .collect();
    if post.is_empty() {
        return sql::ids(c, q, q.since, q.limit);
    }
    // Tags outside the index: filter every candidate, then page.
    let mut out = Vec::new();
    let mut skipped = 0;
    for (id, public_id) in sql::ids(c, q, 0, 0)? {
        if !dataset::matches_all(c, id, q.level, &post)? {
            continue;
        }
        if skipped < q.since {
            skipped += 1;
            continue;
        }
        out.push((id, public_id));
        if q.limit > 0 && out.len() as u64 >= q.limit {
            break;
        }
    }
    Ok(out)
}

/// The same as [`execute`], as whole rows (for `Expand`), handed to `each` a page at a time.
pub fn rows_in_pages(
    c: &Connection,
    q: &FindQuery,
    page: usize,
    each: &mut dyn FnMut(&[crate::index::ResourceRow]) -> Result<(), IndexError>,
) -> Result<(), IndexError> {
    if q.constraints.iter().all(|k| k.source != Source::Dataset) {
        return sql::rows_in_pages(c, q, page, each);
    }
    let ids: Vec<i64> = execute(c, q)?.into_iter().map(|(id, _)| id).collect();
    for chunk in ids.chunks(page) {
        each(&crate::index::read::resources_by_ids(c, chunk)?)?;
    }
    Ok(())
}

/// How many resources match (`Since` and `Limit` are ignored, as Orthanc does).
pub fn count(c: &Connection, q: &FindQuery) -> Result<u64, FindError> {
    if q.constraints.iter().any(|k| k.source == Source::Dataset) {
        let mut all = q.clone();
        all.since = 0;
        all.limit = 0;
        return Ok(execute(c, &all)?.len() as u64);
    }
    sql::count(c, q)
}
