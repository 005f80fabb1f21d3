//! Start-up recovery: makes the index match the files of the last ingests after a power loss.
//!
//! Instance stores commit with the WAL written but not fsynced, while their file is fsynced
//! (an instance is acknowledged once both are done); a `kill -9` loses nothing, but a power
//! loss may drop the last commits, or keep the record of an instance whose file never
//! reached the disk (not acknowledged). Every fan-out folder an ingest thread fills is
//! recorded durably first (`storage_folders`), so at start-up, in those folders:
//! * an instance whose DICOM file is missing or differs from what was written (size, MD5)
//!   is taken out of the index;
//! * the files that the index does not know are stored again, through the normal ingest
//!   path.
//!
//! Then those rows are deleted (the threads of the new run record their own). After a clean
//! stop the table is empty.

use std::collections::HashSet;

use actix::Addr;

use crate::index::read::FolderAttachment;
use crate::index::{read, write, IndexError, IndexReader, IndexWriter};
use crate::ingest::{hex_md5, IngestActor, IngestError, Origin, StoreInstance};
use crate::model::Level;
use crate::storage::{self, StorageArea};

/// What the scan did.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Files indexed again.
    pub stored: usize,
    /// Files that were not DICOM (a write cut short before it was acknowledged): removed.
    pub removed: usize,
    /// Instances whose file did not survive (never acknowledged): taken out of the index.
    pub dropped: usize,
}

/// Scans the recorded folders and stores again every file the index does not know.
pub async fn recover(
    storage: &StorageArea,
    reader: &IndexReader,
    writer: &IndexWriter,
    ingest: &Addr<IngestActor>,
) -> Result<Recovered, IndexError> {
    let mut done = Recovered::default();
    let rows = reader.with(read::storage_folders).await?;
    if rows.is_empty() {
        return Ok(done);
    }
    // The threads of this run record their own folders meanwhile: only these rows go after.
    let (writers, mut folders): (Vec<String>, Vec<String>) = rows.into_iter().unzip();
    folders.sort();
    folders.dedup();
    let scan = folders.clone();
    let recorded = reader
        .with(move |c| read::attachments_in_folders(c, &scan))
        .await?;
    let area = storage.clone();
    let (broken, orphans) = tokio::task::spawn_blocking(move || {
        let broken: Vec<String> = recorded
            .iter()
            .filter(|a| a.is_dicom && !intact(&area, a))
            .map(|a| a.resource.clone())
            .collect();
        let known: HashSet<&str> = recorded.iter().map(|a| a.uuid.as_str()).collect();
        let orphans: Vec<String> = folders
            .iter()
            .flat_map(|f| area.files_in(f))
            .filter(|uuid| !known.contains(uuid.as_str()))
            .collect();
        (broken, orphans)
    })
    .await
    .map_err(|_| IndexError::Unavailable)?;
    for instance in broken {
        let id = instance.clone();
        let deleted = writer
            .write(move |c| write::delete_resource(c, &id, Level::Instance))
            .await;
        match deleted {
            Ok(outcome) => {
                done.dropped += 1;
                let area = storage.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    outcome.obsolete_files.iter().for_each(|u| area.remove(u))
                })
                .await;
            }
            Err(e) => tracing::error!("recovery: cannot take instance {instance} out: {e}"),
        }
    }
    for uuid in orphans {
        let area = storage.clone();
        let id = uuid.clone();
        let data = tokio::task::spawn_blocking(move || {
            let raw = area.read_raw(&id).ok()?;
            // A compressed attachment (`StorageCompression`) or the DICOM file itself.
            Some(storage::uncompress(&raw).unwrap_or(raw))
        })
        .await
        .ok()
        .flatten();
        let Some(data) = data else { continue };
        let origin = Origin {
            kind: "Unknown",
            ..Default::default()
        };
        let answer = ingest
            .send(StoreInstance {
                data: data.into(),
                origin,
                refresh_parents: false,
            })
            .await;
        match answer {
            Ok(Ok(_)) => done.stored += 1,
            Ok(Err(IngestError::BadFileFormat(_))) => done.removed += 1,
            Ok(Err(e)) => {
                tracing::error!("recovery: cannot store {uuid} again: {e}");
                continue;
            }
            Err(_) => return Err(IndexError::Unavailable),
        }
        let area = storage.clone();
        let _ = tokio::task::spawn_blocking(move || area.remove(&uuid)).await;
    }
    // A full commit: everything stored before (and just now) is durable from here on.
    writer
        .write(move |c| write::forget_storage_folders(c, Some(&writers)))
        .await?;
    if done.stored + done.removed + done.dropped > 0 {
        tracing::warn!(
            "recovery: {} stored file(s) indexed again, {} unreadable file(s) removed, \
             {} instance(s) whose file was lost taken out of the index",
            done.stored,
            done.removed,
            done.dropped
        );
    }
    Ok(done)
}

/// At a clean stop: one full commit makes every instance store durable, and nothing is left
/// for the start-up scan.
pub async fn forget_folders(writer: &IndexWriter) -> Result<(), IndexError> {
    writer
        .write(|c| write::forget_storage_folders(c, None))
        .await
}

/// Whether the file of an attachment holds what was written (blocking).
fn intact(area: &StorageArea, attachment: &FolderAttachment) -> bool {
    area.read_raw(&attachment.uuid)
        .is_ok_and(|raw| raw.len() as u64 == attachment.size && hex_md5(&raw) == attachment.md5)
}
