//! Modification and anonymization of resources, as Orthanc: `POST /instances/{id}/modify`
//! (or `/anonymize`) answers the new file (nothing is stored); the same on patients, studies
//! and series runs a `ResourceModification` job that stores the new instances (synchronous
//! unless `Asynchronous`; the answer is then the job's content).

use actix_web::{web, HttpRequest};
use pacsnode_actors::jobs::modify::ModifyRequest;
use pacsnode_actors::jobs::JobRequest;
use pacsnode_actors::model::dicom::dictionary::parse_tag;
use pacsnode_actors::model::dicom::modify::{
    modify, tag_number, Anonymization, Modification, UidMap, IDENTIFIERS, PATIENT_ID,
    SERIES_INSTANCE_UID, SOP_INSTANCE_UID, STUDY_INSTANCE_UID,
};
use pacsnode_actors::model::dicom::tag_path::{self, PathError, TagPath};
use pacsnode_actors::model::dicom::{anonymize, PrivateDictionary, Tag};
use pacsnode_actors::model::Level;
use pacsnode_actors::transcode;
use serde_json::Value;

use super::error::{ApiError, ApiResult, OrthancCode};
use super::jobs::{transcoding, JobOptions};
use super::middleware::not_allowed;
use super::resources::{level_of, lookup};
use super::respond::Answer;
use super::tags::read_file;
use super::tools::parse_json;
use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/{level:instances}/{id}/{action:modify|anonymize}")
            .route(web::post().to(modify_instance))
            .default_service(not_allowed("POST")),
    );
    cfg.service(
        web::resource("/{level:patients|studies|series}/{id}/{action:modify|anonymize}")
            .route(web::post().to(modify_resource))
            .default_service(not_allowed("POST")),
    );

    cfg.service(
        web::resource("/tools/bulk-{action:modify|anonymize}")
            .route(web::post().to(modify_bulk))
            .default_service(not_allowed("POST")),
    );
}

/// Whether the route is `/anonymize` or `/tools/bulk-anonymize`.
fn anonymizing(req: &HttpRequest) -> bool {
    req.match_info().get("action") == Some("anonymize")
}

/// The body of a modification, checked.
pub(super) struct Parsed {
    pub modification: Modification,
    pub keep_source: bool,
    pub permissive: bool,
    pub keep_labels: bool,
}

/// A name in `Replace`, `Remove` or `Keep`: a tag, or a path into sequences.
enum Name {
    Tag(Tag),
    Path(TagPath),
}

fn unknown(name: &str) -> ApiError {
    ApiError::new(
        OrthancCode::UnknownDicomTag,
        format!("Unknown DICOM tag: \"{name}\""),
    )
}

fn name(dictionary: &PrivateDictionary, name: &str) -> ApiResult<Name> {
    if tag_path::is_path(name) {
        return tag_path::parse(name, &|s| dictionary.tag_of(s))
            .map(Name::Path)
            .map_err(|e| match e {
                PathError::UnknownTag(t) => unknown(&t),
                PathError::BadPath(m) => ApiError::new(OrthancCode::ParameterOutOfRange, m),
            });
    }
    tag_named(dictionary, name).map(Name::Tag)
}

/// A tag by its number or name, standard or from the `Dictionary` option; an unknown name is
/// Orthanc's `UnknownDicomTag`.
pub(super) fn tag_named(dictionary: &PrivateDictionary, name: &str) -> ApiResult<Tag> {
    parse_tag(name)
        .or_else(|| dictionary.tag_of(name))
        .ok_or_else(|| unknown(name))
}

