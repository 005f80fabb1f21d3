//! Query/retrieve from REST: `/modalities/{id}/query` (C-FIND SCU, answers kept in the
//! query archive), `/queries/...` (answers, child queries, retrieve), `/modalities/{id}/move`.
//! C-FINDs run on blocking threads; C-MOVEs run as `DicomMoveScu` jobs.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::{web, HttpRequest};
use dicom_core::Tag;
use pacsnode_actors::dimse::{retrieve, Model, RemoteAe};
use pacsnode_actors::jobs::move_scu::MoveScuRequest;
use pacsnode_actors::jobs::JobRequest;
use pacsnode_actors::model::dicom::dictionary::parse_tag;
use pacsnode_actors::model::dicom::JsonOptions;
use pacsnode_actors::model::Level;
use pacsnode_actors::queries::{self, FindOptions, StoredQuery, QUERY_RETRIEVE_LEVEL};
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult, OrthancCode};
use super::jobs::transfer;
use super::modalities::{modality, network_error, remote_of};
use super::resource_json::TagFormat;
use super::respond::Answer;
use super::tags::to_format;
use super::tools::parse_json;
use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/modalities/{name}/query", web::post().to(query))
        .route("/queries", web::get().to(list))
        .route("/queries/{id}", web::get().to(children))
        .route("/queries/{id}", web::delete().to(delete))
        .route("/queries/{id}/answers", web::get().to(answers))
        .route("/queries/{id}/answers/{i}", web::get().to(answer_children))
        .route("/queries/{id}/answers/{i}/content", web::get().to(content))
        .route(
            "/queries/{id}/answers/{i}/retrieve",
            web::post().to(retrieve_one),
        )
        .route(
            "/queries/{id}/answers/{i}/{child}",
            web::post().to(child_query),
        )
        .route("/queries/{id}/level", web::get().to(level))
        .route("/queries/{id}/modality", web::get().to(modality_name))
        .route("/queries/{id}/query", web::get().to(user_query))
        .route("/queries/{id}/retrieve", web::post().to(retrieve_all));
}

/// The level of a `Level` field (`Study`, `studies`, `Image`...).
pub(super) fn parse_level(v: &str) -> ApiResult<Level> {
    queries::level_of(v).ok_or_else(|| ApiError::bad_request(format!("Invalid resource type: {v}")))
}

/// `{"PatientName": "DOE*", "0020,000d": "1.2"}` as (tag, value) pairs.
pub(super) fn tag_map(v: Option<&Value>, field: &str) -> ApiResult<Vec<(Tag, String)>> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let bad = || {
        ApiError::bad_request(format!(
            "Associative array of DICOM tags to strings expected in field: {field}"
        ))
    };
    let map = v.as_object().ok_or_else(bad)?;
    map.iter()
        .map(|(k, v)| {
            let (tag, text) = (parse_tag(k).ok_or_else(bad)?, v.as_str().ok_or_else(bad)?);
            if !queries::valid_value(tag, text) {
                return Err(ApiError::new(
                    OrthancCode::ParameterOutOfRange,
                    format!("Bad value for {k}: {text}"),
                ));
            }
            Ok((tag, text.to_string()))
        })
        .collect()
}

pub(super) fn charset_term(state: &AppState) -> &'static str {
    state
        .runtime
        .default_encoding
        .read()
        .map(|e| e.to_specific_character_set())
        .unwrap_or("ISO_IR 100")
}

pub(super) fn json_options(state: &AppState) -> JsonOptions {
    JsonOptions {
        default_encoding: *state
            .runtime
            .default_encoding
            .read()
            .unwrap_or_else(|e| e.into_inner()),
        dictionary: state.dictionary.clone(),
        ..Default::default()
    }
}

/// The modality a query goes to.
pub(super) struct Target {
    pub name: String,
    pub config: Value,
    pub remote: RemoteAe,
    pub local: String,
}

