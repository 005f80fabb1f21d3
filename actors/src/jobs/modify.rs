//! The `ResourceModification` job (`/{patients,studies,series}/{id}/modify`): reads each
//! instance of the resources, applies the modification (one [`UidMap`] for the whole job, so
//! the instances of a series share their new SeriesInstanceUID), stores the result through
//! the ingestion, and records where it came from (`ModifiedFrom`) as Orthanc does: on the
//! new instance always, on its series, study and patient when their id differs from the
//! source's. With `KeepSource` false the source instances are deleted at the end.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::modality_store::{instances_of, read_dicom};
use super::{JobContext, JobDone, JobError};
use crate::index::{write, StoreStatus};
use crate::ingest::{Origin, StoreInstance};
use crate::model::dicom::modify::{modify, Modification, UidMap};
use crate::model::ids::InstanceIds;
use crate::model::{Level, MetadataType};

/// What a modification job does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModifyRequest {
    /// The level of the route: the answer describes the new resource at this level.
    pub level: Level,
    /// The resources whose instances are modified (`ParentResources`).
    pub resources: Vec<String>,
    pub modification: Modification,
    pub keep_source: bool,
    /// Failed instances are counted instead of failing the job.
    pub permissive: bool,
    /// The transfer syntax of the new instances (`Transcode`), and the lossy quality.
    #[serde(default)]
    pub transcode: Option<String>,
    #[serde(default)]
    pub quality: Option<u8>,
    /// `/tools/bulk-*`: the answer lists every new resource instead of one.
    #[serde(default)]
    pub bulk: bool,
    /// The new resources get the labels of their sources (`KeepLabels`).
    #[serde(default)]
    pub keep_labels: bool,
    /// Split and merge: the StudyInstanceUID every new instance gets; the answer names the
    /// study (`TargetStudy`).
    #[serde(default)]
    pub target_study_uid: Option<String>,
}

/// The ids of one source instance and of its modified copy.
struct Done {
    source: InstanceIds,
    new: InstanceIds,
}

fn ids_of(identifiers: &[String; 4]) -> InstanceIds {
    InstanceIds::compute(
        &identifiers[0],
        &identifiers[1],
        &identifiers[2],
        &identifiers[3],
    )
}

fn at(ids: &InstanceIds, level: Level) -> &str {
    match level {
        Level::Patient => &ids.patient,
        Level::Study => &ids.study,
        Level::Series => &ids.series,
        Level::Instance => &ids.instance,
    }
}

pub async fn run(req: ModifyRequest, ctx: JobContext) -> Result<JobDone, JobError> {
    let instances = instances_of(&ctx, &req.resources).await?;
    let ingest = ctx
        .ingest
        .clone()
        .ok_or_else(|| JobError::Failed("no ingestion to store into".into()))?;
    let total = instances.len() as u64 + if req.keep_source { 1 } else { 2 };
    // Read first: a modification in place replaces the sources.
    let labels = if req.keep_labels {
        let sources: Vec<InstanceIds> = instances.iter().map(|(_, i, _)| ids_of(i)).collect();
        source_labels(&ctx, sources).await?
    } else {
        Vec::new()
    };
    let (job, request) = (ctx.clone(), req.clone());
    let (done, failed) = tokio::task::spawn_blocking(move || {
        let mut uids = UidMap::default();
        let mut done = Vec::new();
        let mut failed = 0u64;
        for (i, (_, identifiers, att)) in instances.iter().enumerate() {
            job.check_cancel()?;
            let outcome = read_dicom(&job, att).and_then(|file| {
                let mut out = modify(&file, &request.modification, &mut uids)
                    .map_err(|e| JobError::Failed(e.to_string()))?;
                if let Some(ts) = &request.transcode {
                    out = crate::transcode::transcode(&out, ts, request.quality)
                        .map_err(|e| JobError::Failed(e.to_string()))?;
                }
                store(&ingest, out)
            });
            match outcome {
                Ok(new) => done.push(Done {
                    source: ids_of(identifiers),
                    new,
                }),
                Err(e) if request.permissive => {
                    tracing::warn!("modification of an instance failed: {e}");
                    failed += 1;
                }
                Err(e) => return Err(e),
            }
            job.set_progress(i as u64 + 1, total);
        }
        Ok::<_, JobError>((done, failed))
    })
    .await
    .map_err(|e| JobError::Failed(e.to_string()))??;
    let origin = if req.modification.anonymization.is_some() {
        MetadataType::AnonymizedFrom
    } else {
        MetadataType::ModifiedFrom
    };
    record_origins(&ctx, &done, origin).await?;
    if !req.keep_source {
        delete_sources(&ctx, &done).await?;
    }
    copy_labels(&ctx, &done, labels).await?;
    ctx.set_progress(total, total);
    let mut content = json!({
        "Description": "REST API",
        "FailedInstancesCount": failed,
        "InstancesCount": done.len() as u64 + failed,
        "IsAnonymization": req.modification.anonymization.is_some(),
        "ParentResources": req.resources,
    });
    if let Some(ts) = &req.transcode {
        content["Transcode"] = json!(ts);
    }
    if let Some(uid) = &req.target_study_uid {
        if let Some(first) = done.first() {
            content["TargetStudy"] = json!(first.new.study);
        }
        content["TargetStudyUID"] = json!(uid);
    } else if req.bulk {
        content["Resources"] = new_resources(&done);
    } else if let Some(first) = done.first() {
        let id = at(&first.new, req.level);
        content["ID"] = json!(id);
        content["Path"] = json!(format!("/{}/{id}", req.level.plural()));
        content["PatientID"] = json!(first.new.patient);
        content["Type"] = json!(req.level.name());
    }
    Ok(JobDone {
        content,
        output: false,
    })
}

