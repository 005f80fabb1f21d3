//! Storing a new instance: the one write of the ingest path, with its parents, metadata,
//! changes, stable timers and storage limits.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{Map, Value};

use super::write::{
    attachment_uuids, delete_resource, find_id, log_change, set_metadata_row, subtree,
};
use super::IndexError;
use crate::model::{ChangeType, Level, MetadataType};
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
    /// The dataset before Pixel Data, as stored in the file, compressed by
    /// [`super::encode_header`].
    pub header: Vec<u8>,
    /// ISO date (`YYYYMMDDTHHMMSS`) of the reception.
    pub now: String,
    /// When the new instance's parents become stable, in ms since the epoch.
    pub stable_deadline: i64,
    pub overwrite: bool,
    pub limits: StorageLimits,
    /// Rewrite the main tags of the parents that exist already from this instance's.
    pub refresh_parents: bool,
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
            Some((id, _)) => {
                if req.refresh_parents {
                    conn.prepare_cached("UPDATE resources SET main_tags = jsonb(?) WHERE id = ?")?
                        .execute(params![
                            Value::Object(req.main_tags[i].clone()).to_string(),
                            id
                        ])?;
                }
                id
            }
            None => {
                created[i] = true;
                insert_resource(
                    conn,
                    &req.ids[i],
                    level,
                    parent,
                    &req.identifiers[i],
                    &req.main_tags[i],
                )?
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
        "INSERT INTO instance_headers (resource_id, transfer_syntax, header, encoding) VALUES (?, ?, ?, ?)",
    )?
    .execute(params![instance, req.transfer_syntax, req.header, super::HEADER_ENCODING])?;
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
    conn.prepare_cached("INSERT INTO resources (public_id, level, parent_id, identifier, main_tags) VALUES (?, ?, ?, ?, jsonb(?))")?
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
