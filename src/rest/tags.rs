//! The DICOM content of instances: `/tags`, `/simplified-tags`, `/header`, `/content/…`,
//! `/file`, `/pdf`, and the per-level `/module`, `/shared-tags`, `/instances-tags`.
//! Tags come from the dataset kept in the index (no DICOM file is read), except `?whole`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use pacsnode_actors::index::ResourceRow;
use pacsnode_actors::model::dicom::{
    self, browse, ContentAnswer, DicomWebOptions, Format, IgnoreLength, JsonOptions, ParseOptions,
};
use pacsnode_actors::model::{main_tags, Level};
use pacsnode_actors::storage::StoredCompression;
use serde_json::{json, Map, Value};

use super::error::{ApiError, ApiResult, OrthancCode};
use super::middleware::not_allowed;
use super::resource_json::TagFormat;
use super::resources::lookup;
use super::respond::{accept_of, arg, flag, Answer};
use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    let get = |path: &str, h| {
        web::resource(path.to_string())
            .route(h)
            .default_service(not_allowed("GET"))
    };
    cfg.service(get("/{level:instances}/{id}/tags", web::get().to(tags)))
        .service(get(
            "/{level:instances}/{id}/simplified-tags",
            web::get().to(simplified_tags),
        ))
        .service(get(
            "/{level:instances}/{id}/header",
            web::get().to(meta_header),
        ))
        .service(get(
            "/{level:instances}/{id}/content{tail:(/.*)?}",
            web::get().to(content),
        ))
        .service(get("/{level:instances}/{id}/file", web::get().to(file)))
        .service(get("/{level:instances}/{id}/pdf", web::get().to(pdf)))
        .service(get("/{level:instances}/{id}/frames", web::get().to(frames)))
        .service(get(
            "/{level:instances}/{id}/frames/{frame}",
            web::get().to(frame_operations),
        ))
        .service(get(
            "/{level:patients|studies|series|instances}/{id}/module",
            web::get().to(module),
        ))
        .service(get(
            "/{level:studies}/{id}/module-patient",
            web::get().to(module),
        ))
        .service(get(
            "/{level:patients|studies|series}/{id}/shared-tags",
            web::get().to(shared_tags),
        ))
        .service(get(
            "/{level:patients|studies|series}/{id}/instances-tags",
            web::get().to(instances_tags),
        ));
}

pub(super) fn to_format(f: TagFormat) -> Format {
    match f {
        TagFormat::Simplify => Format::Simplify,
        TagFormat::Short => Format::Short,
        TagFormat::Full => Format::Full,
    }
}

fn json_options(state: &AppState, req: &HttpRequest, transfer_syntax: &str) -> JsonOptions {
    let ignore = match arg(req, "ignore-length") {
        None => IgnoreLength::None,
        Some(v) if v.is_empty() || v.eq_ignore_ascii_case("all") => IgnoreLength::All,
        Some(v) => IgnoreLength::Tags(
            v.split(',')
                .flat_map(|s| s.split(';'))
                .filter_map(dicom::dictionary::parse_tag)
                .collect(),
        ),
    };
    JsonOptions {
        ignore_length: ignore,
        whole: flag(req, "whole").ok().flatten().unwrap_or(false),
        implicit_vr: transfer_syntax == "1.2.840.10008.1.2",
        ..super::queries::json_options(state)
    }
}

/// Parses the stored dataset of an instance (the file itself when `whole`).
async fn load(
    state: &AppState,
    row: &ResourceRow,
    whole: bool,
) -> ApiResult<(String, dicom::DicomFile)> {
    let (ts, bytes) = if whole {
        let (ts, _) = state.reader.header(row.id).await?;
        (ts, read_file(state, row).await?)
    } else {
        state.reader.header(row.id).await?
    };
    // The stored header stops before Pixel Data: put the element back (without its value),
    // as Orthanc lists it.
    let file_size = state
        .reader
        .attachments(row.id)
        .await?
        .into_iter()
        .find(|a| a.file_type == 1)
        .map(|a| a.uncompressed_size);
    let truncated = !whole && file_size.is_some_and(|size| (bytes.len() as u64) < size);
    let mut file = web::block(move || dicom::parse(&bytes, &ParseOptions::default()))
        .await?
        .map_err(|e| ApiError::new(OrthancCode::BadFileFormat, e.to_string()))?;
    if truncated && file.dataset.get(dicom::parse::PIXEL_DATA).is_none() {
        file.dataset.elements.push(dicom::Element {
            tag: dicom::parse::PIXEL_DATA,
            vr: dicom::VR::OW,
            value: dicom::Value::Skipped { length: 0 },
        });
    }
    Ok((ts, file))
}

