//! Read queries, on a pool of read-only connections used from blocking threads.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Row};
use tokio::sync::Semaphore;

use super::IndexError;
use crate::model::stored_tags::StoredTags;
use crate::model::{main_tags, Level, MetadataType};

type Result<T> = std::result::Result<T, IndexError>;

/// One resource as the index knows it.
#[derive(Debug, Clone)]
pub struct ResourceRow {
    pub id: i64,
    pub public_id: String,
    pub level: Level,
    pub parent_id: Option<i64>,
    pub main_tags: StoredTags,
    pub is_stable: bool,
    pub protected: bool,
}

/// Global counts and sizes.
#[derive(Debug, Clone, Default)]
pub struct Statistics {
    pub counts: [u64; 4],
    pub disk_size: u64,
    pub uncompressed_size: u64,
    pub dicom_disk_size: u64,
    pub dicom_uncompressed_size: u64,
}

/// One attachment row.
#[derive(Debug, Clone)]
pub struct AttachmentRow {
    pub file_type: i64,
    pub uuid: String,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    pub compression: i64,
    pub uncompressed_md5: String,
    pub compressed_md5: String,
    pub revision: i64,
}

/// The columns [`resource_from`] reads, of the `resources` table aliased `alias`.
pub fn resource_cols(alias: &str) -> String {
    RESOURCE_COLS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A [`ResourceRow`] from the columns of [`RESOURCE_COLS`].
pub fn resource_from(row: &Row) -> rusqlite::Result<ResourceRow> {
    let main_tags = match row.get_ref(4)? {
        ValueRef::Blob(b) => StoredTags::from_jsonb(b),
        ValueRef::Text(t) => std::str::from_utf8(t)
            .map(StoredTags::parse)
            .unwrap_or_default(),
        _ => StoredTags::default(),
    };
    Ok(ResourceRow {
        id: row.get(0)?,
        public_id: row.get(1)?,
        level: Level::from_i64(row.get(2)?).unwrap_or(Level::Instance),
        parent_id: row.get(3)?,
        main_tags,
        is_stable: row.get::<_, i64>(5)? != 0,
        protected: row.get::<_, i64>(6)? != 0,
    })
}

/// `main_tags` is stored as JSONB (new rows) or JSON text (older rows): [`resource_from`]
/// reads both.
const RESOURCE_COLS: &str = "id, public_id, level, parent_id, main_tags, is_stable, protected";

pub(super) fn collect<T>(rows: impl Iterator<Item = rusqlite::Result<T>>) -> Result<Vec<T>> {
    Ok(rows.collect::<std::result::Result<Vec<T>, _>>()?)
}

/// Read access to the index (cheap to clone).
#[derive(Clone)]
pub struct IndexReader {
    pool: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
}

impl IndexReader {
    /// Opens `n` read-only connections.
    pub fn open(path: &Path, n: usize) -> Result<Self> {
        let conns = (0..n.max(1))
            .map(|_| super::connect(path, super::Role::Reader))
            .collect::<Result<Vec<_>>>()?;
        Ok(IndexReader {
            permits: Arc::new(Semaphore::new(conns.len())),
            pool: Arc::new(Mutex::new(conns)),
        })
    }

    /// Runs blocking queries on a pooled connection, off the async threads.
    pub async fn with<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| IndexError::Unavailable)?;
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || run_pooled(&pool, f))
            .await
            .map_err(|_| IndexError::Unavailable)?
    }

    /// The same as [`IndexReader::with`], on the calling thread: a blocking thread (a DICOM
    /// association), never an async one.
    pub fn with_blocking<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&Connection) -> Result<R>,
    {
        let _permit = futures_executor::block_on(self.permits.acquire())
            .map_err(|_| IndexError::Unavailable)?;
        run_pooled(&self.pool, f)
    }

    /// A resource by its public id, if it is of `level`.
    pub async fn resource(&self, level: Level, public_id: &str) -> Result<ResourceRow> {
        let id = public_id.to_string();
        match self.with(move |c| resource_by_public_id(c, &id)).await? {
            Some(r) if r.level == level => Ok(r),
            _ => Err(IndexError::UnknownResource),
        }
    }

    /// A resource of any level by its public id.
    pub async fn resource_any(&self, public_id: &str) -> Result<Option<ResourceRow>> {
        let id = public_id.to_string();
        self.with(move |c| resource_by_public_id(c, &id)).await
    }

    /// A resource by its internal id.
    pub async fn resource_by_id(&self, id: i64) -> Result<ResourceRow> {
        self.with(move |c| resource_by_id(c, id)).await
    }

    /// The resources of a level, in creation order, skipping `since` and keeping `limit` (0 = all).
    pub async fn list(&self, level: Level, since: u64, limit: u64) -> Result<Vec<ResourceRow>> {
        self.with(move |c| {
            let sql = format!("SELECT {RESOURCE_COLS} FROM resources WHERE level = ? ORDER BY id LIMIT ? OFFSET ?");
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![level as i64, sql_limit(limit), since as i64], resource_from)?;
            collect(rows)
        })
        .await
    }

    /// The public ids of a level (the cheap form of [`Self::list`]).
    pub async fn list_ids(&self, level: Level, since: u64, limit: u64) -> Result<Vec<String>> {
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT public_id FROM resources WHERE level = ? ORDER BY id LIMIT ? OFFSET ?",
            )?;
            let rows = stmt
                .query_map(params![level as i64, sql_limit(limit), since as i64], |r| {
                    r.get(0)
                })?;
            collect(rows)
        })
        .await
    }

    /// The descendants of a resource at a lower level.
    pub async fn descendants(&self, id: i64, level: Level) -> Result<Vec<ResourceRow>> {
        self.with(move |c| descendants(c, id, level)).await
    }

    /// All metadata of a resource, `(type, value, revision)`.
    pub async fn metadata(&self, id: i64) -> Result<Vec<(i64, String, i64)>> {
        self.with(move |c| metadata(c, id)).await
    }

    /// One metadata of a resource.
    pub async fn metadata_one(&self, id: i64, kind: i64) -> Result<Option<(String, i64)>> {
        self.with(move |c| {
            let one = |r: &Row| Ok((r.get(0)?, r.get(1)?));
            Ok(if kind == SIGNATURE {
                let sql = format!("SELECT {}, 0 FROM resources WHERE id = ?", signature_sql());
                c.prepare_cached(&sql)?.query_row([id], one).optional()?
            } else {
                c.prepare_cached(
                    "SELECT value, revision FROM metadata WHERE resource_id = ? AND type = ?",
                )?
                .query_row(params![id, kind], one)
                .optional()?
            })
        })
        .await
    }

    /// The attachments of a resource.
    pub async fn attachments(&self, id: i64) -> Result<Vec<AttachmentRow>> {
        self.with(move |c| attachments(c, id)).await
    }

    /// The transfer syntax and the dataset before Pixel Data of an instance.
    pub async fn header(&self, id: i64) -> Result<(String, Vec<u8>)> {
        self.with(move |c| {
            c.prepare_cached(
                "SELECT transfer_syntax, header, encoding FROM instance_headers WHERE resource_id = ?",
            )?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?
            .ok_or(IndexError::InexistentItem)
            .and_then(|(ts, blob, encoding)| Ok((ts, super::decode_header(blob, encoding)?)))
        })
        .await
    }

    /// Counts the descendants of a resource per level, and sums their attachment sizes.
    pub async fn resource_statistics(&self, id: i64) -> Result<Statistics> {
        self.with(move |c| resource_statistics(c, id)).await
    }

    /// Global counts and sizes.
    pub async fn statistics(&self) -> Result<Statistics> {
        self.with(|c| {
            let mut stats = Statistics::default();
            let mut stmt = c.prepare_cached("SELECT level, COUNT(*) FROM resources GROUP BY level")?;
            for row in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
                let (level, n) = row?;
                if let Some(l) = Level::from_i64(level) {
                    stats.counts[l as usize] = n as u64;
                }
            }
            let (disk, raw): (i64, i64) = c
                .prepare_cached("SELECT COALESCE(SUM(compressed_size),0), COALESCE(SUM(uncompressed_size),0) FROM attachments")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            stats.disk_size = disk as u64;
            stats.uncompressed_size = raw as u64;
            Ok(stats)
        })
        .await
    }

    /// Resources whose identifier (PatientID, Study/Series/SOP Instance UID) equals `value`.
    pub async fn lookup(&self, value: &str) -> Result<Vec<(Level, String)>> {
        let value = value.to_string();
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT level, public_id FROM resources WHERE upper(identifier) = upper(?) ORDER BY level, id",
            )?;
            let rows = stmt.query_map([value], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            Ok(collect(rows)?
                .into_iter()
                .filter_map(|(l, id)| Some((Level::from_i64(l)?, id)))
                .collect())
        })
        .await
    }

    /// One metadata of every child of a resource (`None` where a child lacks it).
    pub async fn children_metadata(&self, id: i64, kind: i64) -> Result<Vec<Option<String>>> {
        self.with(move |c| children_metadata(c, id, kind)).await
    }
}

