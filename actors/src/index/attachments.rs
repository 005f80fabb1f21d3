//! Attachments added through the REST API (content types from 1024 on), with revisions: the
//! `ETag` of an attachment is `"{revision}-{md5}"`, and a change must name the current one.

use rusqlite::{params, Connection, OptionalExtension};

use super::write::{find_id, log_change};
use super::IndexError;
use crate::model::ChangeType;
use crate::storage::StoredFile;

type Result<T> = std::result::Result<T, IndexError>;

/// A file written for an attachment, to record.
pub struct NewAttachment {
    pub file_type: i64,
    pub file: StoredFile,
    pub md5: String,
    pub compressed_md5: String,
}

/// The revision and MD5 an `If-Match` header names.
pub type Expected = Option<(i64, String)>;

fn current(conn: &Connection, id: i64, file_type: i64) -> Result<Option<(i64, String, String)>> {
    Ok(conn
        .prepare_cached(
            "SELECT revision, uncompressed_md5, uuid FROM attachments \
             WHERE resource_id = ? AND file_type = ?",
        )?
        .query_row(params![id, file_type], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?)
}

/// Checks `expected` against the current revision and MD5; with `check_revisions`, changing
/// an existing attachment needs `expected`.
fn check(
    current: &(i64, String, String),
    expected: &Expected,
    check_revisions: bool,
) -> Result<()> {
    match expected {
        Some((rev, md5)) if *rev != current.0 || *md5 != current.1 => Err(IndexError::Revision),
        None if check_revisions => Err(IndexError::Revision),
        _ => Ok(()),
    }
}

/// Adds or replaces an attachment of a resource, logs UpdatedAttachment. Gives the new
/// revision and the file the old one used (to remove once committed).
pub fn set_attachment(
    conn: &Connection,
    public_id: &str,
    new: &NewAttachment,
    expected: Expected,
    check_revisions: bool,
    now: &str,
) -> Result<(i64, Option<String>)> {
    let (id, level) = find_id(conn, public_id)?.ok_or(IndexError::UnknownResource)?;
    let old = current(conn, id, new.file_type)?;
    if let Some(old) = &old {
        check(old, &expected, check_revisions)?;
    }
    let revision = old.as_ref().map_or(0, |o| o.0 + 1);
    conn.prepare_cached(
        "INSERT OR REPLACE INTO attachments (resource_id, file_type, uuid, compressed_size, \
         uncompressed_size, compression, uncompressed_md5, compressed_md5, revision) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        id,
        new.file_type,
        new.file.uuid,
        new.file.compressed_size as i64,
        new.file.uncompressed_size as i64,
        new.file.compression as i64,
        new.md5,
        new.compressed_md5,
        revision
    ])?;
    log_change(
        conn,
        ChangeType::UpdatedAttachment,
        Some(id),
        level,
        public_id,
        now,
    )?;
    Ok((revision, old.map(|o| o.2)))
}

/// Deletes an attachment of a resource, logs UpdatedAttachment. Gives the file to remove
/// once committed.
pub fn delete_attachment(
    conn: &Connection,
    public_id: &str,
    file_type: i64,
    expected: Expected,
    check_revisions: bool,
    now: &str,
) -> Result<String> {
    let (id, level) = find_id(conn, public_id)?.ok_or(IndexError::UnknownResource)?;
    let old = current(conn, id, file_type)?.ok_or(IndexError::InexistentItem)?;
    check(&old, &expected, check_revisions)?;
    conn.prepare_cached("DELETE FROM attachments WHERE resource_id = ? AND file_type = ?")?
        .execute(params![id, file_type])?;
    log_change(
        conn,
        ChangeType::UpdatedAttachment,
        Some(id),
        level,
        public_id,
        now,
    )?;
    Ok(old.2)
}

/// Points an attachment at a copy of its file stored with another compression (same data,
/// same revision). Gives the file the old one used, to remove once committed.
pub fn set_compression(
    conn: &Connection,
    public_id: &str,
    file_type: i64,
    file: &StoredFile,
    compressed_md5: &str,
) -> Result<String> {
    let (id, _) = find_id(conn, public_id)?.ok_or(IndexError::UnknownResource)?;
    let old = current(conn, id, file_type)?.ok_or(IndexError::InexistentItem)?;
    conn.prepare_cached(
        "UPDATE attachments SET uuid = ?, compressed_size = ?, compression = ?, compressed_md5 = ? \
         WHERE resource_id = ? AND file_type = ?",
    )?
    .execute(params![
        file.uuid,
        file.compressed_size as i64,
        file.compression as i64,
        compressed_md5,
        id,
        file_type
    ])?;
    Ok(old.2)
}

/// Removes every attachment of one content type (`/tools/invalidate-tags`: the DICOM-as-JSON
/// summaries, 2, that Orthanc 1.9.0 and older wrote). Gives their files, to remove once
/// committed.
pub fn delete_all_of_type(conn: &Connection, file_type: i64) -> Result<Vec<String>> {
    let uuids = conn
        .prepare_cached("DELETE FROM attachments WHERE file_type = ? RETURNING uuid")?
        .query_map([file_type], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(uuids)
}
