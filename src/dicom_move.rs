//! The C-MOVE SCP (Patient Root and Study Root): the unique keys of the identifier (or the
//! AccessionNumber, as Orthanc allows) select the resources with the find engine, the move
//! destination is looked up among the declared modalities by AE title, and a
//! `DicomModalityStore` job sends the instances in one association; the C-MOVE answers when
//! that job is done (`SynchronousCMove`). Runs on the association's thread.

use std::sync::Arc;

use dicom_core::Tag;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use pacsnode_actors::dimse::{GetHandler, MoveHandler, MoveOutcome, StoreContext};
use pacsnode_actors::find::{self, FindQuery};
use pacsnode_actors::index::{read, IndexError, IndexReader};
use pacsnode_actors::jobs::modality_store::ModalityStoreRequest;
use pacsnode_actors::jobs::{JobRequest, Jobs};
use pacsnode_actors::model::Level;
use pacsnode_actors::storage::{StorageArea, StoredCompression};
use serde_json::Value;

use crate::settings::Settings;
use pacsnode_actors::queries::level_of;

const UNABLE_TO_PROCESS: u16 = 0xC000;
const IDENTIFIER_DOES_NOT_MATCH: u16 = 0xA900;
const MOVE_DESTINATION_UNKNOWN: u16 = 0xA801;
const SUBOPERATIONS_FAILED: u16 = 0xA702;
/// The keys that select what is moved at a level, as Orthanc reads them: the level's unique
/// key (and the AccessionNumber for studies); keys of other levels are ignored.
fn keys(level: Level) -> &'static [(u16, u16)] {
    match level {
        Level::Patient => &[(0x0010, 0x0020)],
        Level::Study => &[(0x0020, 0x000d), (0x0008, 0x0050)],
        Level::Series => &[(0x0020, 0x000e)],
        Level::Instance => &[(0x0008, 0x0018)],
    }
}

/// Answers C-MOVE requests with jobs.
pub struct CMove {
    pub reader: IndexReader,
    pub jobs: Jobs,
    pub settings: Arc<Settings>,
    pub storage: StorageArea,
}

impl CMove {
    /// The declared modality with this AE title: its name and configuration.
    fn destination(&self, aet: &str) -> Result<(String, Value), u16> {
        crate::dicom_access::modalities_with_aet(&self.reader, aet)
            .into_iter()
            .next()
            .ok_or(MOVE_DESTINATION_UNKNOWN)
    }

    /// Waits for a job to end; answers its JSON.
    fn wait(&self, id: &str) -> Result<Value, u16> {
        futures_executor::block_on(self.jobs.wait(id)).map_err(|_| SUBOPERATIONS_FAILED)
    }
}

impl CMove {
    /// The find query of a C-MOVE or C-GET identifier: its level (or the one its keys
    /// imply) and its unique keys (or AccessionNumber).
    fn query(&self, identifier: &[u8], transfer_syntax: &str) -> Result<FindQuery, u16> {
        let ts = TransferSyntaxRegistry
            .get(transfer_syntax)
            .ok_or(UNABLE_TO_PROCESS)?;
        let query = InMemDicomObject::read_dataset_with_ts(identifier, ts)
            .map_err(|_| UNABLE_TO_PROCESS)?;
        let given = |g: u16, e: u16| {
            query
                .element(Tag(g, e))
                .ok()
                .and_then(|e| e.to_str().ok())
                .is_some_and(|v| !v.trim_end_matches(['\0', ' ']).trim().is_empty())
        };
        let level = match query.element(Tag(0x0008, 0x0052)) {
            Ok(e) => e
                .to_str()
                .ok()
                .and_then(|l| level_of(&l))
                .ok_or(IDENTIFIER_DOES_NOT_MATCH)?,
            // No level: the most specific of the keys given, as Orthanc guesses it.
            Err(_) if given(0x0008, 0x0018) => Level::Instance,
            Err(_) if given(0x0020, 0x000e) => Level::Series,
            Err(_) if given(0x0020, 0x000d) || given(0x0008, 0x0050) => Level::Study,
            Err(_) if given(0x0010, 0x0020) => Level::Patient,
            Err(_) => return Err(IDENTIFIER_DOES_NOT_MATCH),
        };
        let mut q = FindQuery::new(level);
        for &tag in keys(level) {
            let value = query
                .element(Tag(tag.0, tag.1))
                .ok()
                .and_then(|e| e.to_str().ok())
                .map(|v| v.trim_end_matches(['\0', ' ']).trim().to_string())
                .unwrap_or_default();
            if !value.is_empty() {
                q.constraints
                    .push(find::constraint(level, tag, &value, true));
            }
        }
        if q.constraints.is_empty() {
            return Err(IDENTIFIER_DOES_NOT_MATCH);
        }
        Ok(q)
    }

