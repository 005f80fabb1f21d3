//! `/modalities` and `/peers` as configuration lists (their DICOM and HTTP actions come
//! later). Both live in the index database, so several nodes can share them.

use actix_web::{web, HttpRequest};
use pacsnode_actors::index::RemoteTable;
use serde_json::{json, Map, Value};

use super::error::{ApiError, ApiResult, OrthancCode};
use super::middleware::not_allowed;
use super::respond::{flag, Answer};
use super::tools::parse_json;
use super::AppState;

const MODALITY_OPERATIONS: &[&str] = &[
    "configuration",
    "echo",
    "find",
    "find-instance",
    "find-patient",
    "find-series",
    "find-study",
    "find-worklist",
    "get",
    "move",
    "query",
    "storage-commitment",
    "store",
    "store-straight",
];
const PEER_OPERATIONS: &[&str] = &["configuration", "store", "store-straight", "system"];

pub fn configure(cfg: &mut web::ServiceConfig) {
    for (prefix, table) in [
        ("/modalities", RemoteTable::Modalities),
        ("/peers", RemoteTable::Peers),
    ] {
        let t = web::Data::new(table);
        cfg.service(
            web::resource(prefix)
                .app_data(t.clone())
                .route(web::get().to(list))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource(format!("{prefix}/{{name}}"))
                .app_data(t.clone())
                .route(web::get().to(operations))
                .route(web::put().to(put))
                .route(web::delete().to(delete))
                .default_service(not_allowed("DELETE,GET,PUT")),
        )
        .service(
            web::resource(format!("{prefix}/{{name}}/configuration"))
                .app_data(t)
                .route(web::get().to(configuration))
                .default_service(not_allowed("GET")),
        );
    }
}

