//! Retrieve from a modality by UIDs: `/modalities/{id}/move` (C-MOVE SCU, as a
//! `DicomMoveScu` job) and `/modalities/{id}/get` (C-GET SCU; what arrives is stored).

use std::collections::BTreeMap;

use actix_web::web;
use pacsnode_actors::dicom_scp::store_received;
use pacsnode_actors::dimse::{retrieve, Model, StoreContext};
use pacsnode_actors::jobs::move_scu::MoveScuRequest;
use pacsnode_actors::jobs::JobRequest;
use pacsnode_actors::queries::{self, QUERY_RETRIEVE_LEVEL};
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::jobs::transfer;
use super::modalities::{body_json, modality, network_error, remote_of};
use super::queries::{charset_term, key, parse_level, query_format, tag_map};
use super::respond::Answer;
use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/modalities/{name}/move", web::post().to(move_resources))
        .route("/modalities/{name}/get", web::post().to(get_resources));
}

/// The `Level` and `Resources` of a move or get body as query items (the level in
/// (0008,0052)).
fn move_items(body: &Value) -> ApiResult<Vec<BTreeMap<String, String>>> {
    let (Some(resources), Some(level)) = (body["Resources"].as_array(), body["Level"].as_str())
    else {
        return Err(ApiError::bad_request(
            "Must provide a JSON body containing fields Resources and Level",
        ));
    };
    let level = parse_level(level)?;
    let mut query = Vec::with_capacity(resources.len());
    for r in resources {
        let mut item: BTreeMap<String, String> = tag_map(Some(r), "Resources")?
            .into_iter()
            .map(|(t, v)| (key(t), v))
            .collect();
        item.insert(
            key(QUERY_RETRIEVE_LEVEL),
            queries::level_term(level).to_string(),
        );
        query.push(item);
    }
    Ok(query)
}

/// `/modalities/{id}/move`: a C-MOVE per resource (a map of tags), as a job.
async fn move_resources(
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let body = body_json(&body)?;
    let query = move_items(&body)?;
    let target = match body.get("TargetAet") {
        None => state.settings.dicom_aet.clone(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::bad_request("TargetAet must be a string")),
    };
    let config = modality(&state, &name).await?;
    let (remote, local) = remote_of(&state, &config, &body)?;
    let job = MoveScuRequest {
        remote_aet: remote.aet,
        host: remote.host,
        port: remote.port,
        timeout: remote.timeout.as_secs(),
        local_aet: local,
        target_aet: target,
        charset_term: charset_term(&state).to_string(),
        query,
        permissive: body["Permissive"].as_bool().unwrap_or(false),
        query_format: query_format(&body),
    };
    transfer(&state, JobRequest::DicomMoveScu(Box::new(job)), &body).await
}

/// `/modalities/{id}/get`: a C-GET per resource; what arrives is stored as if received by
/// C-STORE. Synchronous: answers what each C-GET received.
async fn get_resources(
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let body = body_json(&body)?;
    let query = move_items(&body)?;
    let config = modality(&state, &name).await?;
    let (remote, local) = remote_of(&state, &config, &body)?;
    let (ingest, charset) = (state.ingest.clone(), charset_term(&state).to_string());
    let (r, l, items) = (remote.clone(), local.clone(), query.clone());
    let details = web::block(move || {
        let mut details = Vec::new();
        for item in &items {
            let id = pacsnode_actors::jobs::move_scu::identifier(item, &charset)
                .map_err(|e| e.to_string())?;
            let mut received = Vec::new();
            let from = StoreContext {
                calling_aet: r.aet.clone(),
                called_aet: l.clone(),
                remote_ip: r.host.clone(),
            };
            let mut store = |file: Vec<u8>| match store_received(&ingest, file, &from) {
                Ok(stored) => {
                    received.push(stored.ids.instance);
                    0
                }
                Err(status) => status,
            };
            let outcome = retrieve::get(&l, &r, Model::StudyRoot, &id, &mut store)
                .map_err(|e| format!("C-GET SCU to AET \"{}\": {e}", r.aet))?;
            if outcome.status != 0 {
                return Err(format!(
                    "C-GET SCU to AET \"{}\" has failed with DIMSE status 0x{:04X}",
                    r.aet, outcome.status
                ));
            }
            details.push(json!({
                "DimseErrorStatus": outcome.status,
                "Query": item,
                "ReceivedInstancesIds": received,
            }));
        }
        Ok(details)
    })
    .await?
    .map_err(network_error)?;
    Ok(Answer::Json(json!({
        "Description": "REST API",
        "Details": details,
        "LocalAet": local,
        "Query": query,
        "RemoteAet": remote.aet,
    })))
}
