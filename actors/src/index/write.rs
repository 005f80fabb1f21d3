//! Write operations, each run by the [`super::IndexActor`] inside a group transaction.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{Map, Value};

use super::IndexError;
use crate::model::{main_tags, ChangeType, Level, MetadataType};
use crate::storage::StoredFile;

type Result<T> = std::result::Result<T, IndexError>;

/// Everything the index records for a newly received instance.
#[derive(Debug, Clone)]
pub struct NewInstance {
    /// Orthanc ids: patient, study, series, instance.
    pub ids: [String; 4],
    /// PatientID, StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID.
    pub identifiers: [String; 4],
    /// Main DICOM tags per level, `{"gggg,eeee": value}`.
    pub main_tags: [Map<String, Value>; 4],
    /// Metadata of the instance.
    pub metadata: Vec<(MetadataType, String)>,
    /// Metadata set on the series when it is created (ExpectedNumberOfInstances, RemoteAET).
    pub series_metadata: Vec<(MetadataType, String)>,
    pub file: StoredFile,
    pub md5: String,
    pub compressed_md5: String,
    pub transfer_syntax: String,
    /// The dataset before Pixel Data, as stored in the file.
    pub header: Vec<u8>,
    /// ISO date (`YYYYMMDDTHHMMSS`) of the reception.
    pub now: String,
    /// When the new instance's parents become stable, in ms since the epoch.
    pub stable_deadline: i64,
    pub overwrite: bool,
    pub limits: StorageLimits,
}

/// MaximumStorageSize / MaximumPatientCount / MaximumStorageMode.
#[derive(Debug, Clone, Copy, Default)]
pub struct StorageLimits {
    pub max_bytes: u64,
    pub max_patients: u64,
    pub recycle: bool,
}

/// The answer to a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreStatus {
    Success,
    AlreadyStored,
    FilteredOut,
}

/// What a store did, and the files that are no longer referenced (to remove after commit).
#[derive(Debug, Clone)]
pub struct StoreOutcome {
    pub status: StoreStatus,
    pub obsolete_files: Vec<String>,
}

/// What a delete did.
#[derive(Debug, Clone)]
pub struct DeleteOutcome {
    /// The closest ancestor that still exists: (level, public id).
    pub remaining_ancestor: Option<(Level, String)>,
    pub obsolete_files: Vec<String>,
}

fn find_id(conn: &Connection, public_id: &str) -> Result<Option<(i64, Level)>> {
    let row = conn
        .prepare_cached("SELECT id, level FROM resources WHERE public_id = ?")?
        .query_row([public_id], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })
        .optional()?;
    Ok(row.map(|(id, l)| (id, Level::from_i64(l).unwrap_or(Level::Instance))))
}

pub(super) fn log_change(
    conn: &Connection,
    change: ChangeType,
    resource: Option<i64>,
    level: Level,
    public_id: &str,
    now: &str,
) -> Result<i64> {
    conn.prepare_cached("INSERT INTO changes (change_type, resource_id, level, public_id, date) VALUES (?, ?, ?, ?, ?)")?
        .execute(params![change.number(), resource, level as i64, public_id, now])?;
    Ok(conn.last_insert_rowid())
}

fn set_metadata_row(conn: &Connection, id: i64, kind: i64, value: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO metadata (resource_id, type, value, revision) VALUES (?, ?, ?, 0) \
         ON CONFLICT (resource_id, type) DO UPDATE SET value = excluded.value, revision = revision + 1",
    )?
    .execute(params![id, kind, value])?;
    Ok(())
}

/// Sets LastUpdate, writing nothing when it already holds that value (same second): every
/// page left untouched is a page the group commit does not write.
fn touch_last_update(conn: &Connection, id: i64, now: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO metadata (resource_id, type, value, revision) VALUES (?, ?, ?, 0) \
         ON CONFLICT (resource_id, type) DO UPDATE SET value = excluded.value, revision = revision + 1 \
         WHERE value != excluded.value",
    )?
    .execute(params![id, MetadataType::LastUpdate.number(), now])?;
    Ok(())
}