/// Reads the DICOM file of an instance.
pub async fn read_file(state: &AppState, row: &ResourceRow) -> ApiResult<Vec<u8>> {
    let att = state
        .reader
        .attachments(row.id)
        .await?
        .into_iter()
        .find(|a| a.file_type == 1)
        .ok_or_else(|| ApiError::inexistent_item("No DICOM attachment"))?;
    let storage = state.storage.clone();
    let compression = if att.compression == 2 {
        StoredCompression::ZlibWithSize
    } else {
        StoredCompression::None
    };
    Ok(web::block(move || storage.read(&att.uuid, compression)).await??)
}

async fn instance_json(
    state: &AppState,
    req: &HttpRequest,
    row: &ResourceRow,
    format: TagFormat,
) -> ApiResult<Value> {
    let whole = flag(req, "whole")?.unwrap_or(false);
    let (ts, file) = load(state, row, whole).await?;
    let opts = json_options(state, req, &ts);
    let format = to_format(format);
    Ok(web::block(move || dicom::to_orthanc_json(&file.dataset, format, &opts)).await?)
}

async fn tags(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let row = lookup(&state, &req).await?;
    let format = TagFormat::from_request(&req, TagFormat::Full)?;
    Ok(Answer::Json(
        instance_json(&state, &req, &row, format).await?,
    ))
}

async fn simplified_tags(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let row = lookup(&state, &req).await?;
    Ok(Answer::Json(
        instance_json(&state, &req, &row, TagFormat::Simplify).await?,
    ))
}

async fn meta_header(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let row = lookup(&state, &req).await?;
    let format = TagFormat::from_request(&req, TagFormat::Full)?;
    let (ts, file) = load(&state, &row, false).await?;
    let opts = json_options(&state, &req, &ts).for_header();
    Ok(Answer::Json(dicom::to_orthanc_json(
        &file.meta,
        to_format(format),
        &opts,
    )))
}

async fn content(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let row = lookup(&state, &req).await?;
    let tail = req.match_info().get("tail").unwrap_or_default().to_string();
    let parts: Vec<&str> = tail.split('/').filter(|s| !s.is_empty()).collect();
    let needs_pixels = parts.first().and_then(|p| dicom::dictionary::parse_tag(p))
        == Some(dicom::parse::PIXEL_DATA);
    let (_, file) = if needs_pixels {
        let bytes = read_file(&state, &row).await?;
        let f = web::block(move || dicom::parse(&bytes, &ParseOptions::default()))
            .await?
            .map_err(|e| ApiError::new(OrthancCode::BadFileFormat, e.to_string()))?;
        (String::new(), f)
    } else {
        load(&state, &row, true).await?
    };
    match browse(&file.dataset, &parts) {
        Some(ContentAnswer::List(l)) => Ok(Answer::Json(json!(l))),
        Some(ContentAnswer::Bytes(b)) => Ok(Answer::Bytes(b, "application/octet-stream")),
        None => Err(ApiError::unknown_resource()),
    }
}

async fn file(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let row = lookup(&state, &req).await?;
    let accept = accept_of(&req);
    let mut bytes = read_file(&state, &row).await?;
    if let (Some(ts), quality) = super::jobs::transcoding(&req, &Value::Null)? {
        bytes = web::block(move || pacsnode_actors::transcode::transcode(&bytes, &ts, quality))
            .await?
            .map_err(|e| ApiError::new(OrthancCode::NotImplemented, e.to_string()))?;
    }
    let wants_json =
        accept.contains("application/dicom+json") || accept.contains("application/json");
    if wants_json || accept.contains("application/dicom+xml") {
        let (ts, _) = state.reader.header(row.id).await?;
        let opts = DicomWebOptions {
            default_encoding: *state
                .runtime
                .default_encoding
                .read()
                .unwrap_or_else(|e| e.into_inner()),
            dictionary: state.dictionary.clone(),
            implicit_vr: ts == "1.2.840.10008.1.2",
            ..Default::default()
        };
        let parsed = bytes.clone();
        let rendered = web::block(move || {
            let file = dicom::parse(&parsed, &ParseOptions::default()).ok()?;
            Some(if wants_json {
                dicom::try_to_dicomweb_json(&file.dataset, &opts)
                    .map(|v| (v.to_string(), "application/dicom+json"))
            } else {
                Some((
                    dicom::to_dicomweb_xml(&file.dataset, &opts),
                    "application/dicom+xml",
                ))
            })
        })
        .await?;
        // Where Orthanc cannot convert, it answers the DICOM file itself.
        if let Some(Some((body, content_type))) = rendered {
            return Ok(HttpResponse::Ok().content_type(content_type).body(body));
        }
    }
    let mut res = HttpResponse::Ok();
    res.content_type("application/dicom");
    if let Some(name) = arg(&req, "filename") {
        res.insert_header((header::CONTENT_DISPOSITION, super::jobs::disposition(&name)));
    }
    Ok(res.body(bytes))
}

