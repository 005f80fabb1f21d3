//! `/peers/{id}/store`, `/store-straight` and `/system`: talking to other Orthanc servers
//! over HTTP (the peer actor's work runs as a job, or waited for when synchronous).

use actix_web::{web, HttpRequest, HttpResponse, Responder};
use pacsnode_actors::index::RemoteTable;
use pacsnode_actors::jobs::JobRequest;
use pacsnode_actors::peers::{HttpClientOptions, Peer, PeerError, PeerStoreRequest};
use serde_json::Value;

use super::error::{ApiError, ApiResult, OrthancCode};
use super::jobs::{check_resources, transcode_of, transfer};
use super::middleware::not_allowed;
use super::modalities::resources_of;
use super::remotes::find;
use super::respond::Answer;
use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/peers/{name}/store")
            .route(web::post().to(store))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/peers/{name}/store-straight")
            .route(web::post().to(store_straight))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/peers/{name}/system")
            .route(web::get().to(system))
            .default_service(not_allowed("GET")),
    );
}

async fn peer(state: &AppState, req: &HttpRequest) -> ApiResult<(String, Peer)> {
    let name = req.match_info().get("name").unwrap_or_default().to_string();
    let config = find(state, RemoteTable::Peers, &name).await?;
    let raw = &state.settings.raw;
    let options = HttpClientOptions {
        timeout: raw.get("HttpTimeout").and_then(Value::as_u64).unwrap_or(60),
        verify_peers: raw
            .get("HttpsVerifyPeers")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        ca_certificates: raw
            .get("HttpsCACertificates")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    };
    Ok((name, Peer::from_config(&config, &options)))
}

fn peer_error(e: PeerError) -> ApiError {
    ApiError::new(OrthancCode::NetworkProtocol, e.to_string())
}

async fn store(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (name, peer) = peer(&state, &req).await?;
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::String(text));
    let resources = resources_of(&body)?;
    check_resources(&state, &resources).await?;
    let flag = |k: &str| body.get(k).and_then(Value::as_bool).unwrap_or(false);
    let transcode = transcode_of(&body)?;
    let request = PeerStoreRequest {
        name,
        peer,
        resources,
        compress: flag("Compress"),
        transcode,
        permissive: flag("Permissive"),
        log_exports: state.settings.log_exported_resources(),
    };
    let job = JobRequest::OrthancPeerStore(Box::new(request));
    Ok(transfer(&state, job, &body).await?.respond_to(&req))
}

async fn store_straight(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let (_, peer) = peer(&state, &req).await?;
    let (answer, _) = web::block(move || peer.post_instance(&body, false))
        .await?
        .map_err(peer_error)?;
    Ok(Answer::Json(answer))
}

async fn system(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let (_, peer) = peer(&state, &req).await?;
    let answer = web::block(move || peer.get_json("system"))
        .await?
        .map_err(peer_error)?;
    Ok(Answer::Json(answer))
}
