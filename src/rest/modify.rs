//! Modification of resources, as Orthanc: `POST /instances/{id}/modify` answers the modified
//! file (nothing is stored); `POST /{patients,studies,series}/{id}/modify` runs a
//! `ResourceModification` job that stores the modified instances (synchronous unless
//! `Asynchronous`; the answer is then the job's content).

use actix_web::{web, HttpRequest};
use pacsnode_actors::jobs::modify::ModifyRequest;
use pacsnode_actors::jobs::JobRequest;
use pacsnode_actors::model::dicom::dictionary::parse_tag;
use pacsnode_actors::model::dicom::modify::{
    modify, tag_number, Modification, UidMap, IDENTIFIERS, PATIENT_ID, SERIES_INSTANCE_UID,
    SOP_INSTANCE_UID, STUDY_INSTANCE_UID,
};
use pacsnode_actors::model::dicom::{PrivateDictionary, Tag};
use pacsnode_actors::model::Level;
use pacsnode_actors::transcode;
use serde_json::Value;

use super::error::{ApiError, ApiResult, OrthancCode};
use super::jobs::{submit, submitted, transcoding, JobOptions};
use super::middleware::not_allowed;
use super::resources::{level_of, lookup};
use super::respond::Answer;
use super::tags::read_file;
use super::tools::parse_json;
use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/{level:instances}/{id}/modify")
            .route(web::post().to(modify_instance))
            .default_service(not_allowed("POST")),
    );
    cfg.service(
        web::resource("/{level:patients|studies|series}/{id}/modify")
            .route(web::post().to(modify_resource))
            .default_service(not_allowed("POST")),
    );
}

/// The body of a modification, checked.
struct Parsed {
    modification: Modification,
    keep_source: bool,
    permissive: bool,
}

fn tag(name: &str) -> ApiResult<Tag> {
    if name.contains('.') || name.contains('[') {
        return Err(ApiError::new(
            OrthancCode::NotImplemented,
            format!("Paths into sequences are not supported yet: {name}"),
        ));
    }
    parse_tag(name).ok_or_else(|| {
        ApiError::new(
            OrthancCode::UnknownDicomTag,
            format!("Unknown DICOM tag: \"{name}\""),
        )
    })
}

fn tags(body: &Value, key: &str) -> ApiResult<Vec<Tag>> {
    match body.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => tag(s),
                _ => Err(ApiError::bad_request(format!(
                    "\"{key}\" must be an array of strings"
                ))),
            })
            .collect(),
        Some(_) => Err(ApiError::bad_request(format!(
            "\"{key}\" must be an array of strings"
        ))),
    }
}

fn flag(body: &Value, key: &str, default: bool) -> ApiResult<bool> {
    match body.get(key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::new(
            OrthancCode::BadFileFormat,
            format!("Member \"{key}\" should be a Boolean value"),
        )),
    }
}

fn name_of(t: Tag) -> String {
    PrivateDictionary::new().name(t, None)
}

/// Reads a modification body: `Remove`, then `Replace` (which wins over a removal), then
/// `Keep` (which wins over both), and Orthanc's rule that the identifiers need `Force`.
fn parse(body: &Value, level: Option<Level>) -> ApiResult<Parsed> {
    if !body.is_object() {
        return Err(ApiError::new(
            OrthancCode::BadFileFormat,
            "The body must contain a JSON object",
        ));
    }
    let force = flag(body, "Force", false)?;
    let remove = tags(body, "Remove")?;
    let keep = tags(body, "Keep")?;
    let mut replace = Vec::new();
    match body.get("Replace") {
        None => {}
        Some(Value::Object(r)) => {
            for (name, v) in r {
                let t = tag(name)?;
                if !matches!(v, Value::String(_) | Value::Null | Value::Array(_)) {
                    return Err(ApiError::new(
                        OrthancCode::BadParameterType,
                        format!("Bad value for tag {name}: a string, null or an array is expected"),
                    ));
                }
                replace.push((t, v.clone()));
            }
        }
        Some(_) => return Err(ApiError::bad_request("\"Replace\" must be a JSON object")),
    }
    if !force {
        let lists = [
            (
                "replaced",
                replace.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            ),
            ("removed", remove.clone()),
            ("kept", keep.clone()),
        ];
        for (what, list) in lists {
            if let Some(t) = list.iter().find(|t| IDENTIFIERS.contains(t)) {
                return Err(ApiError::bad_request(format!(
                    "Marking tag \"{}\" as to be {what} requires the \"Force\" option to be set to true",
                    name_of(*t)
                )));
            }
        }
    }
    let replaced = |t: &Tag| replace.iter().any(|(x, _)| x == t);
    let remove: Vec<Tag> = remove
        .into_iter()
        .filter(|t| !replaced(t) && !keep.contains(t))
        .collect();
    if remove.iter().any(|t| IDENTIFIERS.contains(t)) {
        return Err(ApiError::bad_request(
            "It is forbidden to remove one of the main Dicom identifiers",
        ));
    }
    let replace: Vec<(Tag, Value)> = replace
        .into_iter()
        .filter(|(t, _)| !keep.contains(t))
        .collect();
    let mut modification = Modification {
        level: Level::Instance,
        replace: replace
            .into_iter()
            .map(|(t, v)| (tag_number(t), v))
            .collect(),
        remove: remove.into_iter().map(tag_number).collect(),
        keep: keep.into_iter().map(tag_number).collect(),
        remove_private_tags: flag(body, "RemovePrivateTags", false)?,
    };
    modification.level = level.unwrap_or_else(|| modification.detect_level());
    Ok(Parsed {
        modification,
        keep_source: flag(body, "KeepSource", true)?,
        permissive: flag(body, "Permissive", false)?,
    })
}