/// Stores a new instance and creates its missing parents (Orthanc's change order:
/// NewInstance, NewSeries, NewStudy, NewPatient).
pub fn store_instance(conn: &Connection, req: &NewInstance) -> Result<StoreOutcome> {
    let mut obsolete = Vec::new();
    if find_id(conn, &req.ids[3])?.is_some() {
        if !req.overwrite {
            return Ok(StoreOutcome {
                status: StoreStatus::AlreadyStored,
                obsolete_files: vec![],
            });
        }
        // As Orthanc: the old instance is deleted (with the parents it leaves empty), then stored anew.
        obsolete.extend(delete_resource(conn, &req.ids[3], Level::Instance)?.obsolete_files);
    }
    if !req.limits.recycle {
        check_reject(conn, req)?;
    }
    let mut parent: Option<i64> = None;
    let mut ids = [0i64; 3];
    let mut created = [false; 3];
    for (i, level) in [Level::Patient, Level::Study, Level::Series]
        .into_iter()
        .enumerate()
    {
        let id = match find_id(conn, &req.ids[i])? {
            Some((id, _)) => id,
            None => {
                created[i] = true;
                let id = insert_resource(
                    conn,
                    &req.ids[i],
                    level,
                    parent,
                    &req.identifiers[i],
                    &req.main_tags[i],
                )?;
                set_metadata_row(
                    conn,
                    id,
                    MetadataType::MainDicomTagsSignature.number(),
                    &main_tags::signature(level),
                )?;
                id
            }
        };
        ids[i] = id;
        parent = Some(id);
    }
    let instance = insert_resource(
        conn,
        &req.ids[3],
        Level::Instance,
        parent,
        &req.identifiers[3],
        &req.main_tags[3],
    )?;
    for (kind, value) in &req.metadata {
        set_metadata_row(conn, instance, kind.number(), value)?;
    }
    conn.prepare_cached(
        "INSERT INTO attachments (resource_id, file_type, uuid, compressed_size, uncompressed_size, \
         compression, uncompressed_md5, compressed_md5) VALUES (?, 1, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        instance,
        req.file.uuid,
        req.file.compressed_size as i64,
        req.file.uncompressed_size as i64,
        req.file.compression as i64,
        req.md5,
        req.compressed_md5
    ])?;
    conn.prepare_cached(
        "INSERT INTO instance_headers (resource_id, transfer_syntax, header) VALUES (?, ?, ?)",
    )?
    .execute(params![instance, req.transfer_syntax, req.header])?;
    let seq = log_change(
        conn,
        ChangeType::NewInstance,
        Some(instance),
        Level::Instance,
        &req.ids[3],
        &req.now,
    )?;
    if created[2] {
        for (kind, value) in &req.series_metadata {
            set_metadata_row(conn, ids[2], kind.number(), value)?;
        }
    }
    for i in (0..3).rev() {
        let level = Level::ALL[i];
        if created[i] {
            log_change(
                conn,
                ChangeType::new_resource(level),
                Some(ids[i]),
                level,
                &req.ids[i],
                &req.now,
            )?;
        }
        touch_last_update(conn, ids[i], &req.now)?;
        conn.prepare_cached(
            "INSERT INTO stable_pending (resource_id, deadline) VALUES (?, ?) \
             ON CONFLICT (resource_id) DO UPDATE SET deadline = excluded.deadline \
             WHERE deadline < excluded.deadline - 250",
        )?
        .execute(params![ids[i], req.stable_deadline])?;
    }
    conn.prepare_cached(
        "UPDATE resources SET is_stable = 0 WHERE id IN (?, ?, ?) AND is_stable != 0",
    )?
    .execute(params![ids[0], ids[1], ids[2]])?;
    if req.limits.max_bytes > 0 || req.limits.max_patients > 0 {
        // The recycling order is only kept when there is something to recycle.
        conn.prepare_cached("UPDATE resources SET recycle_seq = ? WHERE id = ?")?
            .execute(params![seq, ids[0]])?;
    }
    if series_completed(conn, ids[2])? {
        log_change(
            conn,
            ChangeType::CompletedSeries,
            Some(ids[2]),
            Level::Series,
            &req.ids[2],
            &req.now,
        )?;
    }
    if req.limits.recycle {
        obsolete.extend(recycle(conn, req, ids[0])?);
    }
    Ok(StoreOutcome {
        status: StoreStatus::Success,
        obsolete_files: obsolete,
    })
}

