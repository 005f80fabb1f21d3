//! The DICOM SCU driven from REST: `/modalities/{id}/echo`, `/modalities/{id}/store`,
//! `/modalities/{id}/store-straight`, `/tools/dicom-echo`. Associations run on blocking
//! threads, never on the async ones.

use std::time::Duration;

use actix_web::web;
use pacsnode_actors::dimse::{self, RemoteAe};
use pacsnode_actors::index::write::{log_exports, Export};
use pacsnode_actors::index::{read, IndexError, RemoteTable};
use pacsnode_actors::model::Level;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult, OrthancCode};
use super::middleware::not_allowed;
use super::respond::Answer;
use super::tags::read_file;
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

fn network_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(OrthancCode::NetworkProtocol, e.to_string())
}

/// The remote AE of a modality's configuration, with the overrides of a request body.
fn remote_of(state: &AppState, config: &Value, body: &Value) -> ApiResult<(RemoteAe, String)> {
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

async fn modality(state: &AppState, name: &str) -> ApiResult<Value> {
    let all = state.reader.remotes(RemoteTable::Modalities).await?;
    all.into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .ok_or_else(|| {
            ApiError::inexistent_item(format!("Unknown DICOM modality with symbolic name: {name}"))
        })
}

fn body_json(body: &[u8]) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    parse_json(body)
}

async fn run_echo(remote: RemoteAe, local: String) -> ApiResult<Answer> {
    web::block(move || dimse::echo(&local, &remote))
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
    let (remote, local) = remote_of(&state, &config, &body_json(&body)?)?;
    run_echo(remote, local).await
}

async fn dicom_echo(state: web::Data<AppState>, body: web::Bytes) -> ApiResult<Answer> {
    let body = body_json(&body)?;
    let (remote, local) = remote_of(&state, &json!({}), &body)?;
    run_echo(remote, local).await
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
    if body.get("Asynchronous").and_then(Value::as_bool) == Some(true)
        || body.get("Synchronous").and_then(Value::as_bool) == Some(false)
    {
        return Err(ApiError::new(
            OrthancCode::NotImplemented,
            "Jobs are not available yet: send synchronously",
        ));
    }
    let config = modality(&state, &name).await?;
    let (remote, local) = remote_of(&state, &config, &body)?;
    let parents = resources_of(&body)?;
    let ids = parents.clone();
    let instances = state
        .reader
        .with(move |c| {
            let mut out = Vec::new();
            for id in &ids {
                let row = read::resource_by_public_id(c, id)?.ok_or(IndexError::UnknownResource)?;
                let rows = if row.level == Level::Instance {
                    vec![row]
                } else {
                    read::descendants(c, row.id, Level::Instance)?
                };
                for r in rows {
                    out.push((read::identifiers(c, r.id)?, r));
                }
            }
            Ok(out)
        })
        .await?;
    let mut files = Vec::with_capacity(instances.len());
    for (_, row) in &instances {
        files.push(read_file(&state, row).await?);
    }
    let permissive = body
        .get("Permissive")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let originator = (
        body.get("MoveOriginatorAet")
            .and_then(Value::as_str)
            .map(str::to_string),
        body.get("MoveOriginatorID")
            .and_then(Value::as_u64)
            .unwrap_or(0) as u16,
    );
    let (remote_aet, local_aet, target) = (remote.aet.clone(), local.clone(), remote);
    let statuses = web::block(move || {
        let originator = originator.0.as_deref().map(|a| (a, originator.1));
        dimse::store(&local, &target, &files, originator)
    })
    .await?
    .map_err(network_error)?;
    let failed = statuses
        .iter()
        .filter(|s| **s != 0 && (**s & 0xf000) != 0xb000)
        .count();
    if failed > 0 && !permissive {
        return Err(network_error(format!(
            "{failed} instance(s) could not be sent to {}",
            name.as_str()
        )));
    }
    if state
        .settings
        .raw
        .get("LogExportedResources")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        let now = chrono::Utc::now().format("%Y%m%dT%H%M%S").to_string();
        let modality = name.to_string();
        let exports: Vec<Export> = instances
            .iter()
            .zip(&statuses)
            .filter(|(_, s)| **s == 0)
            .map(|((identifiers, row), _)| Export {
                level: Level::Instance,
                public_id: row.public_id.clone(),
                modality: modality.clone(),
                date: now.clone(),
                identifiers: identifiers.clone(),
            })
            .collect();
        state
            .writer
            .write(move |c| log_exports(c, &exports))
            .await?;
    }
    Ok(Answer::Json(json!({
        "Description": "REST API",
        "FailedInstancesCount": failed,
        "InstancesCount": instances.len(),
        "LocalAet": local_aet,
        "ParentResources": parents,
        "RemoteAet": remote_aet,
    })))
}

async fn store_straight(
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let config = modality(&state, &name).await?;
    let (remote, local) = remote_of(&state, &config, &json!({}))?;
    let file = body.to_vec();
    let statuses = web::block(move || dimse::store(&local, &remote, &[file], None))
        .await?
        .map_err(network_error)?;
    let status = statuses.first().copied().unwrap_or(0xffff);
    if status != 0 {
        return Err(network_error(format!(
            "C-STORE failed with status 0x{status:04x}"
        )));
    }
    Ok(Answer::Json(json!({})))
}
