//! Storage commitment from REST: `/modalities/{id}/storage-commitment` (N-ACTION SCU),
//! `/storage-commitment/{id}` (the report, once the remote's N-EVENT-REPORT came) and
//! `/storage-commitment/{id}/remove`.

use actix_web::web;
use pacsnode_actors::dimse::commitment::{self, Reference};
use pacsnode_actors::dimse::RemoteAe;
use pacsnode_actors::index::read;
use pacsnode_actors::model::{Level, MetadataType};
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult, OrthancCode};
use super::modalities::{modality, network_error, remote_of};
use super::respond::Answer;
use super::tools::parse_json;
use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/modalities/{name}/storage-commitment", web::post().to(ask))
        .route("/storage-commitment/{id}", web::get().to(report))
        .route("/storage-commitment/{id}/remove", web::post().to(remove));
}

/// The (SOP class, SOP instance) of the instances of resources of any level.
pub(super) async fn references_of(state: &AppState, ids: Vec<String>) -> ApiResult<Vec<Reference>> {
    let found = state
        .reader
        .with(move |c| {
            let mut out = Vec::new();
            for id in &ids {
                let Some(row) = read::resource_by_public_id(c, id)? else {
                    return Ok(Err(id.clone()));
                };
                let rows = match row.level {
                    Level::Instance => vec![row],
                    _ => read::descendants(c, row.id, Level::Instance)?,
                };
                for r in rows {
                    let class = read::metadata(c, r.id)?
                        .into_iter()
                        .find(|(k, _, _)| *k == MetadataType::SopClassUid as i64)
                        .map(|(_, v, _)| v)
                        .unwrap_or_default();
                    out.push((class, read::identifiers(c, r.id)?[3].clone()));
                }
            }
            Ok(Ok(out))
        })
        .await?;
    found.map_err(|id| ApiError::inexistent_item(format!("Unknown resource: {id}")))
}

/// `[class, instance]` or `{"SOPClassUID", "SOPInstanceUID"}`.
fn dicom_instance(v: &Value) -> ApiResult<Reference> {
    let pair = match v {
        Value::Array(a) if a.len() == 2 => (a[0].as_str(), a[1].as_str()),
        Value::Object(o) => (
            o.get("SOPClassUID").and_then(Value::as_str),
            o.get("SOPInstanceUID").and_then(Value::as_str),
        ),
        _ => (None, None),
    };
    match pair {
        (Some(c), Some(i)) => Ok((c.to_string(), i.to_string())),
        _ => Err(ApiError::bad_request("Bad item in DicomInstances")),
    }
}

/// Asks `remote` to commit `refs`; the transaction UID (its report pending until the answer).
pub(super) async fn request(
    state: &AppState,
    remote: RemoteAe,
    local: String,
    refs: Vec<Reference>,
) -> ApiResult<String> {
    let transaction = pacsnode_actors::model::dicom::modify::new_uid();
    state.commitments.pending(&transaction, &remote.aet);
    let tx = transaction.clone();
    web::block(move || commitment::request(&local, &remote, &tx, &refs))
        .await?
        .map_err(network_error)?;
    Ok(transaction)
}

async fn ask(
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let body = parse_json(&body)?;
    let (resources, instances) = (body.get("Resources"), body.get("DicomInstances"));
    if !body.is_object() || (resources.is_none() && instances.is_none()) {
        return Err(ApiError::bad_request(
            "Must provide a JSON object with a field Resources or DicomInstances",
        ));
    }
    let mut refs = Vec::new();
    if let Some(r) = resources {
        let ids = r
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| ApiError::bad_request("Resources must be a list of ids"))?;
        refs.extend(references_of(&state, ids).await?);
    }
    if let Some(list) = instances {
        let list = list
            .as_array()
            .ok_or_else(|| ApiError::bad_request("DicomInstances must be a list"))?;
        for v in list {
            refs.push(dicom_instance(v)?);
        }
    }
    let config = modality(&state, &name).await?;
    let (remote, local) = remote_of(&state, &config, &body)?;
    let id = request(&state, remote, local, refs).await?;
    Ok(Answer::Json(
        json!({ "ID": id, "Path": format!("/storage-commitment/{id}") }),
    ))
}

fn refs_json(refs: &[Reference]) -> Value {
    let items = refs
        .iter()
        .map(|(c, i)| json!({ "SOPClassUID": c, "SOPInstanceUID": i }));
    Value::Array(items.collect())
}

async fn report(state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<Answer> {
    let r = state
        .commitments
        .get(&id)
        .ok_or_else(ApiError::unknown_resource)?;
    let Some(result) = r.result else {
        return Ok(Answer::Json(
            json!({ "RemoteAET": r.remote_aet, "Status": "Pending" }),
        ));
    };
    let failures: Vec<Value> = result
        .failures
        .iter()
        .map(|((c, i), why)| json!({ "SOPClassUID": c, "SOPInstanceUID": i, "FailureReason": why }))
        .collect();
    let status = if failures.is_empty() {
        "Success"
    } else {
        "Failure"
    };
    Ok(Answer::Json(json!({
        "RemoteAET": r.remote_aet,
        "Status": status,
        "Success": refs_json(&result.success),
        "Failures": failures,
    })))
}

/// Deletes the local copies of the instances a remote committed.
async fn remove(state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<Answer> {
    let r = state
        .commitments
        .get(&id)
        .ok_or_else(ApiError::unknown_resource)?;
    let result = match r.result {
        Some(result) if result.failures.is_empty() => result,
        _ => {
            return Err(ApiError::new(
                OrthancCode::BadSequenceOfCalls,
                "Cannot remove the instances of a storage commitment that did not succeed",
            ))
        }
    };
    for (_, sop) in result.success {
        let lookup = sop.clone();
        let found = state
            .reader
            .with(move |c| {
                let mut q = pacsnode_actors::find::FindQuery::new(Level::Instance);
                q.constraints.push(pacsnode_actors::find::constraint(
                    Level::Instance,
                    (0x0008, 0x0018),
                    &lookup,
                    true,
                ));
                pacsnode_actors::find::execute(c, &q)
                    .map_err(|e| pacsnode_actors::index::IndexError::BadRequest(e.to_string()))
            })
            .await?;
        for (_, public_id) in found {
            super::resources::delete_resource(&state, Level::Instance, public_id).await?;
        }
    }
    Ok(Answer::Json(json!({})))
}
