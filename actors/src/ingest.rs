//! [`IngestActor`]: turns received DICOM bytes into a stored instance.
//!
//! For each instance, on a blocking thread: parse the dataset up to Pixel Data, compute the
//! Orthanc ids, extract main tags and metadata, write the file. Then the file is fsynced
//! while the index records the instance in the next group commit, and only when both are
//! done the caller gets its answer (a file that cannot be synced takes its instance out of
//! the index again). That commit leaves the WAL unsynced: the folder of the file was
//! recorded durably first, so [`crate::recovery`] sets the index right after a power loss.

use std::sync::{Arc, RwLock};

use actix::prelude::*;
use md5::{Digest, Md5};
use serde_json::{Map, Value};

use crate::index::{
    IndexError, IndexWriter, NewInstance, StorageLimits, StoreOutcome, StoreStatus,
};
use crate::model::dicom::{self, DicomFile, Encoding, ParseOptions, Tag};
use crate::model::ids::InstanceIds;
use crate::model::main_tags::{self, TagNum};
use crate::model::{Level, MetadataType};
use crate::storage::{StorageArea, StorageError};

/// Where an instance came from (Orthanc's `Origin` metadata).
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// `RestApi`, `DicomProtocol`, `Lua`, `Plugins`, `WebDav`.
    pub kind: &'static str,
    pub remote_ip: Option<String>,
    pub remote_aet: Option<String>,
    pub called_aet: Option<String>,
    pub http_username: Option<String>,
}

/// Errors of ingestion.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Not a DICOM file, or a DICOM file Orthanc would refuse.
    #[error("{0}")]
    BadFileFormat(String),
    /// The storage area failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A blocking task could not run.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Settings of ingestion, some of them changeable at run time.
#[derive(Clone)]
pub struct IngestSettings {
    pub compress: bool,
    pub overwrite: bool,
    pub limits: StorageLimits,
    pub stable_age_ms: i64,
    pub default_encoding: Arc<RwLock<Encoding>>,
    pub concurrency: usize,
    /// The Lua callbacks (`ReceivedInstanceFilter`, `OnStoredInstance`).
    pub lua: Option<crate::lua_actor::LuaHandle>,
}

/// The outcome of storing one instance.
#[derive(Debug, Clone)]
pub struct StoredInstance {
    pub ids: InstanceIds,
    pub status: StoreStatus,
}

/// Stores one DICOM instance.
#[derive(Message)]
#[rtype(result = "Result<StoredInstance, IngestError>")]
pub struct StoreInstance {
    pub data: Arc<Vec<u8>>,
    pub origin: Origin,
    /// The main tags of existing parents are rewritten from this instance (what a
    /// modification does, so that a study modified in place shows its new tags).
    pub refresh_parents: bool,
}

/// The ingestion actor: a pool of `PacsnodeIngestConcurrency` threads (a SyncArbiter), so
/// parsing, file writes and fsyncs never run on an async thread, and the concurrency of
/// ingestion is bounded by the number of threads (and the mailbox).
pub struct IngestActor {
    storage: StorageArea,
    index: IndexWriter,
    settings: IngestSettings,
}

impl IngestActor {
    /// Starts the ingestion threads.
    pub fn start(
        storage: StorageArea,
        index: IndexWriter,
        settings: IngestSettings,
    ) -> Addr<IngestActor> {
        let threads = settings.concurrency.max(1);
        SyncArbiter::start(threads, move || IngestActor {
            storage: storage.clone(),
            index: index.clone(),
            settings: settings.clone(),
        })
    }

