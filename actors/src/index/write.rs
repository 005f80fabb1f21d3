//! Write operations, each run by the [`super::IndexActor`] inside a group transaction.

use serde_json::{Map, Value};
use sqlx::{Row, SqliteConnection};

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

async fn find_id(conn: &mut SqliteConnection, public_id: &str) -> Result<Option<(i64, Level)>> {
    let row = sqlx::query("SELECT id, level FROM resources WHERE public_id = ?")
        .bind(public_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|r| {
        (
            r.get::<i64, _>(0),
            Level::from_i64(r.get(1)).unwrap_or(Level::Instance),
        )
    }))
}

pub(super) async fn log_change(
    conn: &mut SqliteConnection,
    change: ChangeType,
    resource: Option<i64>,
    level: Level,
    public_id: &str,
    now: &str,
) -> Result<i64> {
    let r = sqlx::query("INSERT INTO changes (change_type, resource_id, level, public_id, date) VALUES (?, ?, ?, ?, ?)")
        .bind(change.number())
        .bind(resource)
        .bind(level as i64)
        .bind(public_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(r.last_insert_rowid())
}

async fn set_metadata_row(
    conn: &mut SqliteConnection,
    id: i64,
    kind: i64,
    value: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO metadata (resource_id, type, value, revision) VALUES (?, ?, ?, 0) \
         ON CONFLICT (resource_id, type) DO UPDATE SET value = excluded.value, revision = revision + 1",
    )
    .bind(id)
    .bind(kind)
    .bind(value)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Stores a new instance and creates its missing parents (Orthanc's change order:
/// NewInstance, NewSeries, NewStudy, NewPatient).
pub async fn store_instance(
    conn: &mut SqliteConnection,
    req: &NewInstance,
) -> Result<StoreOutcome> {
    let mut obsolete = Vec::new();
    if find_id(conn, &req.ids[3]).await?.is_some() {
        if !req.overwrite {
            return Ok(StoreOutcome {
                status: StoreStatus::AlreadyStored,
                obsolete_files: vec![],
            });
        }
        // As Orthanc: the old instance is deleted (with the parents it leaves empty), then stored anew.
        let deleted = delete_resource(conn, &req.ids[3], Level::Instance).await?;
        obsolete.extend(deleted.obsolete_files);
    }
    if !req.limits.recycle {
        check_reject(conn, req).await?;
    }
    // Find or create the parents, top-down.
    let mut parent: Option<i64> = None;
    let mut ids = [0i64; 3];
    let mut created = [false; 3];
    for (i, level) in [Level::Patient, Level::Study, Level::Series]
        .into_iter()
        .enumerate()
    {
        let id = match find_id(conn, &req.ids[i]).await? {
            Some((id, _)) => id,
            None => {
                created[i] = true;
                insert_resource(
                    conn,
                    &req.ids[i],
                    level,
                    parent,
                    &req.identifiers[i],
                    &req.main_tags[i],
                )
                .await?
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
    )
    .await?;
    for (kind, value) in &req.metadata {
        set_metadata_row(conn, instance, kind.number(), value).await?;
    }
    insert_attachment(conn, instance, req).await?;
    sqlx::query(
        "INSERT INTO instance_headers (resource_id, transfer_syntax, header) VALUES (?, ?, ?)",
    )
    .bind(instance)
    .bind(&req.transfer_syntax)
    .bind(&req.header)
    .execute(&mut *conn)
    .await?;
    let seq = log_change(
        conn,
        ChangeType::NewInstance,
        Some(instance),
        Level::Instance,
        &req.ids[3],
        &req.now,
    )
    .await?;
    if created[2] {
        for (kind, value) in &req.series_metadata {
            set_metadata_row(conn, ids[2], kind.number(), value).await?;
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
            )
            .await?;
        }
        set_metadata_row(conn, ids[i], MetadataType::LastUpdate.number(), &req.now).await?;
        sqlx::query(
            "INSERT INTO stable_pending (resource_id, deadline) VALUES (?, ?) \
             ON CONFLICT (resource_id) DO UPDATE SET deadline = excluded.deadline",
        )
        .bind(ids[i])
        .bind(req.stable_deadline)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("UPDATE resources SET is_stable = 0, recycle_seq = CASE WHEN level = 0 THEN ? ELSE recycle_seq END WHERE id IN (?, ?, ?)")
        .bind(seq)
        .bind(ids[0])
        .bind(ids[1])
        .bind(ids[2])
        .execute(&mut *conn)
        .await?;
    if series_completed(conn, ids[2]).await? {
        log_change(
            conn,
            ChangeType::CompletedSeries,
            Some(ids[2]),
            Level::Series,
            &req.ids[2],
            &req.now,
        )
        .await?;
    }
    if req.limits.recycle {
        obsolete.extend(recycle(conn, req, ids[0]).await?);
    }
    Ok(StoreOutcome {
        status: StoreStatus::Success,
        obsolete_files: obsolete,
    })
}

/// Whether a series has exactly its ExpectedNumberOfInstances, with indexes 1..=N.
async fn series_completed(conn: &mut SqliteConnection, series: i64) -> Result<bool> {
    let expected: Option<String> =
        sqlx::query_scalar("SELECT value FROM metadata WHERE resource_id = ? AND type = ?")
            .bind(series)
            .bind(MetadataType::ExpectedNumberOfInstances.number())
            .fetch_optional(&mut *conn)
            .await?;
    let Some(expected) = expected
        .and_then(|e| e.parse::<i64>().ok())
        .filter(|e| *e > 0)
    else {
        return Ok(false);
    };
    let indexes: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT m.value FROM resources r LEFT JOIN metadata m ON m.resource_id = r.id AND m.type = ? WHERE r.parent_id = ?",
    )
    .bind(MetadataType::IndexInSeries.number())
    .bind(series)
    .fetch_all(&mut *conn)
    .await?;
    let mut seen = std::collections::BTreeSet::new();
    for i in &indexes {
        match i.as_deref().and_then(|v| v.trim().parse::<i64>().ok()) {
            Some(v) if v >= 1 && v <= expected && seen.insert(v) => {}
            _ => return Ok(false),
        }
    }
    Ok(seen.len() as i64 == expected)
}

async fn insert_resource(
    conn: &mut SqliteConnection,
    public_id: &str,
    level: Level,
    parent: Option<i64>,
    identifier: &str,
    tags: &Map<String, Value>,
) -> Result<i64> {
    let r = sqlx::query("INSERT INTO resources (public_id, level, parent_id, identifier, main_tags) VALUES (?, ?, ?, ?, ?)")
        .bind(public_id)
        .bind(level as i64)
        .bind(parent)
        .bind(identifier)
        .bind(Value::Object(tags.clone()).to_string())
        .execute(&mut *conn)
        .await?;
    Ok(r.last_insert_rowid())
}

async fn insert_attachment(
    conn: &mut SqliteConnection,
    instance: i64,
    req: &NewInstance,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO attachments (resource_id, file_type, uuid, compressed_size, uncompressed_size, \
         compression, uncompressed_md5, compressed_md5) VALUES (?, 1, ?, ?, ?, ?, ?, ?)",
    )
    .bind(instance)
    .bind(&req.file.uuid)
    .bind(req.file.compressed_size as i64)
    .bind(req.file.uncompressed_size as i64)
    .bind(req.file.compression as i64)
    .bind(&req.md5)
    .bind(&req.compressed_md5)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn totals(conn: &mut SqliteConnection) -> Result<(u64, u64)> {
    let size: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(compressed_size), 0) FROM attachments")
        .fetch_one(&mut *conn)
        .await?;
    let patients: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM resources WHERE level = 0")
        .fetch_one(&mut *conn)
        .await?;
    Ok((size as u64, patients as u64))
}

fn over(limits: &StorageLimits, size: u64, patients: u64) -> bool {
    (limits.max_bytes > 0 && size > limits.max_bytes)
        || (limits.max_patients > 0 && patients > limits.max_patients)
}

async fn check_reject(conn: &mut SqliteConnection, req: &NewInstance) -> Result<()> {
    if req.limits.max_bytes == 0 && req.limits.max_patients == 0 {
        return Ok(());
    }
    let (size, patients) = totals(conn).await?;
    let new_patient = find_id(conn, &req.ids[0]).await?.is_none() as u64;
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
async fn recycle(
    conn: &mut SqliteConnection,
    req: &NewInstance,
    current: i64,
) -> Result<Vec<String>> {
    let mut obsolete = Vec::new();
    if req.limits.max_bytes == 0 && req.limits.max_patients == 0 {
        return Ok(obsolete);
    }
    loop {
        let (size, patients) = totals(conn).await?;
        if !over(&req.limits, size, patients) {
            return Ok(obsolete);
        }
        let victim: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM resources WHERE level = 0 AND protected = 0 AND id != ? ORDER BY recycle_seq LIMIT 1",
        )
        .bind(current)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(victim) = victim else {
            return Err(IndexError::FullStorage);
        };
        let ids = subtree(conn, victim).await?;
        obsolete.extend(attachment_uuids(conn, &ids).await?);
        sqlx::query("DELETE FROM resources WHERE id = ?")
            .bind(victim)
            .execute(&mut *conn)
            .await?;
    }
}

/// The ids of a resource and all its descendants.
async fn subtree(conn: &mut SqliteConnection, root: i64) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "WITH RECURSIVE t(id) AS (SELECT ? UNION ALL SELECT r.id FROM resources r JOIN t ON r.parent_id = t.id) SELECT id FROM t",
    )
    .bind(root)
    .fetch_all(&mut *conn)
    .await?)
}

