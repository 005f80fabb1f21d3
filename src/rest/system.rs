//! `/system`, `/statistics`, `/tools` and the server-level tools: time, UIDs, conformance,
//! log levels, reset and shutdown.

use actix_web::{web, HttpRequest};
use pacsnode_actors::model::dicom::modify::new_uid;
use pacsnode_actors::model::{main_tags, Level};
use serde_json::{json, Map};

use super::error::{ApiError, ApiResult, OrthancCode};
use super::middleware::not_allowed;
use super::respond::{arg, Answer};
use super::AppState;
use crate::logging::{parse_level, CATEGORIES};
use crate::Control;

/// Orthanc's REST API version that pacsnode implements.
pub const API_VERSION: u32 = 27;
/// The children of `/tools`.
pub const TOOLS: &[&str] = &[
    "accepted-transfer-syntaxes",
    "bulk-content",
    "bulk-delete",
    "default-encoding",
    "dicom-conformance",
    "execute-script",
    "find",
    "generate-uid",
    "invalidate-tags",
    "log-level",
    "log-level-dicom",
    "log-level-generic",
    "log-level-http",
    "log-level-jobs",
    "log-level-lua",
    "log-level-plugins",
    "log-level-sqlite",
    "lookup",
    "metrics",
    "metrics-prometheus",
    "now",
    "now-local",
    "reset",
    "shutdown",
    "unknown-sop-class-accepted",
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/system")
            .route(web::get().to(system))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/statistics")
            .route(web::get().to(statistics))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/tools")
            .route(web::get().to(tools))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/tools/now")
            .route(web::get().to(now))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/tools/now-local")
            .route(web::get().to(now_local))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/tools/generate-uid")
            .route(web::get().to(generate_uid))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/tools/dicom-conformance")
            .route(web::get().to(conformance))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/tools/log-level")
            .route(web::get().to(get_log_level))
            .route(web::put().to(put_log_level))
            .default_service(not_allowed("GET,PUT")),
    )
    .service(
        web::resource("/tools/log-level-{category:generic|plugins|http|dicom|sqlite|jobs|lua}")
            .route(web::get().to(get_log_level))
            .route(web::put().to(put_log_level))
            .default_service(not_allowed("GET,PUT")),
    )
    .service(
        web::resource("/tools/reset")
            .route(web::post().to(reset))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/tools/shutdown")
            .route(web::post().to(shutdown))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/tools/metrics")
            .route(web::get().to(|| async { Answer::Text("1".into()) }))
            .route(web::put().to(|| async { Answer::Empty }))
            .default_service(not_allowed("GET,PUT")),
    )
    .service(
        web::resource("/tools/metrics-prometheus")
            .route(web::get().to(metrics))
            .default_service(not_allowed("GET")),
    )
    .service(web::resource("/plugins").route(web::get().to(|| async { Answer::Json(json!([])) })));
}

async fn system(state: web::Data<AppState>) -> Answer {
    let s = &state.settings;
    let mut main = Map::new();
    for level in Level::ALL {
        let mut keys: Vec<String> = main_tags::for_level(level)
            .iter()
            .map(|m| main_tags::tag_key(m.tag))
            .collect();
        keys.sort();
        main.insert(level.name().into(), json!(keys.join(";")));
    }
    Answer::Json(json!({
        "ApiVersion": API_VERSION,
        "Capabilities": { "HasExtendedChanges": true, "HasExtendedFind": true, "HasLabels": true },
        "CheckRevisions": s.check_revisions,
        "DatabaseBackendPlugin": null,
        "DatabaseServerIdentifier": s.database_server_identifier,
        "DatabaseVersion": 6,
        "DicomAet": s.dicom_aet,
        "DicomPort": s.dicom_port,
        "HasLabels": true,
        "HttpPort": s.http_port,
        "IngestTranscoding": s.ingest_transcoding,
        "IsHttpServerSecure": !s.remote_access_allowed || s.authentication(),
        "MainDicomTags": main,
        "MaximumPatientCount": s.maximum_patient_count,
        "MaximumStorageMode": s.maximum_storage_mode,
        "MaximumStorageSize": s.maximum_storage_size,
        "Name": s.name,
        "OverwriteInstances": s.overwrite_instances,
        "PluginsEnabled": false,
        "ReadOnly": false,
        "StorageAreaPlugin": null,
        "StorageCompression": s.storage_compression,
        "UserMetadata": s.user_metadata,
        "Version": "mainline",
        "PacsnodeVersion": env!("CARGO_PKG_VERSION"),
    }))
}