    fn store(&self, msg: StoreInstance) -> Result<StoredInstance, IngestError> {
        let settings = &self.settings;
        let encoding = *settings
            .default_encoding
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let want_tags = settings.lua.as_ref().is_some_and(|l| l.wants_tags());
        let prepared = prepare(&msg.data, encoding, want_tags)?;
        let tags = prepared.tags.clone().unwrap_or(Value::Null);
        if let Some(lua) = &settings.lua {
            let info = serde_json::json!({
                "HasPixelData": prepared.has_pixel_data,
                "TransferSyntaxUID": prepared.transfer_syntax,
            });
            if !futures_executor::block_on(lua.accepts(tags.clone(), msg.origin.kind, info)) {
                return Ok(StoredInstance {
                    ids: prepared.ids,
                    status: StoreStatus::FilteredOut,
                });
            }
        }
        if let Some((writer, folder)) = self.storage.next_folder() {
            let claimed = self.index.write_blocking(move |c| {
                crate::index::write::claim_storage_folder(c, &writer, &folder)
            });
            if let Err(e) = claimed {
                // No file may go to a folder the start-up scan would not know.
                self.storage.abandon_folder();
                return Err(e.into());
            }
        }
        let (file, handle) = self.storage.write(&msg.data, settings.compress)?;
        let md5 = hex_md5(&msg.data);
        let compressed_md5 = if settings.compress {
            hex_md5(&self.storage.read_raw(&file.uuid)?)
        } else {
            md5.clone()
        };
        let uuid = file.uuid.clone();
        let ids = prepared.ids.clone();
        let mut req = prepared.into_request(&msg.origin, file, md5, compressed_md5, settings);
        req.refresh_parents = msg.refresh_parents;
        let metadata: Map<String, Value> = req
            .metadata
            .iter()
            .map(|(k, v)| (k.orthanc_name().to_string(), Value::from(v.as_str())))
            .collect();
        // The index records the instance while the file is fsynced; the answer waits for both.
        let pending = self
            .index
            .store_start(move |c| crate::index::store_instance(c, &req));
        let synced = self.storage.sync(&handle);
        let stored = pending.and_then(|p| p.wait());
        let outcome = match (stored, synced) {
            (Ok(o), Ok(())) => o,
            (Ok(o), Err(e)) => {
                self.unstore(&ids.instance, &uuid, o);
                return Err(IngestError::Storage(e.into()));
            }
            (Err(e), _) => {
                self.storage.remove(&uuid);
                return Err(e.into());
            }
        };
        let mut obsolete = outcome.obsolete_files;
        if outcome.status == StoreStatus::AlreadyStored {
            obsolete.push(uuid);
        }
        obsolete.iter().for_each(|u| self.storage.remove(u));
        if let Some(lua) = settings
            .lua
            .as_ref()
            .filter(|_| outcome.status == StoreStatus::Success)
        {
            let origin = serde_json::json!({
                "RequestOrigin": msg.origin.kind,
                "RemoteIp": msg.origin.remote_ip,
                "RemoteAet": msg.origin.remote_aet,
                "CalledAet": msg.origin.called_aet,
                "HttpUsername": msg.origin.http_username,
            });
            lua.instance_stored(&ids.instance, tags, Value::Object(metadata), origin);
        }
        Ok(StoredInstance {
            ids,
            status: outcome.status,
        })
    }
}

impl IngestActor {
    /// Takes out of the index an instance whose file could not be made durable (and removes
    /// that file and those its store made obsolete).
    fn unstore(&self, instance: &str, uuid: &str, outcome: StoreOutcome) {
        if outcome.status == StoreStatus::Success {
            let id = instance.to_string();
            let deleted = self.index.write_blocking(move |c| {
                crate::index::write::delete_resource(c, &id, Level::Instance)
            });
            match deleted {
                Ok(d) => d.obsolete_files.iter().for_each(|u| self.storage.remove(u)),
                Err(e) => tracing::error!("cannot take back instance {instance}: {e}"),
            }
        }
        self.storage.remove(uuid);
        outcome
            .obsolete_files
            .iter()
            .for_each(|u| self.storage.remove(u));
    }
}

impl Actor for IngestActor {
    type Context = SyncContext<Self>;
}

impl Handler<StoreInstance> for IngestActor {
    type Result = Result<StoredInstance, IngestError>;

    fn handle(&mut self, msg: StoreInstance, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.store(msg)
    }
}