async fn pdf(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let row = lookup(&state, &req).await?;
    let bytes = read_file(&state, &row).await?;
    let file = web::block(move || dicom::parse(&bytes, &ParseOptions::default()))
        .await?
        .map_err(|e| ApiError::new(OrthancCode::BadFileFormat, e.to_string()))?;
    let doc = file
        .dataset
        .get(dicom::Tag(0x0042, 0x0011))
        .and_then(|e| e.bytes())
        .ok_or_else(|| {
            ApiError::new(
                OrthancCode::BadFileFormat,
                "This instance does not contain a PDF document",
            )
        })?;
    let mut doc = doc.to_vec();
    while doc.last() == Some(&0) {
        doc.pop();
    }
    Ok(Answer::Bytes(doc, "application/pdf"))
}

async fn frames(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let row = lookup(&state, &req).await?;
    let n = row
        .main_tags
        .get((0x0028, 0x0008))
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1);
    Ok(Answer::Json(json!((0..n).collect::<Vec<_>>())))
}

async fn frame_operations(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    lookup(&state, &req).await?;
    Ok(Answer::Json(json!([
        "image-int16",
        "image-uint16",
        "image-uint8",
        "matlab",
        "numpy",
        "preview",
        "raw",
        "raw.gz",
        "rendered"
    ])))
}

/// One instance below a resource (itself for an instance).
async fn first_instance(state: &AppState, row: &ResourceRow) -> ApiResult<ResourceRow> {
    if row.level == Level::Instance {
        return Ok(row.clone());
    }
    state
        .reader
        .descendants(row.id, Level::Instance)
        .await?
        .into_iter()
        .next()
        .ok_or_else(ApiError::unknown_resource)
}

async fn module(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let row = lookup(&state, &req).await?;
    let level = if req.path().ends_with("module-patient") {
        Level::Patient
    } else {
        row.level
    };
    let instance = first_instance(&state, &row).await?;
    let format = TagFormat::from_request(&req, TagFormat::Full)?;
    let full = instance_json(&state, &req, &instance, TagFormat::Full).await?;
    let keys: Vec<String> = main_tags::for_level(level)
        .iter()
        .map(|m| main_tags::tag_key(m.tag))
        .collect();
    let kept: Map<String, Value> = full
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| keys.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    Ok(Answer::Json(reformat(Value::Object(kept), format)))
}

fn reformat(full: Value, format: TagFormat) -> Value {
    match format {
        TagFormat::Full => full,
        other => dicom::orthanc_json::simplify(&full, to_format(other)),
    }
}

async fn shared_tags(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let row = lookup(&state, &req).await?;
    let format = TagFormat::from_request(&req, TagFormat::Full)?;
    let instances = state.reader.descendants(row.id, Level::Instance).await?;
    let mut shared: Option<Map<String, Value>> = None;
    for instance in &instances {
        let full = instance_json(&state, &req, instance, TagFormat::Full).await?;
        let Value::Object(tags) = full else { continue };
        shared = Some(match shared {
            None => tags
                .into_iter()
                .filter(|(_, v)| v["Type"] == "String")
                .collect(),
            Some(s) => s
                .into_iter()
                .filter(|(k, v)| tags.get(k) == Some(v))
                .collect(),
        });
    }
    Ok(Answer::Json(reformat(
        Value::Object(shared.unwrap_or_default()),
        format,
    )))
}

async fn instances_tags(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let row = lookup(&state, &req).await?;
    let format = TagFormat::from_request(&req, TagFormat::Full)?;
    let mut out = Map::new();
    for instance in state.reader.descendants(row.id, Level::Instance).await? {
        out.insert(
            instance.public_id.clone(),
            instance_json(&state, &req, &instance, format).await?,
        );
    }
    Ok(Answer::Json(Value::Object(out)))
}