fn sql_limit(limit: u64) -> i64 {
    if limit == 0 {
        -1
    } else {
        limit as i64
    }
}

/// A resource by public id.
pub fn resource_by_public_id(c: &Connection, public_id: &str) -> Result<Option<ResourceRow>> {
    let sql = format!("SELECT {RESOURCE_COLS} FROM resources WHERE public_id = ?");
    Ok(c.prepare_cached(&sql)?
        .query_row([public_id], resource_from)
        .optional()?)
}

/// Runs `f` on a connection of the pool, in one read transaction: a consistent snapshot, and
/// one shared lock instead of one per statement (fcntl showed in the profile).
fn run_pooled<R>(
    pool: &Mutex<Vec<Connection>>,
    f: impl FnOnce(&Connection) -> Result<R>,
) -> Result<R> {
    let conn = pool
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop()
        .ok_or(IndexError::Unavailable)?;
    let r = match conn.execute_batch("BEGIN") {
        Ok(()) => {
            let r = f(&conn);
            let _ = conn.execute_batch("COMMIT");
            r
        }
        Err(_) => f(&conn),
    };
    pool.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
    r
}

/// A resource by internal id.
pub fn resource_by_id(c: &Connection, id: i64) -> Result<ResourceRow> {
    let sql = format!("SELECT {RESOURCE_COLS} FROM resources WHERE id = ?");
    c.prepare_cached(&sql)?
        .query_row([id], resource_from)
        .optional()?
        .ok_or(IndexError::UnknownResource)
}

