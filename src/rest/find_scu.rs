//! The deprecated C-FIND SCU routes, kept for old scripts: `/modalities/{id}/find-patient`,
//! `find-study`, `find-series`, `find-instance` and `find` (patients with their studies and
//! series). The body is a map of tags merged over a template of empty keys, restricted to
//! the main tags of the level; the answers are simplified JSON.

use actix_web::web;
use dicom_core::Tag;
use pacsnode_actors::dimse::{retrieve, Model, RemoteAe};
use pacsnode_actors::model::dicom::{Format, JsonOptions};
use pacsnode_actors::model::{main_tags, Level};
use pacsnode_actors::queries::{self, FindOptions};
use serde_json::{Map, Value};

use super::error::{ApiError, ApiResult};
use super::modalities::{modality, network_error, remote_of};
use super::queries::{charset_term, json_options, tag_map};
use super::respond::Answer;
use super::tools::parse_json;
use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/modalities/{name}/find-patient",
        web::post().to(find_patient),
    )
    .route("/modalities/{name}/find-study", web::post().to(find_study))
    .route(
        "/modalities/{name}/find-series",
        web::post().to(find_series),
    )
    .route(
        "/modalities/{name}/find-instance",
        web::post().to(find_instance),
    )
    .route("/modalities/{name}/find", web::post().to(find_all))
    .route(
        "/modalities/{name}/find-worklist",
        web::post().to(find_worklist),
    );
}

/// The keys each level asks for (empty unless the body gives a value).
fn template(level: Level) -> &'static [(u16, u16)] {
    match level {
        Level::Patient => &[
            (0x0010, 0x0020),
            (0x0010, 0x1000),
            (0x0010, 0x0030),
            (0x0010, 0x0010),
            (0x0010, 0x0040),
        ],
        Level::Study => &[
            (0x0010, 0x0020),
            (0x0008, 0x0050),
            (0x0020, 0x000d),
            (0x0008, 0x0090),
            (0x0008, 0x0020),
            (0x0008, 0x1030),
            (0x0020, 0x0010),
            (0x0008, 0x0030),
        ],
        Level::Series => &[
            (0x0010, 0x0020),
            (0x0008, 0x0050),
            (0x0020, 0x000d),
            (0x0020, 0x000e),
            (0x0018, 0x0015),
            (0x0008, 0x0060),
            (0x0008, 0x1070),
            (0x0040, 0x0254),
            (0x0018, 0x1030),
            (0x0008, 0x0021),
            (0x0008, 0x103e),
            (0x0020, 0x0011),
            (0x0008, 0x0031),
        ],
        Level::Instance => &[
            (0x0010, 0x0020),
            (0x0008, 0x0050),
            (0x0020, 0x000d),
            (0x0020, 0x000e),
            (0x0008, 0x0018),
            (0x0020, 0x0012),
            (0x0020, 0x4000),
            (0x0054, 0x1330),
            (0x0020, 0x0037),
            (0x0020, 0x0032),
            (0x0008, 0x0012),
            (0x0008, 0x0013),
            (0x0020, 0x0013),
            (0x0028, 0x0008),
            (0x0020, 0x0100),
        ],
    }
}

/// The tags a level's query may hold: its main tags and the identifiers above it.
fn kept(level: Level, tag: Tag) -> bool {
    let t = (tag.0, tag.1);
    let above: &[(u16, u16)] = match level {
        Level::Patient => &[],
        Level::Study => &[(0x0010, 0x0020), (0x0008, 0x0050), (0x0008, 0x0061)],
        Level::Series => &[(0x0010, 0x0020), (0x0008, 0x0050), (0x0020, 0x000d)],
        Level::Instance => &[
            (0x0010, 0x0020),
            (0x0008, 0x0050),
            (0x0020, 0x000d),
            (0x0020, 0x000e),
        ],
    };
    above.contains(&t) || main_tags::for_level(level).iter().any(|m| m.tag == t)
}

/// The query of a level: the template, the body's values over it, restricted.
fn query_of(level: Level, body: &[(Tag, String)]) -> Vec<(Tag, String)> {
    let mut q: Vec<(Tag, String)> = template(level)
        .iter()
        .map(|(g, e)| (Tag(*g, *e), String::new()))
        .collect();
    for (tag, value) in body {
        match q.iter_mut().find(|(t, _)| t == tag) {
            Some(slot) => slot.1 = value.clone(),
            None => q.push((*tag, value.clone())),
        }
    }
    q.retain(|(t, _)| kept(level, *t));
    q
}

fn value(q: &[(Tag, String)], tag: Tag) -> &str {
    q.iter()
        .find(|(t, _)| *t == tag)
        .map_or("", |(_, v)| v.as_str())
}

/// The simplified answers of a C-FIND at `level` (blocking).
fn find(
    remote: &RemoteAe,
    local: &str,
    level: Level,
    query: &[(Tag, String)],
    term: &str,
    opts: &JsonOptions,
) -> Result<Vec<Value>, String> {
    let options = FindOptions {
        normalize: true,
        manufacturer: "",
        charset_term: term,
    };
    let identifier = queries::find_identifier(level, query, &options);
    let model = if level == Level::Patient {
        Model::PatientRoot
    } else {
        Model::StudyRoot
    };
    let answers = retrieve::find(local, remote, model, &identifier)
        .map_err(|e| format!("C-FIND SCU to AET \"{}\": {e}", remote.aet))?;
    Ok(answers
        .into_iter()
        .map(|a| queries::to_json(&queries::fix_answer(a, level, term), Format::Simplify, opts))
        .collect())
}

