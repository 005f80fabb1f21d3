//! The `DicomModalityStore` job: sends the instances of some resources to a DICOM modality
//! in one association (C-STORE SCU), for `/modalities/{id}/store` run as a job and for the
//! C-MOVE SCP.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{JobContext, JobDone, JobError};
use crate::dimse::{self, RemoteAe};
use crate::index::write::{self, Export};
use crate::index::{read, AttachmentRow};
use crate::model::Level;
use crate::storage::StoredCompression;

/// What a modality store job does.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ModalityStoreRequest {
    /// The modality's symbolic name (for `/exports`).
    pub name: String,
    pub remote_aet: String,
    pub host: String,
    pub port: u16,
    /// Seconds (`DicomScuTimeout` or the modality's `Timeout`).
    pub timeout: u64,
    pub local_aet: String,
    pub resources: Vec<String>,
    /// The C-MOVE this store answers (`MoveOriginatorAet` / `MoveOriginatorID`).
    pub move_originator: Option<(String, u16)>,
    /// Failed instances do not fail the job.
    pub permissive: bool,
    /// Record the resources in `/exports` (`LogExportedResources`).
    pub log_exports: bool,
    /// `Description` in the job's content (`REST API`, `C-MOVE`).
    pub description: String,
}

/// One instance to send: public id, identifiers (for `/exports`), its DICOM file.
pub(crate) type Outgoing = (String, [String; 4], AttachmentRow);

/// The instances of resources of any level, in order; a resource that does not exist fails.
pub(crate) async fn instances_of(
    ctx: &JobContext,
    resources: &[String],
) -> Result<Vec<Outgoing>, JobError> {
    let resources = resources.to_vec();
    ctx.reader
        .with(move |c| {
            let mut out = Vec::new();
            for id in &resources {
                let Some(row) = read::resource_by_public_id(c, id)? else {
                    return Ok(Err(JobError::UnknownResource(id.clone())));
                };
                let rows = if row.level == Level::Instance {
                    vec![row]
                } else {
                    read::descendants(c, row.id, Level::Instance)?
                };
                for r in rows {
                    let att = read::attachments(c, r.id)?
                        .into_iter()
                        .find(|a| a.file_type == 1);
                    if let Some(a) = att {
                        out.push((r.public_id.clone(), read::identifiers(c, r.id)?, a));
                    }
                }
            }
            Ok(Ok(out))
        })
        .await?
}

/// Reads the stored DICOM file of an instance (blocking).
pub(crate) fn read_dicom(ctx: &JobContext, att: &AttachmentRow) -> Result<Vec<u8>, JobError> {
    let compression = if att.compression == 2 {
        StoredCompression::ZlibWithSize
    } else {
        StoredCompression::None
    };
    ctx.storage
        .read(&att.uuid, compression)
        .map_err(|e| JobError::Failed(e.to_string()))
}

/// Records the resources a store was asked for in `/exports` (`LogExportedResources`),
/// each at its level, under the modality's or the peer's name — as Orthanc does, when the
/// store starts.
pub(crate) async fn log_exports(
    ctx: &JobContext,
    remote: &str,
    resources: &[String],
) -> Result<(), JobError> {
    let (resources, remote) = (resources.to_vec(), remote.to_string());
    let date = chrono::Utc::now().format("%Y%m%dT%H%M%S").to_string();
    ctx.writer
        .write(move |c| {
            let mut rows = Vec::with_capacity(resources.len());
            for id in resources {
                if let Some(row) = read::resource_by_public_id(c, &id)? {
                    rows.push(Export {
                        level: row.level,
                        identifiers: read::identifiers(c, row.id)?,
                        public_id: id,
                        modality: remote.clone(),
                        date: date.clone(),
                    });
                }
            }
            write::log_exports(c, &rows)
        })
        .await?;
    Ok(())
}

pub async fn run(req: ModalityStoreRequest, ctx: JobContext) -> Result<JobDone, JobError> {
    let instances = instances_of(&ctx, &req.resources).await?;
    if req.log_exports {
        log_exports(&ctx, &req.name, &req.resources).await?;
    }
    let total = instances.len() as u64;
    let (job, request) = (ctx.clone(), req.clone());
    let statuses = tokio::task::spawn_blocking(move || {
        let mut files = Vec::with_capacity(instances.len());
        for (_, _, att) in &instances {
            job.check_cancel()?;
            files.push(read_dicom(&job, att)?);
        }
        let remote = RemoteAe {
            aet: request.remote_aet.clone(),
            host: request.host.clone(),
            port: request.port,
            timeout: std::time::Duration::from_secs(request.timeout),
        };
        let originator = request
            .move_originator
            .as_ref()
            .map(|(aet, id)| (aet.as_str(), *id));
        let statuses = if files.is_empty() {
            Vec::new()
        } else {
            dimse::store(&request.local_aet, &remote, &files, originator)
                .map_err(|e| JobError::Failed(e.to_string()))?
        };
        job.set_progress(total, total);
        Ok::<_, JobError>(statuses)
    })
    .await
    .map_err(|e| JobError::Failed(e.to_string()))??;
    // Success, or a warning (0xB000…).
    let ok = |s: u16| s == 0 || s & 0xF000 == 0xB000;
    let failed = statuses.iter().filter(|s| !ok(**s)).count();
    if failed > 0 && !req.permissive {
        return Err(JobError::Failed(format!(
            "{failed} instance(s) could not be sent to {}",
            req.remote_aet
        )));
    }
    Ok(JobDone {
        content: json!({
            "Description": req.description,
            "FailedInstancesCount": failed,
            "InstancesCount": total,
            "LocalAet": req.local_aet,
            "ParentResources": req.resources,
            "RemoteAet": req.remote_aet,
        }),
        output: false,
    })
}
