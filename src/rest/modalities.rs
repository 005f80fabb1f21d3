//! The DICOM SCU driven from REST: `/modalities/{id}/echo`, `/modalities/{id}/store`,
//! `/modalities/{id}/store-straight`, `/tools/dicom-echo`. Associations run on blocking
//! threads, never on the async ones.

use std::time::Duration;

use actix_web::web;
use pacsnode_actors::dimse::{self, Model, RemoteAe};
use pacsnode_actors::index::RemoteTable;
use pacsnode_actors::jobs::modality_store::ModalityStoreRequest;
use pacsnode_actors::jobs::JobRequest;
use pacsnode_actors::model::Level;
use pacsnode_actors::queries::{self, FindOptions};
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult, OrthancCode};
use super::jobs::{check_resources, transfer};
use super::middleware::not_allowed;
use super::respond::Answer;
use super::tools::parse_json;
use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/modalities/{name}/echo")
            .route(web::post().to(echo))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/modalities/{name}/store")
            .route(web::post().to(store))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/modalities/{name}/store-straight")
            .route(web::post().to(store_straight))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/tools/dicom-echo")
            .route(web::post().to(dicom_echo))
            .default_service(not_allowed("POST")),
    );
}

pub(super) fn network_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(OrthancCode::NetworkProtocol, e.to_string())
}

/// The remote AE of a modality's configuration, with the overrides of a request body.
pub(super) fn remote_of(
    state: &AppState,
    config: &Value,
    body: &Value,
) -> ApiResult<(RemoteAe, String)> {
    let field = |k: &str| {
        body.get(k)
            .filter(|v| !v.is_null())
            .or_else(|| config.get(k))
    };
    let text = |k: &str| {
        field(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let port = field("Port")
        .and_then(|p| p.as_u64().or_else(|| p.as_str()?.parse().ok()))
        .unwrap_or(0);
    let timeout = field("Timeout")
        .and_then(Value::as_u64)
        .filter(|t| *t > 0)
        .unwrap_or(state.settings.dicom_scu_timeout);
    let aet = body
        .get("CalledAet")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| text("AET"));
    let remote = RemoteAe {
        aet,
        host: text("Host"),
        port: u16::try_from(port).map_err(|_| ApiError::bad_request("Bad port"))?,
        timeout: Duration::from_secs(timeout),
    };
    let local = Some(text("LocalAet"))
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| state.settings.dicom_aet.clone());
    Ok((remote, local))
}

pub(super) async fn modality(state: &AppState, name: &str) -> ApiResult<Value> {
    let all = state.reader.remotes(RemoteTable::Modalities).await?;
    all.into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .ok_or_else(|| {
            ApiError::inexistent_item(format!("Unknown DICOM modality with symbolic name: {name}"))
        })
}

pub(super) fn body_json(body: &[u8]) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    parse_json(body)
}

/// C-ECHO, then (`CheckFind`) a C-FIND of a study that does not exist: the remote must
/// answer it, with no match.
async fn run_echo(
    state: &AppState,
    body: &Value,
    remote: RemoteAe,
    local: String,
) -> ApiResult<Answer> {
    let check_find = body
        .get("CheckFind")
        .and_then(Value::as_bool)
        .unwrap_or_else(|| {
            state.settings.raw["DicomEchoChecksFind"]
                .as_bool()
                .unwrap_or(false)
        });
    let charset = super::queries::charset_term(state);
    web::block(move || {
        dimse::echo(&local, &remote)?;
        if check_find {
            let uid = pacsnode_actors::model::dicom::modify::new_uid();
            let query = [(dicom_core::Tag(0x0020, 0x000d), uid)];
            let options = FindOptions {
                normalize: false,
                manufacturer: "",
                charset_term: charset,
            };
            let id = queries::find_identifier(Level::Study, &query, &options);
            dimse::retrieve::find(&local, &remote, Model::StudyRoot, &id)?;
        }
        Ok::<_, dimse::DimseError>(())
    })
    .await?
    .map_err(network_error)?;
    Ok(Answer::Json(json!({})))
}

