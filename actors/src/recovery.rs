//! Start-up recovery: indexes again the stored files whose index rows a power loss took away.
//!
//! Instance stores commit with the WAL written but not fsynced (their file is fsynced before);
//! a `kill -9` loses nothing, but a power loss may drop the last commits. Every fan-out
//! folder an ingest thread fills is recorded durably first (`storage_folders`), so at start-up
//! the files of those folders that the index does not know are stored again, through the
//! normal ingest path, then those rows are deleted (the threads of the new run record their
//! own). After a clean stop the table is empty.

use actix::Addr;

use crate::index::{read, write, IndexError, IndexReader, IndexWriter};
use crate::ingest::{IngestActor, IngestError, Origin, StoreInstance};
use crate::storage::{self, StorageArea};

/// What the scan did.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Files indexed again.
    pub stored: usize,
    /// Files that were not DICOM (a write cut short before it was acknowledged): removed.
    pub removed: usize,
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
    let known = reader
        .with(move |c| read::attachments_in_folders(c, &scan))
        .await?;
    let area = storage.clone();
    let orphans: Vec<String> = tokio::task::spawn_blocking(move || {
        folders
            .iter()
            .flat_map(|f| area.files_in(f))
            .filter(|uuid| !known.contains(uuid))
            .collect()
    })
    .await
    .map_err(|_| IndexError::Unavailable)?;
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
    if done.stored + done.removed > 0 {
        tracing::warn!(
            "recovery: {} stored file(s) indexed again, {} unreadable file(s) removed",
            done.stored,
            done.removed
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