async fn attachment_uuids(conn: &mut SqliteConnection, ids: &[i64]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let sql = format!("SELECT uuid FROM attachments WHERE resource_id IN ({marks})");
        let mut q = sqlx::query_scalar::<_, String>(&sql);
        for id in chunk {
            q = q.bind(id);
        }
        out.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(out)
}

/// Deletes a resource, its descendants, and the ancestors it leaves empty.
pub async fn delete_resource(
    conn: &mut SqliteConnection,
    public_id: &str,
    level: Level,
) -> Result<DeleteOutcome> {
    let (id, found) = find_id(conn, public_id)
        .await?
        .ok_or(IndexError::UnknownResource)?;
    if found != level {
        return Err(IndexError::UnknownResource);
    }
    let ids = subtree(conn, id).await?;
    let mut obsolete = attachment_uuids(conn, &ids).await?;
    let mut current = id;
    let mut remaining = None;
    loop {
        let parent: Option<i64> =
            sqlx::query_scalar("SELECT parent_id FROM resources WHERE id = ?")
                .bind(current)
                .fetch_one(&mut *conn)
                .await?;
        sqlx::query("DELETE FROM resources WHERE id = ?")
            .bind(current)
            .execute(&mut *conn)
            .await?;
        let Some(parent) = parent else { break };
        let siblings: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM resources WHERE parent_id = ?")
                .bind(parent)
                .fetch_one(&mut *conn)
                .await?;
        if siblings > 0 {
            let row = sqlx::query("SELECT level, public_id FROM resources WHERE id = ?")
                .bind(parent)
                .fetch_one(&mut *conn)
                .await?;
            remaining = Some((
                Level::from_i64(row.get(0)).unwrap_or(Level::Patient),
                row.get::<String, _>(1),
            ));
            break;
        }
        obsolete.extend(attachment_uuids(conn, &[parent]).await?);
        current = parent;
    }
    Ok(DeleteOutcome {
        remaining_ancestor: remaining,
        obsolete_files: obsolete,
    })
}