/// A C-FIND of `query` at `level` to a modality, kept in the archive; answers its id.
pub(super) async fn run_query(
    state: &AppState,
    target: Target,
    level: Level,
    query: Vec<(Tag, String)>,
    normalize: bool,
) -> ApiResult<Answer> {
    let Target {
        name,
        config,
        remote,
        local,
    } = target;
    let manufacturer = config["Manufacturer"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let identifier = queries::find_identifier(
        level,
        &query,
        &FindOptions {
            normalize,
            manufacturer: &manufacturer,
            charset_term: charset_term(state),
        },
    );
    let model = if level == Level::Patient {
        Model::PatientRoot
    } else {
        Model::StudyRoot
    };
    let (r, l) = (remote.clone(), local.clone());
    let answers = web::block(move || retrieve::find(&l, &r, model, &identifier))
        .await?
        .map_err(|e| network_error(format!("C-FIND SCU to AET \"{}\": {e}", remote.aet)))?;
    let term = charset_term(state);
    let answers = answers
        .into_iter()
        .map(|a| queries::fix_answer(a, level, term))
        .collect();
    let id = state.queries.add(StoredQuery {
        modality: name,
        remote,
        local_aet: local,
        level,
        normalize,
        query,
        answers,
    });
    Ok(Answer::Json(
        json!({ "ID": id, "Path": format!("/queries/{id}") }),
    ))
}

async fn query(
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let body = parse_json(&body)?;
    if !body.is_object() {
        return Err(ApiError::bad_request("Must provide a JSON object"));
    }
    let level = parse_level(body["Level"].as_str().unwrap_or_default())?;
    let query = tag_map(body.get("Query"), "Query")?;
    let normalize = match body.get("Normalize") {
        None => true,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| ApiError::bad_request("Normalize must be a Boolean"))?,
    };
    let config = modality(&state, &name).await?;
    let (remote, local) = remote_of(&state, &config, &body)?;
    let target = Target {
        name: name.into_inner(),
        config,
        remote,
        local,
    };
    run_query(&state, target, level, query, normalize).await
}

fn stored(state: &AppState, id: &str) -> ApiResult<Arc<StoredQuery>> {
    state.queries.get(id).ok_or_else(ApiError::unknown_resource)
}

fn index_of(q: &StoredQuery, i: &str) -> ApiResult<usize> {
    i.parse::<usize>()
        .ok()
        .filter(|i| *i < q.answers.len())
        .ok_or_else(|| ApiError::new(OrthancCode::ParameterOutOfRange, format!("No answer {i}")))
}

async fn list(state: web::Data<AppState>) -> ApiResult<Answer> {
    Ok(Answer::Json(json!(state.queries.ids())))
}

