//! The storage area: one file per attachment under `StorageDirectory`, named by a uuid in a
//! two-level fan-out (`ab/cd/abcd…`) as Orthanc does. Blocking code: call it from
//! `spawn_blocking` or a sync actor, never from an async task.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;

/// Errors of the storage area.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The file of an attachment is missing.
    #[error("inexistent file {0}")]
    Missing(String),
    /// Any other I/O failure.
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A compressed attachment is corrupted.
    #[error("corrupted compressed attachment {0}")]
    Corrupted(String),
}

/// How an attachment is stored (Orthanc's `CompressionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredCompression {
    None = 1,
    ZlibWithSize = 2,
}

/// What was written for one attachment.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub uuid: String,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    pub compression: StoredCompression,
}

/// The files of the storage area.
#[derive(Debug, Clone)]
pub struct StorageArea {
    root: PathBuf,
    sync: bool,
    /// Fan-out folders known to exist (saves a `mkdir` per file).
    known_dirs: std::sync::Arc<std::sync::RwLock<std::collections::HashSet<PathBuf>>>,
}

/// Files written in one fan-out folder before moving to another random one. Creating a
/// folder for (nearly) every file, as fully random names do for the first 65,536 files, was
/// a fifth of the CPU of an ingest (perf); the layout stays Orthanc's (`ab/cd/abcd…`).
const FILES_PER_FOLDER: u32 = 1000;

thread_local! {
    /// The fan-out folder this thread's new files go to, and how many went there. One per
    /// thread: creating a file locks its folder, and concurrent ingests waited on each other.
    static BUCKET: std::cell::Cell<Option<([u8; 2], u32)>> = const { std::cell::Cell::new(None) };
    /// This thread's name in the index's `storage_folders` table.
    static WRITER: String = uuid::Uuid::new_v4().simple().to_string();
}