/// Normalizes a modality as Orthanc shows it (`[AET, Host, Port(, Manufacturer)]` or object).
pub fn normalize_modality(v: &Value) -> ApiResult<Value> {
    let bad = || ApiError::bad_request("Bad format of a DICOM modality");
    let (aet, host, port, mut extra) = match v {
        Value::Array(a) if a.len() >= 3 => {
            let mut extra = Map::new();
            if let Some(m) = a.get(3) {
                extra.insert("Manufacturer".into(), m.clone());
            }
            (a[0].clone(), a[1].clone(), a[2].clone(), extra)
        }
        Value::Object(o) => (
            o.get("AET").cloned().ok_or_else(bad)?,
            o.get("Host").cloned().ok_or_else(bad)?,
            o.get("Port").cloned().ok_or_else(bad)?,
            o.clone(),
        ),
        _ => return Err(bad()),
    };
    let port = match &port {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .filter(|p| *p > 0 && *p < 65536)
    .ok_or_else(bad)?;
    let mut out = Map::new();
    out.insert("AET".into(), aet);
    out.insert("Host".into(), host);
    out.insert("Port".into(), json!(port));
    let defaults = [
        ("Manufacturer", json!("Generic")),
        ("LocalAet", json!("")),
        ("Timeout", json!(0)),
        ("UseDicomTls", json!(false)),
    ];
    for (k, d) in defaults {
        out.insert(k.into(), extra.remove(k).unwrap_or(d));
    }
    // Orthanc's manufacturers; the obsolete ones stand for the generic behaviour they had.
    let manufacturer = match out["Manufacturer"].as_str() {
        Some(
            m @ ("Generic"
            | "GenericNoWildcardInDates"
            | "GenericNoUniversalWildcard"
            | "Vitrea"
            | "GE"),
        ) => m.to_string(),
        Some("AgfaImpax" | "SyngoVia") => "GenericNoWildcardInDates".into(),
        Some("EFilm2" | "MedInria" | "ClearCanvas" | "Dcm4Chee") => "Generic".into(),
        other => {
            return Err(ApiError::new(
                OrthancCode::ParameterOutOfRange,
                format!(
                    "Unknown modality manufacturer: {}",
                    other.map_or_else(|| out["Manufacturer"].to_string(), |m| format!("\"{m}\""))
                ),
            ))
        }
    };
    out.insert("Manufacturer".into(), json!(manufacturer));
    for k in [
        "AllowEcho",
        "AllowEventReport",
        "AllowFind",
        "AllowFindWorklist",
        "AllowGet",
        "AllowMove",
        "AllowNAction",
        "AllowStorageCommitment",
        "AllowStore",
        "AllowTranscoding",
    ] {
        out.insert(k.into(), extra.remove(k).unwrap_or(json!(true)));
    }
    Ok(Value::Object(out))
}

/// Normalizes a peer (`[Url, Username, Password]` or object); the stored form keeps secrets.
pub fn normalize_peer(v: &Value) -> ApiResult<Value> {
    let bad = || ApiError::bad_request("Bad format of an Orthanc peer");
    let mut o = match v {
        // `[url]` or `[url, username, password]`, as Orthanc accepts.
        Value::Array(a) if a.len() == 1 || a.len() == 3 => {
            let mut o = Map::new();
            o.insert("Url".into(), a[0].clone());
            if a.len() >= 3 {
                o.insert("Username".into(), a[1].clone());
                o.insert("Password".into(), a[2].clone());
            }
            o
        }
        Value::Object(o) => o.clone(),
        _ => return Err(bad()),
    };
    let url = o.get("Url").and_then(Value::as_str).ok_or_else(bad)?;
    let url = if url.ends_with('/') {
        url.to_string()
    } else {
        format!("{url}/")
    };
    o.insert("Url".into(), json!(url));
    Ok(Value::Object(o))
}

/// What `/peers?expand` shows of a peer: no password, only the names of the HTTP headers.
pub fn public_peer(v: &Value) -> Value {
    let headers: Vec<String> = v
        .get("HttpHeaders")
        .and_then(Value::as_object)
        .map(|h| h.keys().cloned().collect())
        .unwrap_or_default();
    let mut out = json!({
        "HttpHeaders": headers,
        "Password": null,
        "Pkcs11": v.get("Pkcs11").cloned().unwrap_or(json!(false)),
        "Timeout": v.get("Timeout").cloned().unwrap_or(json!(0)),
        "Url": v.get("Url").cloned().unwrap_or(Value::Null),
        "Username": v.get("Username").cloned().unwrap_or(Value::Null),
    });
    if let Some(r) = v.get("RemoteSelf") {
        out["RemoteSelf"] = r.clone();
    }
    out
}

fn public(table: RemoteTable, v: &Value) -> Value {
    match table {
        RemoteTable::Modalities => v.clone(),
        RemoteTable::Peers => public_peer(v),
    }
}

pub(super) async fn find(state: &AppState, table: RemoteTable, name: &str) -> ApiResult<Value> {
    let all = state.reader.remotes(table).await?;
    all.into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .ok_or_else(|| {
            let what = match table {
                RemoteTable::Modalities => "DICOM modality",
                RemoteTable::Peers => "Orthanc peer",
            };
            ApiError::inexistent_item(format!("Unknown {what} with symbolic name: {name}"))
        })
}

async fn list(
    state: web::Data<AppState>,
    table: web::Data<RemoteTable>,
    req: HttpRequest,
) -> ApiResult<Answer> {
    let all = state.reader.remotes(**table).await?;
    if flag(&req, "expand")?.unwrap_or(false) {
        let m: Map<String, Value> = all
            .into_iter()
            .map(|(n, v)| (n, public(**table, &v)))
            .collect();
        Ok(Answer::Json(Value::Object(m)))
    } else {
        Ok(Answer::Json(json!(all
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>())))
    }
}

async fn operations(
    state: web::Data<AppState>,
    table: web::Data<RemoteTable>,
    name: web::Path<String>,
) -> ApiResult<Answer> {
    find(&state, **table, &name).await?;
    Ok(Answer::Json(json!(match **table {
        RemoteTable::Modalities => MODALITY_OPERATIONS,
        RemoteTable::Peers => PEER_OPERATIONS,
    })))
}

async fn configuration(
    state: web::Data<AppState>,
    table: web::Data<RemoteTable>,
    name: web::Path<String>,
) -> ApiResult<Answer> {
    Ok(Answer::Json(public(
        **table,
        &find(&state, **table, &name).await?,
    )))
}

async fn put(
    state: web::Data<AppState>,
    table: web::Data<RemoteTable>,
    name: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let v = parse_json(&body)?;
    let config = match **table {
        RemoteTable::Modalities => normalize_modality(&v)?,
        RemoteTable::Peers => normalize_peer(&v)?,
    };
    let (table, name) = (**table, name.into_inner());
    state
        .writer
        .write(move |c| pacsnode_actors::index::write::put_remote(c, table, &name, &config))
        .await?;
    Ok(Answer::Empty)
}

async fn delete(
    state: web::Data<AppState>,
    table: web::Data<RemoteTable>,
    name: web::Path<String>,
) -> ApiResult<Answer> {
    find(&state, **table, &name).await?;
    let (table, name) = (**table, name.into_inner());
    state
        .writer
        .write(move |c| pacsnode_actors::index::write::delete_remote(c, table, &name))
        .await?;
    Ok(Answer::Empty)
}