async fn children(state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<Answer> {
    stored(&state, &id)?;
    Ok(Answer::Json(json!([
        "answers", "level", "modality", "query", "retrieve"
    ])))
}

async fn delete(state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<Answer> {
    state.queries.remove(&id);
    Ok(Answer::Empty)
}

async fn answers(
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
) -> ApiResult<Answer> {
    let q = stored(&state, &id)?;
    let expand = super::respond::flag(&req, "expand")?.unwrap_or(false);
    if !expand {
        let ids: Vec<String> = (0..q.answers.len()).map(|i| i.to_string()).collect();
        return Ok(Answer::Json(json!(ids)));
    }
    let format = to_format(TagFormat::from_request(&req, TagFormat::Full)?);
    let opts = json_options(&state);
    // Encoding and parsing every answer is CPU work: off the async threads.
    let all: Vec<Value> = web::block(move || {
        q.answers
            .iter()
            .map(|a| queries::to_json(a, format, &opts))
            .collect()
    })
    .await?;
    Ok(Answer::Json(Value::Array(all)))
}

async fn answer_children(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> ApiResult<Answer> {
    let q = stored(&state, &path.0)?;
    index_of(&q, &path.1)?;
    let mut out = vec!["content", "retrieve"];
    match q.level {
        Level::Patient => out.extend(["query-study", "query-series", "query-instances"]),
        Level::Study => out.extend(["query-series", "query-instances"]),
        Level::Series => out.push("query-instances"),
        Level::Instance => {}
    }
    Ok(Answer::Json(json!(out)))
}

async fn content(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> ApiResult<Answer> {
    let q = stored(&state, &path.0)?;
    let i = index_of(&q, &path.1)?;
    let format = to_format(TagFormat::from_request(&req, TagFormat::Full)?);
    Ok(Answer::Json(queries::to_json(
        &q.answers[i],
        format,
        &json_options(&state),
    )))
}

async fn level(state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<Answer> {
    Ok(Answer::Text(stored(&state, &id)?.level.name().to_string()))
}

async fn modality_name(state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<Answer> {
    Ok(Answer::Text(stored(&state, &id)?.modality.clone()))
}

async fn user_query(
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
) -> ApiResult<Answer> {
    let q = stored(&state, &id)?;
    let format = to_format(TagFormat::from_request(&req, TagFormat::Full)?);
    let ds = queries::dataset(&q.query);
    Ok(Answer::Json(queries::to_json(
        &ds,
        format,
        &json_options(&state),
    )))
}

/// `query-studies`, `query-series`, `query-instances` below an answer: its keys, and the
/// body's `Query`.
async fn child_query(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let (id, i, child) = path.into_inner();
    let q = stored(&state, &id)?;
    let i = index_of(&q, &i)?;
    let level = match child.as_str() {
        "query-studies" => Level::Study,
        "query-series" => Level::Series,
        "query-instances" => Level::Instance,
        _ => return Err(ApiError::unknown_resource()),
    };
    if level <= q.level {
        return Err(ApiError::unknown_resource());
    }
    let body = parse_json(&body)?;
    let mut query = tag_map(body.get("Query"), "Query")?;
    for key in queries::move_keys(q.level) {
        let value = queries::text(&q.answers[i], *key).ok_or_else(|| {
            ApiError::new(
                OrthancCode::InexistentTag,
                format!("Missing tag {key} in the answer"),
            )
        })?;
        query.retain(|(t, _)| t != key);
        query.push((*key, value));
    }
    let config = modality(&state, &q.modality).await?;
    let (remote, local) = remote_of(&state, &config, &json!({ "Timeout": body.get("Timeout") }))?;
    let target = Target {
        name: q.modality.clone(),
        config,
        remote,
        local,
    };
    run_query(&state, target, level, query, q.normalize).await
}

/// The keys of an answer a retrieve's job shows (Orthanc keeps these).
const RETRIEVE_TAGS: [Tag; 6] = [
    Tag(0x0008, 0x0050),
    Tag(0x0008, 0x0052),
    Tag(0x0010, 0x0020),
    Tag(0x0020, 0x000d),
    Tag(0x0020, 0x000e),
    Tag(0x0008, 0x0018),
];

/// `Simplify` / `Short` / `Full` of a retrieve's body: how its job shows the queries.
pub(super) fn query_format(body: &Value) -> String {
    match TagFormat::from_body(body, TagFormat::Short) {
        TagFormat::Full => "Full",
        TagFormat::Short => "Short",
        TagFormat::Simplify => "Simplify",
    }
    .to_string()
}

pub(super) fn key(tag: Tag) -> String {
    format!("{:04x},{:04x}", tag.0, tag.1)
}

async fn retrieve(
    state: &AppState,
    q: &StoredQuery,
    picked: &[usize],
    body: &[u8],
) -> ApiResult<Answer> {
    let text = String::from_utf8_lossy(body).to_string();
    let body = if text.trim().is_empty() {
        json!({})
    } else {
        match serde_json::from_str::<Value>(&text) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return Err(ApiError::bad_request("Bad body of a retrieve")),
            Err(_) => json!({ "TargetAet": text }),
        }
    };
    let target = match body.get("TargetAet") {
        None => state.settings.dicom_aet.clone(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::bad_request("TargetAet must be a string")),
    };
    let query: Vec<BTreeMap<String, String>> = picked
        .iter()
        .map(|i| {
            let a = &q.answers[*i];
            let mut item: BTreeMap<String, String> = RETRIEVE_TAGS
                .iter()
                .filter_map(|t| Some((key(*t), queries::text(a, *t)?)))
                .collect();
            item.entry(key(QUERY_RETRIEVE_LEVEL))
                .or_insert_with(|| queries::level_term(q.level).to_string());
            item
        })
        .collect();
    let timeout = body
        .get("Timeout")
        .and_then(Value::as_u64)
        .map(std::time::Duration::from_secs);
    let job = MoveScuRequest {
        remote_aet: q.remote.aet.clone(),
        host: q.remote.host.clone(),
        port: q.remote.port,
        timeout: timeout.unwrap_or(q.remote.timeout).as_secs(),
        local_aet: q.local_aet.clone(),
        target_aet: target,
        charset_term: charset_term(state).to_string(),
        query,
        permissive: body["Permissive"].as_bool().unwrap_or(false),
        query_format: query_format(&body),
    };
    transfer(state, JobRequest::DicomMoveScu(Box::new(job)), &body).await
}

async fn retrieve_one(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let q = stored(&state, &path.0)?;
    let i = index_of(&q, &path.1)?;
    retrieve(&state, &q, &[i], &body).await
}

async fn retrieve_all(
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let q = stored(&state, &id)?;
    let all: Vec<usize> = (0..q.answers.len()).collect();
    retrieve(&state, &q, &all, &body).await
}