/// `FROM resources d1 JOIN resources d2 ON d2.parent_id = d1.id …` down to `d{depth}`: the
/// descendants `depth` levels below the resource that `d1.parent_id` names.
pub fn descendant_join(depth: usize) -> String {
    let mut from = "resources d1".to_string();
    for d in 2..=depth {
        from.push_str(&format!(
            " JOIN resources d{d} ON d{d}.parent_id = d{}.id",
            d - 1
        ));
    }
    from
}

/// How many descendants a resource has `depth` levels below it.
pub fn count_descendants(c: &Connection, id: i64, depth: usize) -> Result<u64> {
    let sql = format!(
        "SELECT count(*) FROM {} WHERE d1.parent_id = ?",
        descendant_join(depth)
    );
    let n: i64 = c.prepare_cached(&sql)?.query_row([id], |r| r.get(0))?;
    Ok(n as u64)
}

fn distinct_values(c: &Connection, sql: &str, id: i64) -> Result<Vec<String>> {
    let mut stmt = c.prepare_cached(sql)?;
    let values = stmt
        .query_map([id], |r| r.get::<_, Option<String>>(0))?
        .filter_map(|v| v.ok().flatten())
        .collect::<std::collections::BTreeSet<_>>();
    Ok(values.into_iter().collect())
}

/// The distinct Modality of a study's series, sorted (ModalitiesInStudy).
pub fn modalities_in_study(c: &Connection, study: i64) -> Result<Vec<String>> {
    distinct_values(
        c,
        "SELECT json_extract(main_tags, '$.\"0008,0060\"') FROM resources WHERE parent_id = ?",
        study,
    )
}

/// The distinct SOP classes of a study's instances, sorted (SOPClassesInStudy).
pub fn sop_classes_in_study(c: &Connection, study: i64) -> Result<Vec<String>> {
    let sql = format!(
        "SELECT m.value FROM resources s JOIN resources i ON i.parent_id = s.id \
         JOIN metadata m ON m.resource_id = i.id AND m.type = {} WHERE s.parent_id = ?",
        crate::model::MetadataType::SopClassUid.number()
    );
    distinct_values(c, &sql, study)
}

/// The descendants of a resource at a lower level.
pub fn descendants(c: &Connection, id: i64, level: Level) -> Result<Vec<ResourceRow>> {
    let sql = format!(
        "WITH RECURSIVE t(id) AS (SELECT ? UNION ALL SELECT r.id FROM resources r JOIN t ON r.parent_id = t.id) \
         SELECT {RESOURCE_COLS} FROM resources WHERE id IN (SELECT id FROM t) AND level = ? ORDER BY id"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![id, level as i64], resource_from)?;
    collect(rows)
}