/// The tags and the paths of `Remove` or `Keep`.
fn names(
    dictionary: &PrivateDictionary,
    body: &Value,
    key: &str,
) -> ApiResult<(Vec<Tag>, Vec<TagPath>)> {
    let bad = || ApiError::bad_request(format!("\"{key}\" must be an array of strings"));
    let (mut tags, mut paths) = (Vec::new(), Vec::new());
    match body.get(key) {
        None => {}
        Some(Value::Array(a)) => {
            for v in a {
                match name(dictionary, v.as_str().ok_or_else(bad)?)? {
                    Name::Tag(t) => tags.push(t),
                    Name::Path(p) => paths.push(p),
                }
            }
        }
        Some(_) => return Err(bad()),
    }
    Ok((tags, paths))
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
pub(super) async fn parse(
    state: &AppState,
    body: &Value,
    level: Option<Level>,
    anonymize: bool,
) -> ApiResult<Parsed> {
    if !body.is_object() {
        return Err(ApiError::new(
            OrthancCode::BadFileFormat,
            "The body must contain a JSON object",
        ));
    }
    let force = flag(body, "Force", false)?;
    let dictionary = &state.dictionary;
    let (remove, path_remove) = names(dictionary, body, "Remove")?;
    let (keep, path_keep) = names(dictionary, body, "Keep")?;
    let (mut replace, mut path_replace) = (Vec::new(), Vec::new());
    match body.get("Replace") {
        None => {}
        Some(Value::Object(r)) => {
            for (key, v) in r {
                if !matches!(v, Value::String(_) | Value::Null | Value::Array(_)) {
                    return Err(ApiError::new(
                        OrthancCode::BadParameterType,
                        format!("Bad value for tag {key}: a string, null or an array is expected"),
                    ));
                }
                match name(dictionary, key)? {
                    Name::Tag(t) => replace.push((t, v.clone())),
                    Name::Path(p) => path_replace.push((p, v.clone())),
                }
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
    let anonymization = if anonymize {
        Some(anonymization_of(body)?)
    } else {
        None
    };
    let altered = !(replace.is_empty()
        && remove.is_empty()
        && keep.is_empty()
        && path_replace.is_empty()
        && path_remove.is_empty()
        && path_keep.is_empty())
        || anonymization.as_ref().is_some_and(|a| a.keep_private_tags);
    let mut modification = Modification {
        level: Level::Instance,
        replace: replace
            .into_iter()
            .map(|(t, v)| (tag_number(t), v))
            .collect(),
        remove: remove.into_iter().map(tag_number).collect(),
        keep: keep.into_iter().map(tag_number).collect(),
        remove_private_tags: flag(body, "RemovePrivateTags", false)?,
        anonymization,
        path_replace,
        path_remove,
        path_keep,
    };
    modification.level = level.unwrap_or_else(|| modification.detect_level());
    if let Some(a) = &modification.anonymization {
        let version = a.version.clone();
        anonymization_replacements(state, &mut modification, &version, altered).await?;
    }
    Ok(Parsed {
        modification,
        keep_source: flag(body, "KeepSource", true)?,
        keep_labels: flag(body, "KeepLabels", false)?,
        permissive: flag(body, "Permissive", false)?,
    })
}

/// `DicomVersion` and `KeepPrivateTags` of an anonymization.
fn anonymization_of(body: &Value) -> ApiResult<Anonymization> {
    let version = match body.get("DicomVersion") {
        None => anonymize::VERSIONS[anonymize::VERSIONS.len() - 1].to_string(),
        Some(Value::String(v)) if anonymize::VERSIONS.contains(&v.as_str()) => v.clone(),
        Some(Value::String(v)) => {
            return Err(ApiError::new(
                OrthancCode::ParameterOutOfRange,
                format!("Unknown DICOM version: {v}"),
            ))
        }
        Some(_) => {
            return Err(ApiError::new(
                OrthancCode::BadFileFormat,
                "Member \"DicomVersion\" should be a string",
            ))
        }
    };
    Ok(Anonymization {
        version,
        keep_private_tags: flag(body, "KeepPrivateTags", false)?,
    })
}

/// What an anonymization writes besides the profile: `AnonymizedN` as PatientName (unless
/// the user said what to do with it; N counts anonymizations, kept in the index),
/// PatientIdentityRemoved and DeidentificationMethod.
async fn anonymization_replacements(
    state: &AppState,
    m: &mut Modification,
    version: &str,
    altered: bool,
) -> ApiResult<()> {
    const PATIENT_NAME: Tag = Tag(0x0010, 0x0010);
    const IDENTITY_REMOVED: Tag = Tag(0x0012, 0x0062);
    const METHOD: Tag = Tag(0x0012, 0x0063);
    m.level = Level::Patient;
    let untouched =
        |m: &Modification, t: Tag| !m.is_replaced(t) && !m.is_kept(t) && !m.is_removed(t);
    if untouched(m, PATIENT_NAME) {
        let n = state
            .writer
            .write(|c| pacsnode_actors::index::write::next_sequence(c, "AnonymizationSequence"))
            .await?;
        m.replace.push((
            tag_number(PATIENT_NAME),
            Value::from(format!("Anonymized{n}")),
        ));
    }
    let method = if altered {
        "Orthanc mainline".to_string()
    } else {
        anonymize::method(version)
    };
    for (t, v) in [(IDENTITY_REMOVED, "YES".to_string()), (METHOD, method)] {
        if untouched(m, t) {
            m.replace.push((tag_number(t), Value::from(v)));
        }
    }
    Ok(())
}

async fn modify_instance(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let body = parse_json(&body)?;
    let m = parse(&state, &body, None, anonymizing(&req))
        .await?
        .modification;
    let (ts, quality) = transcoding(&req, &body)?;
    let row = lookup(&state, &req).await?;
    let file = read_file(&state, &row).await?;
    let out = web::block(move || {
        let out = modify(&file, &m, &mut UidMap::default())
            .map_err(|e| ApiError::new(OrthancCode::BadRequest, e.to_string()))?;
        let Some(ts) = ts else { return Ok(out) };
        let out = transcode::transcode(&out, &ts, quality).map_err(|e| {
            ApiError::new(OrthancCode::InternalError, format!("Cannot transcode: {e}"))
        })?;
        if !transcode::is_lossy(&ts) {
            return Ok(out);
        }
        // A lossy copy is a new instance: it gets a SOPInstanceUID of its own, as in Orthanc.
        modify(
            &out,
            &Modification::at(Level::Instance),
            &mut UidMap::default(),
        )
        .map_err(|e| ApiError::new(OrthancCode::InternalError, e.to_string()))
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

/// The main tags of a patient (Orthanc's list).
const PATIENT_TAGS: [Tag; 5] = [
    Tag(0x0010, 0x0010),
    PATIENT_ID,
    Tag(0x0010, 0x0030),
    Tag(0x0010, 0x0040),
    Tag(0x0010, 0x1000),
];

/// Orthanc's check before patient tags change through a study: if the study would join (or
/// stay in) a patient with other studies, that patient's tags must be given exactly as they
/// are, or the patient's other studies would disagree with it.
async fn check_patient_tags(state: &AppState, study: &str, m: &Modification) -> ApiResult<()> {
    if !PATIENT_TAGS.iter().any(|t| m.is_replaced(*t)) {
        return Ok(());
    }
    let replaced = |t: Tag| {
        m.replace
            .iter()
            .find(|(n, _)| *n == tag_number(t))
            .map(|(_, v)| v.as_str().unwrap_or_default().to_string())
    };
    let row = state.reader.resource(Level::Study, study).await?;
    let parent = row.parent_id.unwrap_or_default();
    let current = state.reader.resource_by_id(parent).await?;
    let num = |t: Tag| (t.0, t.1);
    let target_id = replaced(PATIENT_ID).unwrap_or_else(|| {
        current
            .main_tags
            .get(num(PATIENT_ID))
            .unwrap_or("")
            .to_string()
    });
    let target = pacsnode_actors::model::ids::orthanc_hash(&target_id);
    let Some(patient) = state.reader.resource_any(&target).await? else {
        return Ok(());
    };
    let studies = state.reader.descendants(patient.id, Level::Study).await?;
    if studies.iter().all(|s| s.public_id == study) {
        return Ok(());
    }
    for t in PATIENT_TAGS {
        let existing = patient.main_tags.get(num(t)).map(str::to_string);
        let asked = replaced(t);
        // Every tag the patient has must be given as it is; no tag it lacks may be given.
        let consistent = match (&existing, &asked) {
            (Some(e), Some(a)) => e == a,
            (None, None) => true,
            _ => false,
        };
        if !consistent {
            return Err(ApiError::bad_request(format!(
                "Trying to change patient tags in a study. The Patient already exists and has other studies. All the 'Patient' tags that are provided must match the existing ones. Failing tag: {:04x},{:04x}",
                t.0, t.1
            )));
        }
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
    let parsed = parse(&state, &body, Some(level), anonymizing(&req)).await?;
    check_in_place(&state, level, &parsed)?;
    let id = req.match_info().get("id").unwrap_or_default().to_string();
    if level == Level::Study && parsed.modification.anonymization.is_none() {
        check_patient_tags(&state, &id, &parsed.modification).await?;
    }
    let options = JobOptions::from_body(&body)?;
    let (transcode, quality) = transcoding(&req, &body)?;
    // Orthanc does not check the level of `{id}`: the instances of any resource are modified.
    if state.reader.resource_any(&id).await?.is_none() {
        return Err(ApiError::new(OrthancCode::UnknownResource, id));
    }
    let job = ModifyRequest {
        level,
        resources: vec![id],
        modification: parsed.modification,
        keep_source: parsed.keep_source,
        permissive: parsed.permissive,
        transcode,
        quality,
        bulk: false,
        keep_labels: parsed.keep_labels,
        target_study_uid: None,
    };
    run_job(&state, job, options).await
}

/// `POST /tools/bulk-modify` and `/tools/bulk-anonymize`: one job over `Resources` of any
/// levels; the answer lists the new resources.
async fn modify_bulk(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let body = parse_json(&body)?;
    let resources: Vec<String> = match body.get("Resources") {
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => {
            return Err(ApiError::bad_request(
                "\"Resources\" must be an array of strings",
            ))
        }
    };
    let level = match body.get("Level") {
        None => None,
        Some(Value::String(l)) => Some(Level::parse(l).ok_or_else(|| {
            ApiError::new(
                OrthancCode::ParameterOutOfRange,
                format!("Unknown resource level: {l}"),
            )
        })?),
        Some(_) => return Err(ApiError::bad_request("\"Level\" must be a string")),
    };
    let parsed = parse(&state, &body, level, anonymizing(&req)).await?;
    let options = JobOptions::from_body(&body)?;
    let (transcode, quality) = transcoding(&req, &body)?;
    super::jobs::check_resources(&state, &resources).await?;
    let job = ModifyRequest {
        level: parsed.modification.level,
        resources,
        modification: parsed.modification,
        keep_source: parsed.keep_source,
        permissive: parsed.permissive,
        transcode,
        quality,
        bulk: true,
        keep_labels: parsed.keep_labels,
        target_study_uid: None,
    };
    run_job(&state, job, options).await
}

/// Queues a modification job; answers it (`Asynchronous`) or waits and answers its content.
async fn run_job(state: &AppState, job: ModifyRequest, options: JobOptions) -> ApiResult<Answer> {
    let job = JobRequest::ResourceModification(Box::new(job));
    super::jobs::run(state, job, options, OrthancCode::InternalError).await
}
