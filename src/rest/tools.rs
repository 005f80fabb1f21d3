//! `/tools/*` routes that touch the data: lookup, bulk delete, Lua, `invalidate-tags`, and the
//! settings that can change at run time (default encoding, accepted transfer syntaxes, unknown SOP classes).

use std::sync::atomic::Ordering;

use actix_web::web;
use pacsnode_actors::lua_actor::ExecuteScript;
use pacsnode_actors::model::dicom::Encoding;
use pacsnode_actors::model::transfer_syntax::expand_syntaxes;
use pacsnode_actors::model::Level;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult, OrthancCode};
use super::middleware::not_allowed;
use super::respond::Answer;
use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tools/default-encoding")
            .route(web::get().to(get_encoding))
            .route(web::put().to(put_encoding))
            .default_service(not_allowed("GET,PUT")),
    )
    .service(
        web::resource("/tools/accepted-transfer-syntaxes")
            .route(web::get().to(get_syntaxes))
            .route(web::put().to(put_syntaxes))
            .default_service(not_allowed("GET,PUT")),
    )
    .service(
        web::resource("/tools/unknown-sop-class-accepted")
            .route(web::get().to(get_unknown_sop))
            .route(web::put().to(put_unknown_sop))
            .default_service(not_allowed("GET,PUT")),
    )
    .service(
        web::resource("/tools/lookup")
            .route(web::post().to(lookup))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/tools/bulk-delete")
            .route(web::post().to(bulk_delete))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/tools/execute-script")
            .route(web::post().to(execute_script))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/tools/invalidate-tags")
            .route(web::post().to(invalidate_tags))
            .default_service(not_allowed("POST")),
    );
}

/// `POST /tools/invalidate-tags`: removes the DICOM-as-JSON summaries (content type 2), as
/// Orthanc does. pacsnode never writes them (tags are answered from the dataset kept in the
/// index, with the dictionary of the moment), so there are some only in an index that
/// received them from elsewhere.
async fn invalidate_tags(state: web::Data<AppState>) -> ApiResult<Answer> {
    let uuids = state
        .writer
        .write(|c| pacsnode_actors::index::attachments::delete_all_of_type(c, 2))
        .await?;
    pacsnode_actors::ingest::remove_files(&state.storage, uuids).await;
    Ok(Answer::Empty)
}

fn body_text(body: &web::Bytes) -> String {
    String::from_utf8_lossy(body).trim().to_string()
}

/// Parses a JSON request body, answering Orthanc's 400 when it is not JSON.
pub fn parse_json(body: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(body)
        .map_err(|_| ApiError::bad_request("The body must contain a JSON document"))
}

async fn get_encoding(state: web::Data<AppState>) -> Answer {
    let enc = *state
        .runtime
        .default_encoding
        .read()
        .unwrap_or_else(|e| e.into_inner());
    Answer::Text(enc.to_orthanc_name().to_string())
}

async fn put_encoding(state: web::Data<AppState>, body: web::Bytes) -> ApiResult<Answer> {
    let name = body_text(&body);
    let enc = Encoding::from_orthanc_name(&name).ok_or_else(|| {
        ApiError::new(
            OrthancCode::ParameterOutOfRange,
            format!("Unknown encoding: {name}"),
        )
    })?;
    *state
        .runtime
        .default_encoding
        .write()
        .unwrap_or_else(|e| e.into_inner()) = enc;
    Ok(Answer::Text(name))
}

fn syntaxes(state: &AppState) -> Value {
    let list = state
        .runtime
        .accepted_transfer_syntaxes
        .read()
        .unwrap_or_else(|e| e.into_inner());
    let mut v = expand_syntaxes(&list);
    v.sort();
    json!(v)
}

async fn get_syntaxes(state: web::Data<AppState>) -> Answer {
    Answer::Json(syntaxes(&state))
}

async fn put_syntaxes(state: web::Data<AppState>, body: web::Bytes) -> ApiResult<Answer> {
    let patterns: Vec<String> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(a)) => a
            .into_iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::bad_request("Expected a list of transfer syntaxes"))?,
        Ok(Value::String(s)) => vec![s],
        _ => vec![body_text(&body)],
    };
    let expanded = expand_syntaxes(&patterns);
    *state
        .runtime
        .scp
        .accepted_transfer_syntaxes
        .write()
        .unwrap_or_else(|e| e.into_inner()) = expanded;
    *state
        .runtime
        .accepted_transfer_syntaxes
        .write()
        .unwrap_or_else(|e| e.into_inner()) = patterns;
    Ok(Answer::Json(syntaxes(&state)))
}

async fn get_unknown_sop(state: web::Data<AppState>) -> Answer {
    let on = state
        .runtime
        .scp
        .accept_unknown_sop_classes
        .load(Ordering::Relaxed);
    Answer::Text(if on { "1" } else { "0" }.into())
}

async fn put_unknown_sop(state: web::Data<AppState>, body: web::Bytes) -> ApiResult<Answer> {
    let on = match body_text(&body).to_ascii_lowercase().as_str() {
        "1" | "true" => true,
        "0" | "false" => false,
        other => {
            return Err(ApiError::new(
                OrthancCode::ParameterOutOfRange,
                format!("Boolean value expected: {other}"),
            ))
        }
    };
    state
        .runtime
        .scp
        .accept_unknown_sop_classes
        .store(on, Ordering::Relaxed);
    Ok(Answer::Empty)
}

async fn lookup(state: web::Data<AppState>, body: web::Bytes) -> ApiResult<Answer> {
    let value = body_text(&body);
    let found = state.reader.lookup(&value).await?;
    let out: Vec<Value> = found
        .into_iter()
        .map(|(level, id)| json!({"ID": id, "Path": format!("/{}/{}", level.plural(), id), "Type": level.name()}))
        .collect();
    Ok(Answer::Json(Value::Array(out)))
}

async fn bulk_delete(state: web::Data<AppState>, body: web::Bytes) -> ApiResult<Answer> {
    let v = parse_json(&body)?;
    let ids = v
        .get("Resources")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request("Missing \"Resources\" array"))?;
    for id in ids.iter().filter_map(Value::as_str) {
        if let Some(row) = state.reader.resource_any(id).await? {
            // A resource already gone with an earlier one of the list is fine.
            let level: Level = row.level;
            match super::resources::delete_resource(&state, level, id.to_string()).await {
                Ok(_) => {}
                Err(e) if e.code == OrthancCode::UnknownResource => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(Answer::Empty)
}

async fn execute_script(state: web::Data<AppState>, body: web::Bytes) -> ApiResult<Answer> {
    if !state.settings.execute_lua_enabled {
        return Err(ApiError::new(
            OrthancCode::ForbiddenAccess,
            "The REST API is not allowed to execute Lua scripts (set \"ExecuteLuaEnabled\" to true)",
        ));
    }
    let script = String::from_utf8_lossy(&body).into_owned();
    let out = state.lua.send(ExecuteScript(script)).await??;
    Ok(Answer::Text(out))
}
