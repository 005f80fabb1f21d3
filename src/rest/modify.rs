//! `POST /instances/{id}/modify`: the instance's file with tags replaced, removed or kept,
//! answered as `application/dicom` (nothing is stored, as in Orthanc).

use actix_web::{web, HttpRequest};
use pacsnode_actors::model::dicom::dictionary::parse_tag;
use pacsnode_actors::model::dicom::modify::{modify, Modification};
use pacsnode_actors::model::dicom::Tag;
use serde_json::Value;

use super::error::{ApiError, ApiResult, OrthancCode};
use super::middleware::not_allowed;
use super::resources::lookup;
use super::respond::Answer;
use super::system::new_uid;
use super::tags::read_file;
use super::tools::parse_json;
use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/{level:instances}/{id}/modify")
            .route(web::post().to(modify_instance))
            .default_service(not_allowed("POST")),
    );
}

/// PatientID and the UIDs: changing them needs `"Force": true`, as in Orthanc.
const IDENTIFIERS: &[Tag] = &[
    Tag(0x0010, 0x0020),
    Tag(0x0020, 0x000d),
    Tag(0x0020, 0x000e),
    Tag(0x0008, 0x0018),
];

fn tag(name: &str) -> ApiResult<Tag> {
    parse_tag(name).ok_or_else(|| ApiError::bad_request(format!("Unknown DICOM tag: \"{name}\"")))
}

fn tags(body: &Value, key: &str) -> ApiResult<Vec<Tag>> {
    match body.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| tag(v.as_str().unwrap_or_default()))
            .collect(),
        Some(_) => Err(ApiError::bad_request(format!(
            "\"{key}\" must be an array of tags"
        ))),
    }
}

fn parse(body: &Value) -> ApiResult<Modification> {
    if !body.is_object() {
        return Err(ApiError::bad_request("The body must contain a JSON object"));
    }
    let force = body.get("Force").and_then(Value::as_bool).unwrap_or(false);
    let mut m = Modification {
        remove: tags(body, "Remove")?,
        keep: tags(body, "Keep")?,
        remove_private_tags: body
            .get("RemovePrivateTags")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        new_sop_instance_uid: new_uid(),
        ..Default::default()
    };
    match body.get("Replace") {
        None => {}
        Some(Value::Object(r)) => {
            for (name, v) in r {
                let v = v.as_str().ok_or_else(|| {
                    ApiError::new(
                        OrthancCode::NotImplemented,
                        format!("Replacing {name} with a non-string value is not supported yet"),
                    )
                })?;
                m.replace.push((tag(name)?, v.to_string()));
            }
        }
        Some(_) => return Err(ApiError::bad_request("\"Replace\" must be a JSON object")),
    }
    let touched = m.replace.iter().map(|(t, _)| t).chain(m.remove.iter());
    if !force {
        if let Some(t) = touched.into_iter().find(|t| IDENTIFIERS.contains(t)) {
            return Err(ApiError::bad_request(format!(
                "Marking tag ({:04x},{:04x}) as to be modified requires the \"Force\" option to be set to true",
                t.0, t.1
            )));
        }
    }
    Ok(m)
}

async fn modify_instance(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let m = parse(&parse_json(&body)?)?;
    let row = lookup(&state, &req).await?;
    let file = read_file(&state, &row).await?;
    let out = web::block(move || modify(&file, &m))
        .await?
        .map_err(|e| ApiError::new(OrthancCode::BadFileFormat, e.to_string()))?;
    Ok(Answer::Bytes(out, "application/dicom"))
}