/// All metadata of a resource, `(type, value, revision)`.
pub fn metadata(c: &Connection, id: i64) -> Result<Vec<(i64, String, i64)>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT type, value, revision FROM metadata WHERE resource_id = ?1 \
         UNION ALL SELECT {SIGNATURE}, {}, 0 FROM resources WHERE id = ?1 ORDER BY 1",
        signature_sql()
    ))?;
    let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    collect(rows)
}

/// The type of `MainDicomTagsSignature`, the same for every resource of a level: computed from
/// the level, never stored (a copy per resource was an eighth of the index).
const SIGNATURE: i64 = MetadataType::MainDicomTagsSignature as i64;

/// `MainDicomTagsSignature` of the row's level, as an SQL expression on `level`.
fn signature_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let arms: String = Level::ALL
            .iter()
            .map(|l| format!(" WHEN {} THEN '{}'", *l as i64, main_tags::signature(*l)))
            .collect();
        format!("CASE level{arms} END")
    })
}

/// What the JSON of a resource needs besides its row, in one query.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    pub parent: Option<String>,
    pub children: Vec<String>,
    pub labels: Vec<String>,
    /// (metadata type, value, revision)
    pub metadata: Vec<(i64, String, i64)>,
}

/// The parent's public id, the children's, the labels and the metadata of a resource, in one
/// cached statement: what `GET /{level}/{id}` needs, ~0.05 ms faster than [`extras_many`]
/// for a single resource (measured), whose statements cannot be cached.
pub fn extras(c: &Connection, id: i64) -> Result<Extras> {
    let mut stmt = c.prepare_cached(
        "SELECT (SELECT public_id FROM resources WHERE id = r.parent_id), \
         (SELECT group_concat(public_id, ',') FROM \
            (SELECT public_id FROM resources WHERE parent_id = r.id ORDER BY id)), \
         (SELECT json_group_array(label) FROM \
            (SELECT label FROM labels WHERE resource_id = r.id ORDER BY label)), \
         (SELECT json_group_array(json_array(type, value, revision)) FROM \
            (SELECT type, value, revision FROM metadata WHERE resource_id = r.id ORDER BY type)) \
         FROM resources r WHERE r.id = ?",
    )?;
    let row = stmt
        .query_row([id], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .optional()?
        .ok_or(IndexError::UnknownResource)?;
    let (parent, children, labels, metadata) = row;
    Ok(Extras {
        parent,
        children: children
            .map(|c| c.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        metadata: serde_json::from_str(&metadata).unwrap_or_default(),
    })
}

/// Every label in use, sorted.
pub fn all_labels(c: &Connection) -> Result<Vec<String>> {
    let mut stmt = c.prepare_cached("SELECT DISTINCT label FROM labels ORDER BY label")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    collect(rows)
}

/// The labels of a resource, sorted.
pub fn labels(c: &Connection, id: i64) -> Result<Vec<String>> {
    let mut stmt =
        c.prepare_cached("SELECT label FROM labels WHERE resource_id = ? ORDER BY label")?;
    let rows = stmt.query_map([id], |r| r.get(0))?;
    collect(rows)
}

/// The attachments of a resource.
pub fn attachments(c: &Connection, id: i64) -> Result<Vec<AttachmentRow>> {
    let mut stmt = c.prepare_cached(
        "SELECT file_type, uuid, compressed_size, uncompressed_size, compression, uncompressed_md5, \
         compressed_md5, revision FROM attachments WHERE resource_id = ? ORDER BY file_type",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok(AttachmentRow {
            file_type: r.get(0)?,
            uuid: r.get(1)?,
            compressed_size: r.get::<_, i64>(2)? as u64,
            uncompressed_size: r.get::<_, i64>(3)? as u64,
            compression: r.get(4)?,
            uncompressed_md5: r.get(5)?,
            compressed_md5: r.get(6)?,
            revision: r.get(7)?,
        })
    })?;
    collect(rows)
}

/// One metadata of every child of a resource.
pub fn children_metadata(c: &Connection, id: i64, kind: i64) -> Result<Vec<Option<String>>> {
    let mut stmt = c.prepare_cached(
        "SELECT m.value FROM resources r LEFT JOIN metadata m ON m.resource_id = r.id AND m.type = ? \
         WHERE r.parent_id = ? ORDER BY r.id",
    )?;
    let rows = stmt.query_map(params![kind, id], |r| r.get(0))?;
    collect(rows)
}

fn resource_statistics(c: &Connection, id: i64) -> Result<Statistics> {
    let mut stats = Statistics::default();
    let mut stmt = c.prepare_cached(
        "WITH RECURSIVE t(id) AS (SELECT ? UNION ALL SELECT r.id FROM resources r JOIN t ON r.parent_id = t.id) \
         SELECT r.level, COUNT(*) FROM resources r JOIN t ON r.id = t.id GROUP BY r.level",
    )?;
    for row in stmt.query_map([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
        let (level, n) = row?;
        if let Some(l) = Level::from_i64(level) {
            stats.counts[l as usize] = n as u64;
        }
    }
    let sizes: (i64, i64, i64, i64) = c
        .prepare_cached(
            "WITH RECURSIVE t(id) AS (SELECT ? UNION ALL SELECT r.id FROM resources r JOIN t ON r.parent_id = t.id) \
             SELECT COALESCE(SUM(compressed_size),0), COALESCE(SUM(uncompressed_size),0), \
             COALESCE(SUM(CASE WHEN file_type = 1 THEN compressed_size ELSE 0 END),0), \
             COALESCE(SUM(CASE WHEN file_type = 1 THEN uncompressed_size ELSE 0 END),0) \
             FROM attachments a JOIN t ON a.resource_id = t.id",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    stats.disk_size = sizes.0 as u64;
    stats.uncompressed_size = sizes.1 as u64;
    stats.dicom_disk_size = sizes.2 as u64;
    stats.dicom_uncompressed_size = sizes.3 as u64;
    Ok(stats)
}

/// PatientID, StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID of a resource and its
/// ancestors (empty strings below its level).
pub fn identifiers(c: &Connection, id: i64) -> Result<[String; 4]> {
    let mut out: [String; 4] = Default::default();
    let mut next = Some(id);
    while let Some(id) = next {
        let (level, identifier, parent): (i64, String, Option<i64>) = c
            .prepare_cached("SELECT level, identifier, parent_id FROM resources WHERE id = ?")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        if let Some(slot) = out.get_mut(level as usize) {
            *slot = identifier;
        }
        next = parent;
    }
    Ok(out)
}

/// The storage folders that may hold files the index lost (see `storage_folders`), as
/// (ingest thread, folder) rows.
pub fn storage_folders(c: &Connection) -> Result<Vec<(String, String)>> {
    let mut stmt = c.prepare_cached("SELECT writer, folder FROM storage_folders")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// An attachment whose file lies in one of the folders the start-up recovery scans.
#[derive(Debug, Clone)]
pub struct FolderAttachment {
    pub uuid: String,
    /// The public id of its resource, and whether it is that instance's DICOM file.
    pub resource: String,
    pub is_dicom: bool,
    /// Size and MD5 of the file as written.
    pub size: u64,
    pub md5: String,
}

/// The attachments whose file lies in one of these folders (`ab/cd`): one scan.
pub fn attachments_in_folders(c: &Connection, folders: &[String]) -> Result<Vec<FolderAttachment>> {
    let prefixes: std::collections::HashSet<String> =
        folders.iter().map(|f| f.replace('/', "")).collect();
    let mut stmt = c.prepare(
        "SELECT a.uuid, r.public_id, a.file_type, a.compressed_size, a.compressed_md5 \
         FROM attachments a JOIN resources r ON r.id = a.resource_id",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let uuid: String = row.get(0)?;
        if uuid.get(..4).is_some_and(|p| prefixes.contains(p)) {
            out.push(FolderAttachment {
                uuid,
                resource: row.get(1)?,
                is_dicom: row.get::<_, i64>(2)? == 1,
                size: row.get::<_, i64>(3)? as u64,
                md5: row.get(4)?,
            });
        }
    }
    Ok(out)
}

/// `(a,b,c)` for an `IN` list of row ids (integers: nothing to escape).
fn id_list(ids: impl Iterator<Item = i64>) -> String {
    let list: Vec<String> = ids.map(|id| id.to_string()).collect();
    format!("({})", list.join(","))
}

/// The rows of these resources, in the order given; unknown ids are skipped. One query.
pub fn resources_by_ids(c: &Connection, ids: &[i64]) -> Result<Vec<ResourceRow>> {
    let sql = format!(
        "SELECT {RESOURCE_COLS} FROM resources WHERE id IN {}",
        id_list(ids.iter().copied())
    );
    let mut stmt = c.prepare(&sql)?;
    let mut by_id: std::collections::HashMap<i64, ResourceRow> = stmt
        .query_map([], resource_from)?
        .map(|r| r.map(|row| (row.id, row)))
        .collect::<std::result::Result<_, _>>()?;
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

/// The metadata that a resource's JSON shows (the only ones [`extras_many`] reads).
/// Those of patients, studies and series are numbered 4 to 7 (see `metadata_shown`).
pub const JSON_METADATA: [MetadataType; 5] = [
    MetadataType::IndexInSeries,
    MetadataType::ExpectedNumberOfInstances,
    MetadataType::ModifiedFrom,
    MetadataType::AnonymizedFrom,
    MetadataType::LastUpdate,
];

/// The [`Extras`] of many resources, with four set-based queries instead of one query per
/// resource (what `Expand` over thousands of results needs). Blocking.
pub fn extras_many(
    c: &Connection,
    rows: &[ResourceRow],
) -> Result<std::collections::HashMap<i64, Extras>> {
    let mut out: std::collections::HashMap<i64, Extras> =
        rows.iter().map(|r| (r.id, Extras::default())).collect();
    if rows.is_empty() {
        return Ok(out);
    }
    let ids = id_list(rows.iter().map(|r| r.id));
    let parents = id_list(rows.iter().filter_map(|r| r.parent_id));
    // Studies (what large finds answer) read their patients and series from covering indexes.
    let studies = rows.iter().all(|r| r.level == Level::Study);
    let mut parent_ids = std::collections::HashMap::new();
    let sql = if studies {
        format!(
            "SELECT id, public_id FROM resources INDEXED BY patients_public \
             WHERE level = 0 AND id IN {parents}"
        )
    } else {
        format!("SELECT id, public_id FROM resources WHERE id IN {parents}")
    };
    for row in c
        .prepare(&sql)?
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?)))?
    {
        let (id, public): (i64, String) = row?;
        parent_ids.insert(id, public);
    }
    for row in rows {
        if let (Some(p), Some(e)) = (row.parent_id, out.get_mut(&row.id)) {
            e.parent = parent_ids.get(&p).cloned();
        }
    }
    let sql = if studies {
        format!(
            "SELECT parent_id, public_id FROM resources INDEXED BY series_by_study \
             WHERE level = 2 AND parent_id IN {ids} ORDER BY parent_id, id"
        )
    } else {
        format!(
            "SELECT parent_id, public_id FROM resources WHERE parent_id IN {ids} \
             ORDER BY parent_id, id"
        )
    };
    append_each(c, &sql, &mut out, |e| &mut e.children)?;
    let sql = format!(
        "SELECT resource_id, label FROM labels WHERE resource_id IN {ids} ORDER BY resource_id, label"
    );
    append_each(c, &sql, &mut out, |e| &mut e.labels)?;
    // A range of the primary key per resource; the types are filtered here (an `IN` list of
    // types would make it a lookup per resource and type). Patients, studies and series show
    // only types 4 to 7, which a covering index holds together.
    let sql = if rows.iter().all(|r| r.level != Level::Instance) {
        format!(
            "SELECT resource_id, type, value, revision FROM metadata INDEXED BY metadata_shown \
             WHERE resource_id IN {ids} AND type >= 4 AND type <= 7 ORDER BY resource_id, type"
        )
    } else {
        format!(
            "SELECT resource_id, type, value, revision FROM metadata WHERE resource_id IN {ids} \
             ORDER BY resource_id, type"
        )
    };
    let kinds = JSON_METADATA.map(MetadataType::number);
    let mut stmt = c.prepare(&sql)?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let kind: i64 = r.get(1)?;
        if let (true, Some(e)) = (kinds.contains(&kind), out.get_mut(&r.get(0)?)) {
            e.metadata.push((kind, r.get(2)?, r.get(3)?));
        }
    }
    Ok(out)
}

/// Runs `sql`, whose rows are (resource id, text), and appends each text to the `list` of
/// that resource's [`Extras`].
fn append_each(
    c: &Connection,
    sql: &str,
    out: &mut std::collections::HashMap<i64, Extras>,
    list: fn(&mut Extras) -> &mut Vec<String>,
) -> Result<()> {
    let mut stmt = c.prepare(sql)?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))? {
        let (id, text) = row?;
        if let Some(e) = out.get_mut(&id) {
            list(e).push(text);
        }
    }
    Ok(())
}