/// Whether a series has exactly its ExpectedNumberOfInstances, with indexes 1..=N.
fn series_completed(conn: &Connection, series: i64) -> Result<bool> {
    let expected: Option<String> = conn
        .prepare_cached("SELECT value FROM metadata WHERE resource_id = ? AND type = ?")?
        .query_row(
            params![series, MetadataType::ExpectedNumberOfInstances.number()],
            |r| r.get(0),
        )
        .optional()?;
    let Some(expected) = expected
        .and_then(|e| e.parse::<i64>().ok())
        .filter(|e| *e > 0)
    else {
        return Ok(false);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT m.value FROM resources r LEFT JOIN metadata m ON m.resource_id = r.id AND m.type = ? \
         WHERE r.parent_id = ?",
    )?;
    let indexes = stmt
        .query_map(params![MetadataType::IndexInSeries.number(), series], |r| {
            r.get::<_, Option<String>>(0)
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut seen = std::collections::BTreeSet::new();
    for i in &indexes {
        match i.as_deref().and_then(|v| v.trim().parse::<i64>().ok()) {
            Some(v) if v >= 1 && v <= expected && seen.insert(v) => {}
            _ => return Ok(false),
        }
    }
    Ok(seen.len() as i64 == expected)
}

fn insert_resource(
    conn: &Connection,
    public_id: &str,
    level: Level,
    parent: Option<i64>,
    identifier: &str,
    tags: &Map<String, Value>,
) -> Result<i64> {
    conn.prepare_cached("INSERT INTO resources (public_id, level, parent_id, identifier, main_tags) VALUES (?, ?, ?, ?, ?)")?
        .execute(params![public_id, level as i64, parent, identifier, Value::Object(tags.clone()).to_string()])?;
    Ok(conn.last_insert_rowid())
}

fn totals(conn: &Connection) -> Result<(u64, u64)> {
    let size: i64 = conn
        .prepare_cached("SELECT COALESCE(SUM(compressed_size), 0) FROM attachments")?
        .query_row([], |r| r.get(0))?;
    let patients: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM resources WHERE level = 0")?
        .query_row([], |r| r.get(0))?;
    Ok((size as u64, patients as u64))
}

fn over(limits: &StorageLimits, size: u64, patients: u64) -> bool {
    (limits.max_bytes > 0 && size > limits.max_bytes)
        || (limits.max_patients > 0 && patients > limits.max_patients)
}

fn check_reject(conn: &Connection, req: &NewInstance) -> Result<()> {
    if req.limits.max_bytes == 0 && req.limits.max_patients == 0 {
        return Ok(());
    }
    let (size, patients) = totals(conn)?;
    let new_patient = find_id(conn, &req.ids[0])?.is_none() as u64;
    if over(
        &req.limits,
        size + req.file.compressed_size,
        patients + new_patient,
    ) {
        return Err(IndexError::FullStorage);
    }
    Ok(())
}

/// Deletes the oldest unprotected patients until the limits hold again.
fn recycle(conn: &Connection, req: &NewInstance, current: i64) -> Result<Vec<String>> {
    let mut obsolete = Vec::new();
    if req.limits.max_bytes == 0 && req.limits.max_patients == 0 {
        return Ok(obsolete);
    }
    loop {
        let (size, patients) = totals(conn)?;
        if !over(&req.limits, size, patients) {
            return Ok(obsolete);
        }
        let victim: Option<i64> = conn
            .prepare_cached(
                "SELECT id FROM resources WHERE level = 0 AND protected = 0 AND id != ? ORDER BY recycle_seq, id LIMIT 1",
            )?
            .query_row([current], |r| r.get(0))
            .optional()?;
        let Some(victim) = victim else {
            return Err(IndexError::FullStorage);
        };
        let ids = subtree(conn, victim)?;
        obsolete.extend(attachment_uuids(conn, &ids)?);
        conn.prepare_cached("DELETE FROM resources WHERE id = ?")?
            .execute([victim])?;
    }
}

/// The ids of a resource and all its descendants.
fn subtree(conn: &Connection, root: i64) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "WITH RECURSIVE t(id) AS (SELECT ? UNION ALL SELECT r.id FROM resources r JOIN t ON r.parent_id = t.id) \
         SELECT id FROM t",
    )?;
    let ids = stmt
        .query_map([root], |r| r.get(0))?
        .collect::<std::result::Result<Vec<i64>, _>>()?;
    Ok(ids)
}

