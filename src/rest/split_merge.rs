//! `POST /studies/{id}/split` and `/merge`, as Orthanc: a modification job whose new instances
//! get one StudyInstanceUID — a new study made of some series or instances of this one
//! (split), or this study, with its patient and study tags (merge) — and new series and SOP
//! instance UIDs. The sources go unless `KeepSource`.

use actix_web::{web, HttpRequest};
use pacsnode_actors::jobs::modify::ModifyRequest;
use pacsnode_actors::jobs::JobRequest;
use pacsnode_actors::model::dicom::modify::{new_uid, tag_number, STUDY_INSTANCE_UID};
use pacsnode_actors::model::{main_tags, Level};
use serde_json::Value;

use super::error::{ApiError, ApiResult, OrthancCode};
use super::jobs::JobOptions;
use super::middleware::not_allowed;
use super::modify::parse;
use super::resources::lookup;
use super::respond::Answer;
use super::tools::parse_json;
use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/{level:studies}/{id}/split")
            .route(web::post().to(split))
            .default_service(not_allowed("POST")),
    );
    cfg.service(
        web::resource("/{level:studies}/{id}/merge")
            .route(web::post().to(merge))
            .default_service(not_allowed("POST")),
    );
}

/// The ids of a member that must be an array of strings (absent: none).
fn ids(body: &Value, key: &str) -> ApiResult<Vec<String>> {
    match body.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => Ok(a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()),
        Some(_) => Err(ApiError::bad_request(format!(
            "\"{key}\" must be an array of strings"
        ))),
    }
}

/// The modification part of a split or merge body: `Replace` / `Remove` as in `/modify`, with
/// `KeepSource` false unless said otherwise.
async fn modification(state: &AppState, body: &Value) -> ApiResult<super::modify::Parsed> {
    let mut body = body.clone();
    if let Some(o) = body.as_object_mut() {
        o.entry("KeepSource").or_insert(Value::Bool(false));
        o.insert("Force".into(), Value::Bool(true));
    }
    parse(state, &body, Some(Level::Series), false).await
}

async fn submit(
    state: &AppState,
    body: &Value,
    parsed: super::modify::Parsed,
    resources: Vec<String>,
    target_uid: String,
    merge: bool,
) -> ApiResult<Answer> {
    let options = JobOptions::from_body(body)?;
    let mut m = parsed.modification;
    m.replace
        .retain(|(n, _)| *n != tag_number(STUDY_INSTANCE_UID));
    m.replace.push((
        tag_number(STUDY_INSTANCE_UID),
        Value::from(target_uid.clone()),
    ));
    let job = Box::new(ModifyRequest {
        level: Level::Study,
        resources,
        modification: m,
        keep_source: parsed.keep_source,
        permissive: parsed.permissive,
        transcode: None,
        quality: None,
        bulk: false,
        keep_labels: parsed.keep_labels,
        target_study_uid: Some(target_uid),
    });
    let job = if merge {
        JobRequest::MergeStudy(job)
    } else {
        JobRequest::SplitStudy(job)
    };
    super::jobs::run(state, job, options, OrthancCode::InternalError).await
}

async fn split(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let body = parse_json(&body)?;
    let study = lookup(&state, &req).await?;
    let (series, instances) = (ids(&body, "Series")?, ids(&body, "Instances")?);
    if series.is_empty() && instances.is_empty() {
        return Err(ApiError::bad_request(
            "No series or instance to split: give \"Series\" or \"Instances\"",
        ));
    }
    // Every resource must be a series or an instance of this study.
    let members: Vec<String> = state
        .reader
        .descendants(study.id, Level::Series)
        .await?
        .into_iter()
        .chain(state.reader.descendants(study.id, Level::Instance).await?)
        .map(|r| r.public_id)
        .collect();
    for id in series.iter().chain(&instances) {
        if !members.contains(id) {
            return Err(ApiError::new(
                OrthancCode::UnknownResource,
                format!(
                    "Not a series or an instance of study {}: {id}",
                    study.public_id
                ),
            ));
        }
    }
    let parsed = modification(&state, &body).await?;
    let resources = series.into_iter().chain(instances).collect();
    submit(&state, &body, parsed, resources, new_uid(), false).await
}

async fn merge(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let body = parse_json(&body)?;
    let study = lookup(&state, &req).await?;
    let resources = ids(&body, "Resources")?;
    if resources.is_empty() {
        return Err(ApiError::bad_request(
            "\"Resources\" must list what to merge",
        ));
    }
    super::jobs::check_resources(&state, &resources).await?;
    let mut parsed = modification(&state, &body).await?;
    // The patient and study tags of the target study, as the index keeps them; those it
    // lacks are removed from the merged instances.
    let patient = state
        .reader
        .resource_by_id(study.parent_id.unwrap_or_default())
        .await?;
    let m = &mut parsed.modification;
    for (row, level) in [(&patient, Level::Patient), (&study, Level::Study)] {
        for tag in main_tags::for_level(level) {
            let n = (u32::from(tag.tag.0) << 16) | u32::from(tag.tag.1);
            m.replace.retain(|(x, _)| *x != n);
            m.remove.retain(|x| *x != n);
            match row.main_tags.get(tag.tag) {
                Some(v) => m.replace.push((n, Value::from(v))),
                None => m.remove.push(n),
            }
        }
    }
    let uid = study
        .main_tags
        .get((0x0020, 0x000d))
        .unwrap_or_default()
        .to_string();
    submit(&state, &body, parsed, resources, uid, true).await
}