async fn echo(
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let config = modality(&state, &name).await?;
    let body = body_json(&body)?;
    let (remote, local) = remote_of(&state, &config, &body)?;
    run_echo(&state, &body, remote, local).await
}

/// `/tools/dicom-echo`: a modality's description, as an object or `[AET, Host, Port]`.
async fn dicom_echo(state: web::Data<AppState>, body: web::Bytes) -> ApiResult<Answer> {
    let body = match body_json(&body)? {
        Value::Array(a) if (3..=4).contains(&a.len()) => json!({
            "AET": a[0], "Host": a[1], "Port": a[2],
            "Manufacturer": a.get(3).cloned().unwrap_or(Value::Null),
        }),
        v @ Value::Object(_) => v,
        _ => return Err(ApiError::bad_request("Bad description of a DICOM modality")),
    };
    let (remote, local) = remote_of(&state, &json!({}), &body)?;
    run_echo(&state, &body, remote, local).await
}

/// The resources of a store request: a single id, a list of ids, or `{"Resources": [...]}`.
pub(super) fn resources_of(body: &Value) -> ApiResult<Vec<String>> {
    let list = match body {
        Value::String(s) => return Ok(vec![s.clone()]),
        Value::Array(a) => a,
        Value::Object(o) => o
            .get("Resources")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::bad_request("Missing \"Resources\""))?,
        _ => return Err(ApiError::bad_request("Bad list of resources")),
    };
    list.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| ApiError::bad_request("Resources must be ids"))
        })
        .collect()
}

async fn store(
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let body = parse_json(&body).unwrap_or(Value::String(text));
    let config = modality(&state, &name).await?;
    let (remote, local) = remote_of(&state, &config, &body)?;
    let resources = resources_of(&body)?;
    check_resources(&state, &resources).await?;
    let request = ModalityStoreRequest {
        name: name.to_string(),
        remote_aet: remote.aet,
        host: remote.host,
        port: remote.port,
        timeout: remote.timeout.as_secs(),
        local_aet: local,
        resources,
        move_originator: body
            .get("MoveOriginatorAet")
            .and_then(Value::as_str)
            .map(|aet| {
                let id = body.get("MoveOriginatorID").and_then(Value::as_u64);
                (aet.to_string(), id.unwrap_or(0) as u16)
            }),
        permissive: body
            .get("Permissive")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        log_exports: state.settings.log_exported_resources(),
        description: "REST API".into(),
    };
    let commit = body["StorageCommitment"].as_bool().unwrap_or(false);
    let r = RemoteAe {
        aet: request.remote_aet.clone(),
        host: request.host.clone(),
        port: request.port,
        timeout: Duration::from_secs(request.timeout),
    };
    let l = request.local_aet.clone();
    let sent = request.resources.clone();
    let answer = transfer(
        &state,
        JobRequest::DicomModalityStore(Box::new(request)),
        &body,
    )
    .await?;
    // `StorageCommitment`: once sent, ask the modality to commit what it received.
    match answer {
        Answer::Json(Value::Object(mut content)) if commit && content.contains_key("RemoteAet") => {
            let refs = super::commitment::references_of(&state, sent).await?;
            let uid = super::commitment::request(&state, r, l, refs).await?;
            content.insert("StorageCommitmentTransactionUID".into(), json!(uid));
            Ok(Answer::Json(Value::Object(content)))
        }
        other => Ok(other),
    }
}

async fn store_straight(
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let config = modality(&state, &name).await?;
    let (remote, local) = remote_of(&state, &config, &json!({}))?;
    let file = body.to_vec();
    let info = dimse::part10::parse_part10(&file)
        .map_err(|e| ApiError::new(OrthancCode::BadFileFormat, e))?;
    let statuses = web::block(move || dimse::store(&local, &remote, &[file], None))
        .await?
        .map_err(network_error)?;
    let status = statuses.first().copied().unwrap_or(0xffff);
    if status != 0 {
        return Err(network_error(format!(
            "C-STORE failed with status 0x{status:04x}"
        )));
    }
    Ok(Answer::Json(json!({
        "SOPClassUID": info.sop_class_uid,
        "SOPInstanceUID": info.sop_instance_uid,
    })))
}