async fn statistics(state: web::Data<AppState>) -> ApiResult<Answer> {
    let s = state.reader.statistics().await?;
    let mb = |v: u64| v / (1024 * 1024);
    Ok(Answer::Json(json!({
        "CountPatients": s.counts[0],
        "CountStudies": s.counts[1],
        "CountSeries": s.counts[2],
        "CountInstances": s.counts[3],
        "TotalDiskSize": s.disk_size.to_string(),
        "TotalUncompressedSize": s.uncompressed_size.to_string(),
        "TotalDiskSizeMB": mb(s.disk_size),
        "TotalUncompressedSizeMB": mb(s.uncompressed_size),
    })))
}

async fn tools() -> Answer {
    Answer::Json(json!(TOOLS))
}

async fn now() -> Answer {
    Answer::Text(chrono::Utc::now().format("%Y%m%dT%H%M%S").to_string())
}

async fn now_local() -> Answer {
    Answer::Text(chrono::Local::now().format("%Y%m%dT%H%M%S").to_string())
}

async fn generate_uid(req: HttpRequest) -> ApiResult<Answer> {
    let level = arg(&req, "level").unwrap_or_default();
    if Level::parse(&level).is_none() {
        return Err(ApiError::new(
            OrthancCode::ParameterOutOfRange,
            format!("Unknown resource level: {level}"),
        ));
    }
    Ok(Answer::Text(new_uid()))
}

async fn conformance() -> Answer {
    Answer::Text(include_str!("conformance.txt").to_string())
}

fn category(req: &HttpRequest) -> Option<String> {
    req.match_info().get("category").map(str::to_string)
}

async fn get_log_level(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    Answer::Text(
        state
            .logs
            .get(category(&req).as_deref())
            .unwrap_or("default")
            .to_string(),
    )
}

async fn put_log_level(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let level = parse_level(&text).ok_or_else(|| {
        ApiError::new(
            OrthancCode::ParameterOutOfRange,
            format!("The log level must be one of \"default\", \"verbose\" or \"trace\": {text}"),
        )
    })?;
    let cat = category(&req);
    if cat
        .as_deref()
        .is_some_and(|c| !CATEGORIES.iter().any(|(n, _)| *n == c))
    {
        return Err(ApiError::unknown_resource());
    }
    state.logs.set(cat.as_deref(), level);
    Ok(Answer::Text(level.to_string()))
}

async fn reset(state: web::Data<AppState>) -> Answer {
    let _ = state.control.send(Control::Restart).await;
    Answer::Json(json!({}))
}

async fn shutdown(state: web::Data<AppState>) -> Answer {
    let _ = state.control.send(Control::Stop).await;
    Answer::Json(json!({}))
}

async fn metrics(state: web::Data<AppState>) -> ApiResult<Answer> {
    let s = state.reader.statistics().await?;
    let mut out = String::new();
    let names = [
        "orthanc_count_patients",
        "orthanc_count_studies",
        "orthanc_count_series",
        "orthanc_count_instances",
    ];
    for (name, count) in names.iter().zip(s.counts) {
        out.push_str(&format!("# TYPE {name} gauge\n{name} {count}\n"));
    }
    out.push_str(&format!(
        "# TYPE orthanc_disk_size_mb gauge\northanc_disk_size_mb {}\n",
        s.disk_size as f64 / 1048576.0
    ));
    Ok(Answer::Bytes(out.into_bytes(), "text/plain; version=0.0.4"))
}
