//! The `DicomMoveScu` job: asks a remote modality to send resources to an AE (C-MOVE SCU),
//! for `/modalities/{id}/move` and the retrieve routes of `/queries`. One C-MOVE per query,
//! whose identifier holds the unique keys of its level only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{JobContext, JobDone, JobError};
use crate::dimse::{self, retrieve, Model, RemoteAe};
use crate::model::dicom::dictionary::parse_tag;
use crate::queries::{self, QUERY_RETRIEVE_LEVEL, SPECIFIC_CHARACTER_SET};

/// What a C-MOVE SCU job does.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MoveScuRequest {
    pub remote_aet: String,
    pub host: String,
    pub port: u16,
    /// Seconds (zero: none).
    pub timeout: u64,
    pub local_aet: String,
    pub target_aet: String,
    /// The `SpecificCharacterSet` term of `DefaultEncoding`.
    pub charset_term: String,
    /// One C-MOVE per item: `{"gggg,eeee": value}`, with the level in (0008,0052).
    pub query: Vec<BTreeMap<String, String>>,
    pub permissive: bool,
    /// How the job's content shows `Query`: `Short` (default), `Full` or `Simplify`.
    pub query_format: String,
}

/// The items of `Query` in the job's content, in the format asked.
fn shown(req: &MoveScuRequest) -> serde_json::Value {
    let names = crate::model::dicom::PrivateDictionary::new();
    let items = req.query.iter().map(|item| {
        let map: serde_json::Map<String, serde_json::Value> = item
            .iter()
            .map(|(k, v)| {
                let name = || {
                    parse_tag(k)
                        .map(|t| names.name(t, None))
                        .unwrap_or_default()
                };
                match req.query_format.as_str() {
                    "Full" => (
                        k.clone(),
                        json!({"Name": name(), "Type": "String", "Value": v}),
                    ),
                    "Simplify" => (name(), json!(v)),
                    _ => (k.clone(), json!(v)),
                }
            })
            .collect();
        serde_json::Value::Object(map)
    });
    serde_json::Value::Array(items.collect())
}

/// The C-MOVE identifier of one query item: character set, level and unique keys.
pub fn identifier(
    item: &BTreeMap<String, String>,
    charset: &str,
) -> Result<dicom_object::InMemDicomObject, JobError> {
    let value = |tag: dicom_core::Tag| {
        item.iter()
            .find(|(k, _)| parse_tag(k) == Some(tag))
            .map(|(_, v)| v.clone())
    };
    let term = value(QUERY_RETRIEVE_LEVEL).unwrap_or_default();
    let level = queries::level_of(&term)
        .ok_or_else(|| JobError::Failed(format!("Bad query retrieve level: {term}")))?;
    let mut pairs = vec![
        (SPECIFIC_CHARACTER_SET, charset.to_string()),
        (QUERY_RETRIEVE_LEVEL, queries::level_term(level).to_string()),
    ];
    for key in queries::move_keys(level) {
        let v = value(*key)
            .ok_or_else(|| JobError::Failed(format!("Missing tag {:04x},{:04x}", key.0, key.1)))?;
        pairs.push((*key, v));
    }
    Ok(queries::dataset(&pairs))
}

pub async fn run(req: MoveScuRequest, ctx: JobContext) -> Result<JobDone, JobError> {
    let (job, request) = (ctx.clone(), req.clone());
    tokio::task::spawn_blocking(move || {
        let remote = RemoteAe {
            aet: request.remote_aet.clone(),
            host: request.host.clone(),
            port: request.port,
            timeout: std::time::Duration::from_secs(request.timeout),
        };
        let total = request.query.len() as u64;
        for (i, item) in request.query.iter().enumerate() {
            job.check_cancel()?;
            let id = identifier(item, &request.charset_term)?;
            let result = retrieve::move_to(
                &request.local_aet,
                &remote,
                Model::StudyRoot,
                &id,
                &request.target_aet,
            );
            let failure = match result {
                Ok(o) if o.status == dimse::command::STATUS_SUCCESS => None,
                Ok(o) => Some(format!(
                    "C-MOVE SCU to AET \"{}\" has failed with DIMSE status 0x{:04X}",
                    request.remote_aet, o.status
                )),
                Err(e) => Some(format!("C-MOVE SCU to AET \"{}\": {e}", request.remote_aet)),
            };
            if let Some(f) = failure {
                if !request.permissive {
                    return Err(JobError::Failed(f));
                }
                tracing::warn!("{f}");
            }
            job.set_progress(i as u64 + 1, total);
        }
        Ok::<_, JobError>(())
    })
    .await
    .map_err(|e| JobError::Failed(e.to_string()))??;
    Ok(JobDone {
        content: json!({
            "Description": "REST API",
            "LocalAet": req.local_aet,
            "RemoteAet": req.remote_aet,
            "Query": shown(&req),
        }),
        output: false,
    })
}