/// Sets a metadata (checking the revision when `if_match` is given) and logs UpdatedMetadata.
pub async fn set_metadata(
    conn: &mut SqliteConnection,
    public_id: &str,
    kind: i64,
    value: &str,
    if_match: Option<i64>,
    now: &str,
) -> Result<i64> {
    let (id, level) = find_id(conn, public_id)
        .await?
        .ok_or(IndexError::UnknownResource)?;
    let current: Option<i64> =
        sqlx::query_scalar("SELECT revision FROM metadata WHERE resource_id = ? AND type = ?")
            .bind(id)
            .bind(kind)
            .fetch_optional(&mut *conn)
            .await?;
    if let (Some(expected), Some(rev)) = (if_match, current) {
        if expected != rev {
            return Err(IndexError::Revision);
        }
    }
    set_metadata_row(conn, id, kind, value).await?;
    log_change(
        conn,
        ChangeType::UpdatedMetadata,
        Some(id),
        level,
        public_id,
        now,
    )
    .await?;
    Ok(current.map_or(0, |r| r + 1))
}

/// Deletes a metadata.
pub async fn delete_metadata(
    conn: &mut SqliteConnection,
    public_id: &str,
    kind: i64,
    if_match: Option<i64>,
    now: &str,
) -> Result<()> {
    let (id, level) = find_id(conn, public_id)
        .await?
        .ok_or(IndexError::UnknownResource)?;
    let current: Option<i64> =
        sqlx::query_scalar("SELECT revision FROM metadata WHERE resource_id = ? AND type = ?")
            .bind(id)
            .bind(kind)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(rev) = current else {
        return Err(IndexError::InexistentItem);
    };
    if if_match.is_some_and(|m| m != rev) {
        return Err(IndexError::Revision);
    }
    sqlx::query("DELETE FROM metadata WHERE resource_id = ? AND type = ?")
        .bind(id)
        .bind(kind)
        .execute(&mut *conn)
        .await?;
    log_change(
        conn,
        ChangeType::UpdatedMetadata,
        Some(id),
        level,
        public_id,
        now,
    )
    .await?;
    Ok(())
}