/// The new resources of a bulk job: instances, series, studies then patients, each sorted.
fn new_resources(done: &[Done]) -> serde_json::Value {
    let mut out = Vec::new();
    for level in [Level::Instance, Level::Series, Level::Study, Level::Patient] {
        let ids: std::collections::BTreeSet<&str> =
            done.iter().map(|d| at(&d.new, level)).collect();
        out.extend(ids.into_iter().map(|id| {
            json!({"Type": level.name(), "ID": id, "Path": format!("/{}/{id}", level.plural())})
        }));
    }
    serde_json::Value::Array(out)
}

/// Stores a modified file through the ingestion (blocking); its ids.
fn store(
    ingest: &actix::Addr<crate::ingest::IngestActor>,
    file: Vec<u8>,
) -> Result<InstanceIds, JobError> {
    let sent = futures_executor::block_on(ingest.send(StoreInstance {
        data: Arc::new(file),
        origin: Origin {
            kind: "RestApi",
            ..Default::default()
        },
        refresh_parents: true,
    }));
    match sent {
        Ok(Ok(s)) if matches!(s.status, StoreStatus::Success | StoreStatus::AlreadyStored) => {
            Ok(s.ids)
        }
        Ok(Ok(_)) => Err(JobError::Failed("Cannot store an instance".into())),
        Ok(Err(e)) => Err(JobError::Failed(e.to_string())),
        Err(e) => Err(JobError::Failed(e.to_string())),
    }
}

/// `ModifiedFrom` (or `AnonymizedFrom`) on each new instance, and on its parents whose id changed.
async fn record_origins(
    ctx: &JobContext,
    done: &[Done],
    origin: MetadataType,
) -> Result<(), JobError> {
    let mut rows: Vec<(String, String)> = Vec::new();
    for d in done {
        for level in Level::ALL {
            let (new, source) = (at(&d.new, level), at(&d.source, level));
            if level == Level::Instance || new != source {
                rows.push((new.to_string(), source.to_string()));
            }
        }
    }
    rows.sort();
    rows.dedup();
    let kind = origin.number();
    ctx.writer
        .write(move |c| write::set_metadata_rows(c, kind, &rows))
        .await?;
    Ok(())
}

/// The labels of the sources, at every level: `(source public id, label)`.
async fn source_labels(
    ctx: &JobContext,
    sources: Vec<InstanceIds>,
) -> Result<Vec<(String, String)>, JobError> {
    let labels = ctx
        .reader
        .with(move |c| {
            let mut out = Vec::new();
            for s in &sources {
                for level in Level::ALL {
                    let id = at(s, level);
                    if let Some(row) = crate::index::read::resource_by_public_id(c, id)? {
                        for l in crate::index::read::labels(c, row.id)? {
                            out.push((id.to_string(), l));
                        }
                    }
                }
            }
            out.sort();
            out.dedup();
            Ok(out)
        })
        .await?;
    Ok(labels)
}

/// Gives each new resource the labels of its source.
async fn copy_labels(
    ctx: &JobContext,
    done: &[Done],
    labels: Vec<(String, String)>,
) -> Result<(), JobError> {
    if labels.is_empty() {
        return Ok(());
    }
    let mut rows = Vec::new();
    for d in done {
        for level in Level::ALL {
            let (source, new) = (at(&d.source, level), at(&d.new, level));
            rows.extend(
                labels
                    .iter()
                    .filter(|(id, _)| id == source)
                    .map(|(_, l)| (new.to_string(), l.clone())),
            );
        }
    }
    ctx.writer
        .write(move |c| write::add_labels(c, &rows))
        .await?;
    Ok(())
}

/// Deletes the source instances (`KeepSource` false); their empty parents go with them.
async fn delete_sources(ctx: &JobContext, done: &[Done]) -> Result<(), JobError> {
    for d in done.iter().filter(|d| d.new.instance != d.source.instance) {
        let id = d.source.instance.clone();
        let deleted = ctx
            .writer
            .write(move |c| write::delete_resource(c, &id, Level::Instance))
            .await;
        match deleted {
            Ok(outcome) => crate::ingest::remove_files(&ctx.storage, outcome.obsolete_files).await,
            Err(crate::index::IndexError::UnknownResource) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