async fn modify_instance(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let body = parse_json(&body)?;
    let m = parse(&body, None)?.modification;
    let (ts, quality) = transcoding(&req, &body)?;
    let row = lookup(&state, &req).await?;
    let file = read_file(&state, &row).await?;
    let out = web::block(move || {
        let out = modify(&file, &m, &mut UidMap::default())
            .map_err(|e| ApiError::new(OrthancCode::BadRequest, e.to_string()))?;
        match ts {
            None => Ok(out),
            Some(ts) => transcode::transcode(&out, &ts, quality).map_err(|e| {
                ApiError::new(OrthancCode::InternalError, format!("Cannot transcode: {e}"))
            }),
        }
    })
    .await??;
    Ok(Answer::Bytes(out, "application/dicom"))
}

/// Orthanc's checks before a study or patient is modified in place (every UID kept).
fn check_in_place(state: &AppState, level: Level, p: &Parsed) -> ApiResult<()> {
    let m = &p.modification;
    let in_place = level <= Level::Study
        && !m.is_replaced(PATIENT_ID)
        && [STUDY_INSTANCE_UID, SERIES_INSTANCE_UID, SOP_INSTANCE_UID]
            .iter()
            .all(|t| m.is_kept(*t));
    if !in_place {
        return Ok(());
    }
    if !p.keep_source {
        return Err(ApiError::bad_request(
            "When keeping StudyInstanceUID, SeriesInstanceUID and SOPInstanceUID tags, you must set KeepSource to true to avoid deleting the modified files",
        ));
    }
    if !state.settings.overwrite_instances {
        return Err(ApiError::bad_request(
            "When keeping StudyInstanceUID, SeriesInstanceUID and SOPInstanceUID tags, you must have OverwriteInstances set to true",
        ));
    }
    Ok(())
}

async fn modify_resource(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let body = parse_json(&body)?;
    let level = level_of(&req);
    let parsed = parse(&body, Some(level))?;
    check_in_place(&state, level, &parsed)?;
    let options = JobOptions::from_body(&body)?;
    let (transcode, quality) = transcoding(&req, &body)?;
    // Orthanc does not check the level of `{id}`: the instances of any resource are modified.
    let id = req.match_info().get("id").unwrap_or_default().to_string();
    if state.reader.resource_any(&id).await?.is_none() {
        return Err(ApiError::new(OrthancCode::UnknownResource, id));
    }
    let asynchronous = options.asynchronous;
    let job = JobRequest::ResourceModification(Box::new(ModifyRequest {
        level,
        resources: vec![id],
        modification: parsed.modification,
        keep_source: parsed.keep_source,
        permissive: parsed.permissive,
        transcode,
        quality,
    }));
    let job_id = submit(&state, job, options).await?;
    if asynchronous {
        return Ok(submitted(&job_id));
    }
    let info = state.jobs.wait(&job_id).await?;
    if info["State"] != "Success" {
        let details = info["ErrorDetails"].as_str().unwrap_or("the job failed");
        return Err(ApiError::new(OrthancCode::InternalError, details));
    }
    Ok(Answer::Json(info["Content"].clone()))
}