/// Runs the finds `run` does on a blocking thread, for the modality `name`.
async fn with_modality<F>(state: &AppState, name: &str, body: &[u8], run: F) -> ApiResult<Answer>
where
    F: FnOnce(&RemoteAe, &str, Vec<(Tag, String)>, &str, &JsonOptions) -> Result<Value, String>
        + Send
        + 'static,
{
    let body = parse_json(body)?;
    if !body.is_object() {
        return Err(ApiError::bad_request("Must provide a JSON object"));
    }
    let query = tag_map(Some(&body), "body")?;
    let config = modality(state, name).await?;
    let (remote, local) = remote_of(state, &config, &Value::Object(Map::new()))?;
    let term = charset_term(state);
    let opts = json_options(state);
    let answer = web::block(move || run(&remote, &local, query, term, &opts))
        .await?
        .map_err(network_error)?;
    Ok(Answer::Json(answer))
}

/// Orthanc refuses a query that would list too much: these keys need a value (3+ chars).
fn long_enough(q: &[(Tag, String)], tags: &[Tag]) -> bool {
    tags.iter().any(|t| value(q, *t).len() > 2)
}

const PID: Tag = Tag(0x0010, 0x0020);
const ACC: Tag = Tag(0x0008, 0x0050);
const STUDY: Tag = Tag(0x0020, 0x000d);
const SERIES: Tag = Tag(0x0020, 0x000e);

async fn level_find(
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
    level: Level,
) -> ApiResult<Answer> {
    let body_query = tag_map(parse_json(&body).ok().as_ref(), "body").unwrap_or_default();
    let q = query_of(level, &body_query);
    let ok = match level {
        Level::Patient => true,
        Level::Study => long_enough(&q, &[ACC, PID]),
        Level::Series => long_enough(&q, &[ACC, PID]) && long_enough(&q, &[STUDY]),
        Level::Instance => {
            long_enough(&q, &[ACC, PID]) && long_enough(&q, &[STUDY]) && long_enough(&q, &[SERIES])
        }
    };
    if !ok {
        return Err(ApiError::bad_request(
            "The query needs a PatientID or AccessionNumber, and the UIDs of the levels above",
        ));
    }
    with_modality(
        &state,
        &name,
        &body,
        move |remote, local, query, term, opts| {
            Ok(Value::Array(find(
                remote,
                local,
                level,
                &query_of(level, &query),
                term,
                opts,
            )?))
        },
    )
    .await
}

async fn find_patient(
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<Answer> {
    level_find(state, name, body, Level::Patient).await
}

async fn find_study(
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<Answer> {
    level_find(state, name, body, Level::Study).await
}

async fn find_series(
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<Answer> {
    level_find(state, name, body, Level::Series).await
}

async fn find_instance(
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<Answer> {
    level_find(state, name, body, Level::Instance).await
}

/// `find`: the patients, each with its studies, each with its series.
async fn find_all(
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<Answer> {
    with_modality(&state, &name, &body, |remote, local, query, term, opts| {
        let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
        let mut patients = find(
            remote,
            local,
            Level::Patient,
            &query_of(Level::Patient, &query),
            term,
            opts,
        )?;
        for patient in &mut patients {
            let mut q = query.clone();
            q.push((PID, text(patient, "PatientID")));
            let mut studies = find(
                remote,
                local,
                Level::Study,
                &query_of(Level::Study, &q),
                term,
                opts,
            )?;
            for study in &mut studies {
                let mut q = q.clone();
                q.push((STUDY, text(study, "StudyInstanceUID")));
                let series = find(
                    remote,
                    local,
                    Level::Series,
                    &query_of(Level::Series, &q),
                    term,
                    opts,
                )?;
                study["Series"] = Value::Array(series);
            }
            patient["Studies"] = Value::Array(studies);
        }
        Ok(Value::Array(patients))
    })
    .await
}

/// `find-worklist`: a Modality Worklist C-FIND, the query sent as given (`{"Query": {...}}`, or
/// the whole body in the older form), sequences included; answers in the format asked
/// (`Short`, `Simplify`, `Full`; simplified by default).
async fn find_worklist(
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let body = parse_json(&body)?;
    let Value::Object(map) = &body else {
        return Err(ApiError::bad_request("Must provide a JSON object"));
    };
    let (query, format) = match map.get("Query") {
        Some(Value::Object(q)) => (
            q.clone(),
            super::resource_json::TagFormat::from_body(
                &body,
                super::resource_json::TagFormat::Simplify,
            ),
        ),
        _ => (map.clone(), super::resource_json::TagFormat::Simplify),
    };
    let mut identifier = queries::dataset_from_json(&query, 0).map_err(|k| {
        ApiError::bad_request(format!("Bad tag or value in the worklist query: {k}"))
    })?;
    if identifier.element(queries::SPECIFIC_CHARACTER_SET).is_err() {
        identifier.put(dicom_core::DataElement::new(
            queries::SPECIFIC_CHARACTER_SET,
            dicom_core::VR::CS,
            charset_term(&state),
        ));
    }
    let config = modality(&state, &name).await?;
    let (remote, local) = remote_of(&state, &config, &Value::Object(Map::new()))?;
    let opts = json_options(&state);
    let format = super::tags::to_format(format);
    let answers = web::block(move || {
        let found = retrieve::find(&local, &remote, Model::Worklist, &identifier)
            .map_err(|e| format!("C-FIND SCU to AET \"{}\": {e}", remote.aet))?;
        Ok::<_, String>(
            found
                .iter()
                .map(|a| queries::to_json(a, format, &opts))
                .collect::<Vec<_>>(),
        )
    })
    .await?
    .map_err(network_error)?;
    Ok(Answer::Json(Value::Array(answers)))
}