fn attachment_uuids(conn: &Connection, ids: &[i64]) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT uuid FROM attachments WHERE resource_id = ?")?;
    let mut out = Vec::new();
    for id in ids {
        for uuid in stmt.query_map([id], |r| r.get::<_, String>(0))? {
            out.push(uuid?);
        }
    }
    Ok(out)
}

/// Deletes a resource, its descendants, and the ancestors it leaves empty; the remaining
/// ancestors get a new LastUpdate.
pub fn delete_resource(conn: &Connection, public_id: &str, level: Level) -> Result<DeleteOutcome> {
    let outcome = delete_subtree(conn, public_id, level)?;
    if let Some((_, ancestor)) = &outcome.remaining_ancestor {
        let now = chrono::Utc::now().format("%Y%m%dT%H%M%S").to_string();
        let mut next = find_id(conn, ancestor)?.map(|(id, _)| id);
        while let Some(id) = next {
            set_metadata_row(conn, id, MetadataType::LastUpdate.number(), &now)?;
            next = conn
                .prepare_cached("SELECT parent_id FROM resources WHERE id = ?")?
                .query_row([id], |r| r.get(0))?;
        }
    }
    Ok(outcome)
}

fn delete_subtree(conn: &Connection, public_id: &str, level: Level) -> Result<DeleteOutcome> {
    let (id, found) = find_id(conn, public_id)?.ok_or(IndexError::UnknownResource)?;
    if found != level {
        return Err(IndexError::UnknownResource);
    }
    let mut obsolete = attachment_uuids(conn, &subtree(conn, id)?)?;
    let mut current = id;
    let mut remaining = None;
    loop {
        let parent: Option<i64> = conn
            .prepare_cached("SELECT parent_id FROM resources WHERE id = ?")?
            .query_row([current], |r| r.get(0))?;
        conn.prepare_cached("DELETE FROM resources WHERE id = ?")?
            .execute([current])?;
        let Some(parent) = parent else { break };
        let siblings: i64 = conn
            .prepare_cached("SELECT COUNT(*) FROM resources WHERE parent_id = ?")?
            .query_row([parent], |r| r.get(0))?;
        if siblings > 0 {
            let (level, public): (i64, String) = conn
                .prepare_cached("SELECT level, public_id FROM resources WHERE id = ?")?
                .query_row([parent], |r| Ok((r.get(0)?, r.get(1)?)))?;
            remaining = Some((Level::from_i64(level).unwrap_or(Level::Patient), public));
            break;
        }
        obsolete.extend(attachment_uuids(conn, &[parent])?);
        current = parent;
    }
    Ok(DeleteOutcome {
        remaining_ancestor: remaining,
        obsolete_files: obsolete,
    })
}

fn revision_of(conn: &Connection, id: i64, kind: i64) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT revision FROM metadata WHERE resource_id = ? AND type = ?")?
        .query_row(params![id, kind], |r| r.get(0))
        .optional()?)
}

/// Sets a metadata (checking the revision when `if_match` is given) and logs UpdatedMetadata.
pub fn set_metadata(
    conn: &Connection,
    public_id: &str,
    kind: i64,
    value: &str,
    if_match: Option<i64>,
    now: &str,
) -> Result<i64> {
    let (id, level) = find_id(conn, public_id)?.ok_or(IndexError::UnknownResource)?;
    let current = revision_of(conn, id, kind)?;
    if let (Some(expected), Some(rev)) = (if_match, current) {
        if expected != rev {
            return Err(IndexError::Revision);
        }
    }
    set_metadata_row(conn, id, kind, value)?;
    log_change(
        conn,
        ChangeType::UpdatedMetadata,
        Some(id),
        level,
        public_id,
        now,
    )?;
    Ok(current.map_or(0, |r| r + 1))
}