/// Removes files that no committed row references any more.
pub async fn remove_files(storage: &StorageArea, uuids: Vec<String>) {
    if uuids.is_empty() {
        return;
    }
    let storage = storage.clone();
    let _ = tokio::task::spawn_blocking(move || uuids.iter().for_each(|u| storage.remove(u))).await;
}

/// MD5 in lower-case hex, as Orthanc records it for attachments.
pub(crate) fn hex_md5(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What parsing found, before anything is written.
struct Prepared {
    ids: InstanceIds,
    identifiers: [String; 4],
    main_tags: [Map<String, Value>; 4],
    metadata: Vec<(MetadataType, String)>,
    series_metadata: Vec<(MetadataType, String)>,
    transfer_syntax: String,
    header: Vec<u8>,
    has_pixel_data: bool,
    /// The simplified tags, when a Lua callback wants them.
    tags: Option<Value>,
}

impl Prepared {
    fn into_request(
        self,
        origin: &Origin,
        file: crate::storage::StoredFile,
        md5: String,
        compressed_md5: String,
        settings: &IngestSettings,
    ) -> NewInstance {
        let now_utc = chrono::Utc::now();
        let now = now_utc.format("%Y%m%dT%H%M%S").to_string();
        let mut metadata = self.metadata;
        metadata.push((MetadataType::ReceptionDate, now.clone()));
        metadata.push((MetadataType::Origin, origin.kind.to_string()));
        let mut series_metadata = self.series_metadata;
        let optional = [
            (MetadataType::RemoteAet, &origin.remote_aet),
            (MetadataType::RemoteIp, &origin.remote_ip),
            (MetadataType::CalledAet, &origin.called_aet),
            (MetadataType::HttpUsername, &origin.http_username),
        ];
        for (kind, value) in optional {
            if let Some(v) = value {
                metadata.push((kind, v.clone()));
            }
        }
        if let Some(aet) = &origin.remote_aet {
            series_metadata.push((MetadataType::RemoteAet, aet.clone()));
        }
        NewInstance {
            ids: [
                self.ids.patient,
                self.ids.study,
                self.ids.series,
                self.ids.instance,
            ],
            identifiers: self.identifiers,
            main_tags: self.main_tags,
            metadata,
            series_metadata,
            file,
            md5,
            compressed_md5,
            transfer_syntax: self.transfer_syntax,
            header: crate::index::encode_header(&self.header),
            now,
            stable_deadline: now_utc.timestamp_millis() + settings.stable_age_ms,
            overwrite: settings.overwrite,
            limits: settings.limits,
            refresh_parents: false,
        }
    }
}

fn tag(t: TagNum) -> Tag {
    Tag(t.0, t.1)
}

/// Parses and checks a DICOM file, and extracts what the index needs. Blocking.
fn prepare(
    data: &[u8],
    default_encoding: Encoding,
    want_tags: bool,
) -> Result<Prepared, IngestError> {
    let opts = ParseOptions {
        stop_at_pixel_data: true,
        ..Default::default()
    };
    let file = dicom::parse(data, &opts).map_err(|e| IngestError::BadFileFormat(e.to_string()))?;
    let charset = file.charset_or(default_encoding);
    let get = |t: TagNum| {
        file.dataset
            .string(tag(t), charset)
            .map(|s| s.trim().to_string())
    };
    let identifiers = [
        get(main_tags::PATIENT_ID).unwrap_or_default(),
        get(main_tags::STUDY_INSTANCE_UID).unwrap_or_default(),
        get(main_tags::SERIES_INSTANCE_UID).unwrap_or_default(),
        get(main_tags::SOP_INSTANCE_UID).unwrap_or_default(),
    ];
    if identifiers[1..].iter().any(|s| s.is_empty()) {
        return Err(IngestError::BadFileFormat(
            "missing StudyInstanceUID, SeriesInstanceUID or SOPInstanceUID".into(),
        ));
    }
    let ids = InstanceIds::compute(
        &identifiers[0],
        &identifiers[1],
        &identifiers[2],
        &identifiers[3],
    );
    let main_tags = Level::ALL.map(|level| extract_main_tags(&file, level, charset));
    let mut metadata = vec![(MetadataType::TransferSyntax, file.transfer_syntax.clone())];
    if let Some(v) = get(main_tags::SOP_CLASS_UID) {
        metadata.push((MetadataType::SopClassUid, v));
    }
    if let Some(v) = get((0x0020, 0x0013)).or_else(|| get((0x0054, 0x1330))) {
        metadata.push((MetadataType::IndexInSeries, v.trim().to_string()));
    }
    if let Some(off) = file.pixel_data_offset {
        metadata.push((MetadataType::PixelDataOffset, off.to_string()));
    }
    if let Some(vr) = unexpected_pixel_data_vr(&file) {
        metadata.push((MetadataType::PixelDataVR, vr));
    }
    let mut series_metadata = Vec::new();
    if let Some(n) = expected_instances(&get) {
        series_metadata.push((MetadataType::ExpectedNumberOfInstances, n.to_string()));
    }
    let header = data[..file.header_end.min(data.len())].to_vec();
    Ok(Prepared {
        ids,
        identifiers,
        main_tags,
        metadata,
        series_metadata,
        transfer_syntax: file.transfer_syntax.clone(),
        header,
        has_pixel_data: file.has_pixel_data,
        tags: want_tags.then(|| {
            let opts = dicom::JsonOptions {
                default_encoding,
                ..Default::default()
            };
            dicom::to_orthanc_json(&file.dataset, dicom::Format::Simplify, &opts)
        }),
    })
}

fn extract_main_tags(file: &DicomFile, level: Level, charset: Encoding) -> Map<String, Value> {
    let mut out = Map::new();
    for m in main_tags::for_level(level) {
        if let Some(v) = file.dataset.string(tag(m.tag), charset) {
            out.insert(
                main_tags::tag_key(m.tag),
                Value::String(v.trim_end().to_string()),
            );
        }
    }
    if level == Level::Study {
        // Orthanc keeps the patient module in the study too (PatientMainDicomTags).
        for m in main_tags::PATIENT {
            if let Some(v) = file.dataset.string(tag(m.tag), charset) {
                out.insert(
                    main_tags::tag_key(m.tag),
                    Value::String(v.trim_end().to_string()),
                );
            }
        }
    }
    out
}

/// The VR of Pixel Data when it is not the one the file should use (OB up to 8 bits
/// allocated, OW above): Orthanc records it then, so the file can be read back as it was
/// written. Implicit VR files say nothing about it.
fn unexpected_pixel_data_vr(file: &DicomFile) -> Option<String> {
    let vr = file.pixel_data_vr.as_ref()?;
    if file.transfer_syntax == "1.2.840.10008.1.2" {
        return None;
    }
    let bits = file
        .dataset
        .get(Tag(0x0028, 0x0100))
        .and_then(|e| e.bytes())
        .and_then(|b| b.get(..2))
        .map(|b| u16::from_le_bytes([b[0], b[1]]));
    let expected = if bits.is_some_and(|b| b > 8) {
        "OW"
    } else {
        "OB"
    };
    (vr != expected).then(|| vr.clone())
}

/// Orthanc's ExpectedNumberOfInstances rule (ImagesInAcquisition alone does not count).
fn expected_instances(get: &dyn Fn(TagNum) -> Option<String>) -> Option<u64> {
    let num = |t: TagNum| get(t).and_then(|s| s.trim().parse::<u64>().ok());
    if let (Some(a), Some(b)) = (num((0x0020, 0x1002)), num((0x0020, 0x0105))) {
        return Some(a * b);
    }
    if let (Some(a), Some(b)) = (num((0x0054, 0x0081)), num((0x0054, 0x0101))) {
        return Some(a * b);
    }
    num((0x0018, 0x1090))
}