/// Protects or unprotects a patient from recycling.
pub async fn set_protected(
    conn: &mut SqliteConnection,
    public_id: &str,
    protected: bool,
) -> Result<()> {
    let r = sqlx::query("UPDATE resources SET protected = ? WHERE public_id = ? AND level = 0")
        .bind(protected as i64)
        .bind(public_id)
        .execute(&mut *conn)
        .await?;
    if r.rows_affected() == 0 {
        return Err(IndexError::UnknownResource);
    }
    Ok(())
}

/// Marks the resources whose stable deadline passed as stable and logs Stable* changes.
/// Returns how many became stable.
pub async fn mark_stable(
    conn: &mut SqliteConnection,
    now_ms: i64,
    now: &str,
    max: i64,
) -> Result<usize> {
    let rows = sqlx::query(
        "SELECT s.resource_id, r.level, r.public_id FROM stable_pending s JOIN resources r ON r.id = s.resource_id \
         WHERE s.deadline <= ? ORDER BY s.deadline LIMIT ?",
    )
    .bind(now_ms)
    .bind(max)
    .fetch_all(&mut *conn)
    .await?;
    for row in &rows {
        let id: i64 = row.get(0);
        let level = Level::from_i64(row.get(1)).unwrap_or(Level::Series);
        let public_id: String = row.get(2);
        sqlx::query("DELETE FROM stable_pending WHERE resource_id = ?")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        sqlx::query("UPDATE resources SET is_stable = 1 WHERE id = ?")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        if let Some(change) = ChangeType::stable(level) {
            log_change(conn, change, Some(id), level, &public_id, now).await?;
        }
    }
    Ok(rows.len())
}

/// Empties the change log (`DELETE /changes`).
pub async fn clear_changes(conn: &mut SqliteConnection) -> Result<()> {
    sqlx::query("DELETE FROM changes")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Empties the export log (`DELETE /exports`).
pub async fn clear_exports(conn: &mut SqliteConnection) -> Result<()> {
    sqlx::query("DELETE FROM exports")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Creates or replaces a modality (`table` = "modalities") or peer ("peers").
pub async fn put_remote(
    conn: &mut SqliteConnection,
    table: RemoteTable,
    name: &str,
    config: &Value,
) -> Result<()> {
    let sql = format!(
        "INSERT OR REPLACE INTO {} (name, config) VALUES (?, ?)",
        table.name()
    );
    sqlx::query(&sql)
        .bind(name)
        .bind(config.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Removes a modality or peer.
pub async fn delete_remote(
    conn: &mut SqliteConnection,
    table: RemoteTable,
    name: &str,
) -> Result<()> {
    let sql = format!("DELETE FROM {} WHERE name = ?", table.name());
    sqlx::query(&sql).bind(name).execute(&mut *conn).await?;
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