/// Deletes a metadata and logs UpdatedMetadata.
pub fn delete_metadata(
    conn: &Connection,
    public_id: &str,
    kind: i64,
    if_match: Option<i64>,
    now: &str,
) -> Result<()> {
    let (id, level) = find_id(conn, public_id)?.ok_or(IndexError::UnknownResource)?;
    let Some(rev) = revision_of(conn, id, kind)? else {
        return Err(IndexError::InexistentItem);
    };
    if if_match.is_some_and(|m| m != rev) {
        return Err(IndexError::Revision);
    }
    conn.prepare_cached("DELETE FROM metadata WHERE resource_id = ? AND type = ?")?
        .execute(params![id, kind])?;
    log_change(
        conn,
        ChangeType::UpdatedMetadata,
        Some(id),
        level,
        public_id,
        now,
    )?;
    Ok(())
}

/// Protects or unprotects a patient from recycling.
pub fn set_protected(conn: &Connection, public_id: &str, protected: bool) -> Result<()> {
    let n = conn
        .prepare_cached("UPDATE resources SET protected = ? WHERE public_id = ? AND level = 0")?
        .execute(params![protected as i64, public_id])?;
    if n == 0 {
        return Err(IndexError::UnknownResource);
    }
    Ok(())
}

/// Marks the resources whose stable deadline passed as stable and logs Stable* changes.
pub fn mark_stable(conn: &Connection, now_ms: i64, now: &str, max: i64) -> Result<usize> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.resource_id, r.level, r.public_id FROM stable_pending s JOIN resources r ON r.id = s.resource_id \
         WHERE s.deadline <= ? ORDER BY s.deadline, r.level DESC LIMIT ?",
    )?;
    let rows = stmt
        .query_map(params![now_ms, max], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    for (id, level, public_id) in &rows {
        let level = Level::from_i64(*level).unwrap_or(Level::Series);
        conn.prepare_cached("DELETE FROM stable_pending WHERE resource_id = ?")?
            .execute([id])?;
        conn.prepare_cached("UPDATE resources SET is_stable = 1 WHERE id = ?")?
            .execute([id])?;
        if let Some(change) = ChangeType::stable(level) {
            log_change(conn, change, Some(*id), level, public_id, now)?;
        }
    }
    Ok(rows.len())
}

/// Empties the change log (`DELETE /changes`).
pub fn clear_changes(conn: &Connection) -> Result<()> {
    conn.execute("DELETE FROM changes", [])?;
    Ok(())
}

/// Empties the export log (`DELETE /exports`).
pub fn clear_exports(conn: &Connection) -> Result<()> {
    conn.execute("DELETE FROM exports", [])?;
    Ok(())
}

/// Which configuration list a remote belongs to.
#[derive(Debug, Clone, Copy)]
pub enum RemoteTable {
    Modalities,
    Peers,
}

impl RemoteTable {
    pub(super) fn name(self) -> &'static str {
        match self {
            RemoteTable::Modalities => "modalities",
            RemoteTable::Peers => "peers",
        }
    }
}

/// Creates or replaces a modality or peer.
pub fn put_remote(conn: &Connection, table: RemoteTable, name: &str, config: &Value) -> Result<()> {
    let sql = format!(
        "INSERT OR REPLACE INTO {} (name, config) VALUES (?, ?)",
        table.name()
    );
    conn.prepare_cached(&sql)?
        .execute(params![name, config.to_string()])?;
    Ok(())
}

/// Removes a modality or peer.
pub fn delete_remote(conn: &Connection, table: RemoteTable, name: &str) -> Result<()> {
    let sql = format!("DELETE FROM {} WHERE name = ?", table.name());
    conn.prepare_cached(&sql)?.execute([name])?;
    Ok(())
}

/// One exported resource (`/exports`, when `LogExportedResources`).
#[derive(Debug, Clone)]
pub struct Export {
    pub level: Level,
    pub public_id: String,
    pub modality: String,
    pub date: String,
    /// PatientID, StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID.
    pub identifiers: [String; 4],
}

/// Logs exported resources.
pub fn log_exports(conn: &Connection, exports: &[Export]) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO exports (level, public_id, modality, date, patient_id, study_uid, series_uid, sop_uid) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )?;
    for e in exports {
        let [p, st, se, i] = &e.identifiers;
        stmt.execute(params![
            e.level as i64,
            e.public_id,
            e.modality,
            e.date,
            p,
            st,
            se,
            i
        ])?;
    }
    Ok(())
}
