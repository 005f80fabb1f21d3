//! Write operations other than storing an instance, each run by the [`super::IndexActor`] inside
//! a group transaction.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use super::IndexError;
use crate::model::{ChangeType, Level, MetadataType};

type Result<T> = std::result::Result<T, IndexError>;

/// What a delete did.
#[derive(Debug, Clone)]
pub struct DeleteOutcome {
    /// The closest ancestor that still exists: (level, public id).
    pub remaining_ancestor: Option<(Level, String)>,
    pub obsolete_files: Vec<String>,
}

pub(super) fn find_id(conn: &Connection, public_id: &str) -> Result<Option<(i64, Level)>> {
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

pub(super) fn set_metadata_row(conn: &Connection, id: i64, kind: i64, value: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO metadata (resource_id, type, value, revision) VALUES (?, ?, ?, 0) \
         ON CONFLICT (resource_id, type) DO UPDATE SET value = excluded.value, revision = revision + 1",
    )?
    .execute(params![id, kind, value])?;
    Ok(())
}

/// The ids of a resource and all its descendants.
pub(super) fn subtree(conn: &Connection, root: i64) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "WITH RECURSIVE t(id) AS (SELECT ? UNION ALL SELECT r.id FROM resources r JOIN t ON r.parent_id = t.id) \
         SELECT id FROM t",
    )?;
    let ids = stmt
        .query_map([root], |r| r.get(0))?
        .collect::<std::result::Result<Vec<i64>, _>>()?;
    Ok(ids)
}

pub(super) fn attachment_uuids(conn: &Connection, ids: &[i64]) -> Result<Vec<String>> {
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

/// The revision and value of a metadata.
fn revision_of(conn: &Connection, id: i64, kind: i64) -> Result<Option<(i64, String)>> {
    Ok(conn
        .prepare_cached("SELECT revision, value FROM metadata WHERE resource_id = ? AND type = ?")?
        .query_row(params![id, kind], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Whether an `If-Match` (revision, MD5 of the value) names the current metadata.
fn matches(expected: &(i64, String), current: &(i64, String)) -> bool {
    expected.0 == current.0 && expected.1 == crate::ingest::hex_md5(current.1.as_bytes())
}

/// Sets a metadata (checking the revision when `if_match` is given) and logs UpdatedMetadata.
pub fn set_metadata(
    conn: &Connection,
    public_id: &str,
    kind: i64,
    value: &str,
    if_match: Option<(i64, String)>,
    now: &str,
) -> Result<i64> {
    let (id, level) = find_id(conn, public_id)?.ok_or(IndexError::UnknownResource)?;
    let current = revision_of(conn, id, kind)?;
    if let (Some(expected), Some(current)) = (&if_match, &current) {
        if !matches(expected, current) {
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
    Ok(current.map_or(0, |(r, _)| r + 1))
}

/// Sets one metadata on resources given by public id, as a store does (no change logged);
/// resources that do not exist are skipped.
pub fn set_metadata_rows(conn: &Connection, kind: i64, rows: &[(String, String)]) -> Result<()> {
    for (public_id, value) in rows {
        if let Some((id, _)) = find_id(conn, public_id)? {
            set_metadata_row(conn, id, kind, value)?;
        }
    }
    Ok(())
}

/// Adds labels to resources given by public id (those that do not exist are skipped).
pub fn add_labels(conn: &Connection, labels: &[(String, String)]) -> Result<()> {
    for (public_id, label) in labels {
        if let Some((id, _)) = find_id(conn, public_id)? {
            add_label(conn, id, label)?;
        }
    }
    Ok(())
}

/// Increments a counter kept in the global properties; answers its new value (from 1).
pub fn next_sequence(conn: &Connection, name: &str) -> Result<i64> {
    let value: i64 = conn
        .prepare_cached(
            "INSERT INTO global_properties (name, value) VALUES (?, '1') \
             ON CONFLICT (name) DO UPDATE SET value = CAST(value AS INTEGER) + 1 RETURNING value",
        )?
        .query_row([name], |r| r.get::<_, String>(0))?
        .parse()
        .unwrap_or(1);
    Ok(value)
}

/// Deletes a metadata and logs UpdatedMetadata.
pub fn delete_metadata(
    conn: &Connection,
    public_id: &str,
    kind: i64,
    if_match: Option<(i64, String)>,
    now: &str,
) -> Result<()> {
    let (id, level) = find_id(conn, public_id)?.ok_or(IndexError::UnknownResource)?;
    let Some(current) = revision_of(conn, id, kind)? else {
        return Err(IndexError::InexistentItem);
    };
    if if_match.is_some_and(|m| !matches(&m, &current)) {
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

/// Adds a label to a resource (nothing happens if it has it already).
pub fn add_label(conn: &Connection, id: i64, label: &str) -> Result<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO labels (resource_id, label) VALUES (?, ?)")?
        .execute(params![id, label])?;
    Ok(())
}

/// Removes a label from a resource (nothing happens if it does not have it).
pub fn remove_label(conn: &Connection, id: i64, label: &str) -> Result<()> {
    conn.prepare_cached("DELETE FROM labels WHERE resource_id = ? AND label = ?")?
        .execute(params![id, label])?;
    Ok(())
}

/// Records the storage folder an ingest thread (`writer`) is about to fill.
pub fn claim_storage_folder(conn: &Connection, writer: &str, folder: &str) -> Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO storage_folders (writer, folder) VALUES (?, ?)")?
        .execute(params![writer, folder])?;
    Ok(())
}

/// Forgets the folders recorded by these ingest threads (of a previous run, once the start-up
/// scan went through them), or every folder when `writers` is `None` (at a clean stop).
pub fn forget_storage_folders(conn: &Connection, writers: Option<&[String]>) -> Result<()> {
    match writers {
        None => {
            conn.execute("DELETE FROM storage_folders", [])?;
        }
        Some(writers) => {
            let mut stmt = conn.prepare_cached("DELETE FROM storage_folders WHERE writer = ?")?;
            for w in writers {
                stmt.execute([w])?;
            }
        }
    }
    Ok(())
}