/// Marks the storage root as the top of a directory hierarchy (`chattr +T`), so that ext2/3/4
/// spread its fan-out folders, and the files in them, over the block groups. Without it, new
/// folders land beside the storage root, where the files of a recent deletion lie: on ext4
/// without a journal every file creation then steps over each recently deleted inode, which
/// halved the ingest rate after a wipe (perf: `recently_deleted` in `ext4_create`). A hint
/// only: other file systems refuse it, and nothing changes.
#[cfg(target_os = "linux")]
fn mark_top_directory(root: &Path) {
    use std::os::fd::AsRawFd;
    const FS_TOPDIR_FL: libc::c_int = 0x0002_0000;
    let Ok(dir) = File::open(root) else { return };
    let mut flags: libc::c_int = 0;
    // SAFETY: both ioctls read or write one `int` through a valid pointer on an open fd.
    unsafe {
        if libc::ioctl(dir.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) == 0
            && flags & FS_TOPDIR_FL == 0
        {
            flags |= FS_TOPDIR_FL;
            if libc::ioctl(dir.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags) != 0 {
                tracing::debug!(
                    "storage area: cannot mark {} as a top directory",
                    root.display()
                );
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn mark_top_directory(_root: &Path) {}

impl StorageArea {
    pub fn new(root: impl Into<PathBuf>, sync: bool) -> std::io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        mark_top_directory(&root);
        Ok(StorageArea {
            root,
            sync,
            known_dirs: Default::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// When this thread's current fan-out folder is full (or it has none), moves it to a new
    /// random one and returns (this thread's writer name, the folder as `ab/cd`): the caller
    /// records it durably before writing files there (see `storage_folders` in the index).
    pub fn next_folder(&self) -> Option<(String, String)> {
        BUCKET.with(|bucket| {
            if bucket
                .get()
                .is_some_and(|(_, count)| count < FILES_PER_FOLDER)
            {
                return None;
            }
            let bytes = uuid::Uuid::new_v4().into_bytes();
            let folder = [bytes[0], bytes[1]];
            bucket.set(Some((folder, 0)));
            let name = format!("{:02x}/{:02x}", folder[0], folder[1]);
            Some((WRITER.with(|w| w.clone()), name))
        })
    }

    /// Forgets the folder [`StorageArea::next_folder`] just chose (it could not be recorded):
    /// the next file asks for a new one.
    pub fn abandon_folder(&self) {
        BUCKET.with(|bucket| bucket.set(None));
    }

    /// A random (version 4) uuid whose first two bytes name this thread's fan-out folder.
    fn new_uuid(&self) -> String {
        let mut bytes = *uuid::Uuid::new_v4().as_bytes();
        BUCKET.with(|bucket| {
            let (folder, count) = match bucket.get() {
                Some((folder, count)) if count < FILES_PER_FOLDER => (folder, count),
                _ => ([bytes[0], bytes[1]], 0),
            };
            bucket.set(Some((folder, count + 1)));
            bytes[..2].copy_from_slice(&folder);
        });
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    /// The uuids of the files in a fan-out folder (`ab/cd`); none if it does not exist.
    pub fn files_in(&self, folder: &str) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.root.join(folder)) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| uuid::Uuid::parse_str(name).is_ok())
            .collect()
    }

    /// Path of the file holding an attachment.
    pub fn path(&self, uuid: &str) -> PathBuf {
        let a = uuid.get(0..2).unwrap_or("00");
        let b = uuid.get(2..4).unwrap_or("00");
        self.root.join(a).join(b).join(uuid)
    }

    /// Writes a new attachment (zlib with an 8-byte size prefix when `compress`), not yet
    /// fsynced: pass the file to [`StorageArea::sync`] before relying on it.
    pub fn write(&self, data: &[u8], compress: bool) -> Result<(StoredFile, File), StorageError> {
        let uuid = self.new_uuid();
        let path = self.path(&uuid);
        if let Some(dir) = path.parent() {
            let known = self
                .known_dirs
                .read()
                .map(|k| k.contains(dir))
                .unwrap_or(false);
            if !known {
                fs::create_dir_all(dir)?;
                if let Ok(mut k) = self.known_dirs.write() {
                    k.insert(dir.to_path_buf());
                }
            }
        }
        let mut file = File::create(&path)?;
        let compressed_size = if compress {
            let mut enc = ZlibEncoder::new(Vec::with_capacity(data.len() / 2), Compression::fast());
            enc.write_all(data)?;
            let body = enc.finish()?;
            file.write_all(&(data.len() as u64).to_le_bytes())?;
            file.write_all(&body)?;
            body.len() as u64 + 8
        } else {
            file.write_all(data)?;
            data.len() as u64
        };
        let stored = StoredFile {
            uuid,
            compressed_size,
            uncompressed_size: data.len() as u64,
            compression: if compress {
                StoredCompression::ZlibWithSize
            } else {
                StoredCompression::None
            },
        };
        Ok((stored, file))
    }

    /// Makes a written file durable (fdatasync) when `SyncStorageArea` is on. Concurrent
    /// syncs run in parallel.
    pub fn sync(&self, file: &File) -> std::io::Result<()> {
        if self.sync {
            file.sync_data()?;
        }
        Ok(())
    }

    /// Reads the stored bytes as they are on disk.
    pub fn read_raw(&self, uuid: &str) -> Result<Vec<u8>, StorageError> {
        fs::read(self.path(uuid)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StorageError::Missing(uuid.to_string()),
            _ => StorageError::Io(e),
        })
    }

    /// Reads an attachment and uncompresses it if needed.
    pub fn read(
        &self,
        uuid: &str,
        compression: StoredCompression,
    ) -> Result<Vec<u8>, StorageError> {
        let raw = self.read_raw(uuid)?;
        match compression {
            StoredCompression::None => Ok(raw),
            StoredCompression::ZlibWithSize => {
                uncompress(&raw).ok_or_else(|| StorageError::Corrupted(uuid.into()))
            }
        }
    }

    /// Removes an attachment; a missing file is not an error.
    pub fn remove(&self, uuid: &str) {
        let path = self.path(uuid);
        if let Err(e) = fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("cannot remove {}: {e}", path.display());
            }
        }
    }
}

/// Uncompresses Orthanc's zlib-with-size format.
pub fn uncompress(raw: &[u8]) -> Option<Vec<u8>> {
    let size = u64::from_le_bytes(raw.get(..8)?.try_into().ok()?);
    let mut out = Vec::with_capacity(size.min(1 << 30) as usize);
    ZlibDecoder::new(&raw[8..]).read_to_end(&mut out).ok()?;
    (out.len() as u64 == size).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_remove() {
        let dir = tempfile::tempdir().unwrap();
        let area = StorageArea::new(dir.path(), true).unwrap();
        for compress in [false, true] {
            let (f, file) = area.write(b"hello hello hello", compress).unwrap();
            area.sync(&file).unwrap();
            assert!(area
                .path(&f.uuid)
                .starts_with(dir.path().join(&f.uuid[..2]).join(&f.uuid[2..4])));
            assert_eq!(
                area.read(&f.uuid, f.compression).unwrap(),
                b"hello hello hello"
            );
            area.remove(&f.uuid);
            assert!(matches!(
                area.read_raw(&f.uuid),
                Err(StorageError::Missing(_))
            ));
        }
    }
}