    /// The public ids of the resources a query selects.
    fn selected(&self, q: &FindQuery) -> Result<Vec<String>, u16> {
        Ok(self
            .reader
            .with_blocking(|c| {
                find::execute(c, q).map_err(|e| IndexError::BadRequest(e.to_string()))
            })
            .map_err(|_| UNABLE_TO_PROCESS)?
            .into_iter()
            .map(|(_, public_id)| public_id)
            .collect())
    }
}

impl MoveHandler for CMove {
    fn retrieve(
        &self,
        identifier: &[u8],
        transfer_syntax: &str,
        destination: &str,
        message_id: u16,
        ctx: &StoreContext,
    ) -> Result<MoveOutcome, u16> {
        let q = self.query(identifier, transfer_syntax)?;
        let (name, config) = self.destination(destination)?;
        let resources = self.selected(&q)?;
        let raw = &self.settings.raw;
        let request = ModalityStoreRequest {
            name,
            remote_aet: destination.to_string(),
            host: config["Host"].as_str().unwrap_or_default().to_string(),
            port: config["Port"].as_u64().unwrap_or(104) as u16,
            timeout: self.settings.dicom_scu_timeout,
            // The destination's own `LocalAet`, if its configuration has one.
            local_aet: config["LocalAet"]
                .as_str()
                .filter(|a| !a.is_empty())
                .unwrap_or(&self.settings.dicom_aet)
                .to_string(),
            resources,
            move_originator: Some((ctx.calling_aet.clone(), message_id)),
            permissive: true,
            log_exports: false,
            description: "C-MOVE".into(),
        };
        let job = JobRequest::DicomModalityStore(Box::new(request));
        let id = futures_executor::block_on(self.jobs.submit(job, 0, None))
            .map_err(|_| SUBOPERATIONS_FAILED)?;
        if raw.get("SynchronousCMove").and_then(Value::as_bool) == Some(false) {
            return Ok(MoveOutcome::default());
        }
        let info = self.wait(&id)?;
        let content = &info["Content"];
        let total = content["InstancesCount"].as_u64().unwrap_or(0) as u16;
        let failed = content["FailedInstancesCount"].as_u64().unwrap_or(0) as u16;
        if info["State"] == "Failure" {
            tracing::warn!(
                "C-MOVE from {} to {destination}: job {id} failed",
                ctx.calling_aet
            );
            return Err(SUBOPERATIONS_FAILED);
        }
        Ok(MoveOutcome {
            completed: total.saturating_sub(failed),
            failed,
            warning: 0,
        })
    }
}

impl GetHandler for CMove {
    fn matching_instances(
        &self,
        identifier: &[u8],
        transfer_syntax: &str,
        _ctx: &StoreContext,
    ) -> Result<Vec<String>, u16> {
        let q = self.query(identifier, transfer_syntax)?;
        let resources = self.selected(&q)?;
        self.reader
            .with_blocking(|c| {
                let mut out = Vec::new();
                for id in &resources {
                    let Some(row) = read::resource_by_public_id(c, id)? else {
                        continue;
                    };
                    if row.level == Level::Instance {
                        out.push(row.public_id);
                    } else {
                        let all = read::descendants(c, row.id, Level::Instance)?;
                        out.extend(all.into_iter().map(|r| r.public_id));
                    }
                }
                Ok(out)
            })
            .map_err(|_| UNABLE_TO_PROCESS)
    }

    fn load(&self, instance: &str) -> Option<Vec<u8>> {
        let id = instance.to_string();
        let att = self
            .reader
            .with_blocking(move |c| {
                let Some(row) = read::resource_by_public_id(c, &id)? else {
                    return Ok(None);
                };
                Ok(read::attachments(c, row.id)?
                    .into_iter()
                    .find(|a| a.file_type == 1))
            })
            .ok()??;
        let compression = if att.compression == 2 {
            StoredCompression::ZlibWithSize
        } else {
            StoredCompression::None
        };
        self.storage.read(&att.uuid, compression).ok()
    }
}
