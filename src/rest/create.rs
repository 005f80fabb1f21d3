//! `POST /tools/create-dicom`: a new instance (or a series, one instance per item of
//! `Content`) made from JSON tags and a data URI, stored like an upload. With `Parent`, the
//! new instance joins that patient, study or series and copies its modules' tags.

use actix_web::{web, HttpRequest};
use pacsnode_actors::model::dicom::create::{self, CreateError};
use pacsnode_actors::model::dicom::modify::open_file;
use pacsnode_actors::model::dicom::{charset, PrivateDictionary, Tag};
use pacsnode_actors::model::{main_tags, Level};
use serde_json::{json, Map, Value};

use super::error::{ApiError, ApiResult, OrthancCode};
use super::middleware::not_allowed;
use super::respond::Answer;
use super::tags::read_file;
use super::tools::parse_json;
use super::upload::{answer_of, origin_of, store};
use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tools/create-dicom")
            .route(web::post().to(create_dicom))
            .default_service(not_allowed("POST")),
    );
}

const SPECIFIC_CHARACTER_SET: Tag = Tag(0x0008, 0x0005);
const PIXEL_DATA: Tag = Tag(0x7fe0, 0x0010);

fn bad(code: OrthancCode, msg: impl Into<String>) -> ApiError {
    ApiError::new(code, msg)
}

fn from_create(e: CreateError) -> ApiError {
    match e {
        CreateError::BadContent(m) => bad(OrthancCode::BadFileFormat, m),
        CreateError::Unsupported(m) => bad(
            OrthancCode::NotImplemented,
            format!("Unsupported MIME type for the content of a new DICOM file: {m}"),
        ),
        CreateError::BadValue(m) => bad(OrthancCode::BadParameterType, m),
        CreateError::Write(m) => bad(OrthancCode::InternalError, m),
    }
}

fn flag(body: &Value, key: &str, default: bool) -> ApiResult<bool> {
    match body.get(key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::bad_request(format!(
            "\"{key}\" must be a Boolean"
        ))),
    }
}

/// The options that apply to every instance made by one request.
#[derive(Clone, Copy)]
struct Options {
    binary: bool,
    force: bool,
    /// A JPEG is kept as it is, encapsulated (`Encapsulate`).
    encapsulate: bool,
}

/// Sets the user's tags on a new data set, with Orthanc's rules.
fn inject(
    dictionary: &PrivateDictionary,
    ds: &mut dicom_object::InMemDicomObject,
    tags: &Value,
    o: &Options,
) -> ApiResult<()> {
    let Value::Object(tags) = tags else {
        return Err(ApiError::bad_request("\"Tags\" must be a JSON object"));
    };
    for (name, value) in tags {
        let t = super::modify::tag_named(dictionary, name)?;
        if t == SPECIFIC_CHARACTER_SET {
            continue;
        }
        if !o.force && create::overrides(ds, t) {
            return Err(bad(
                OrthancCode::CreateDicomOverrideTag,
                format!("Trying to override a value inherited from a parent module: {name}"),
            ));
        }
        if t == PIXEL_DATA {
            return Err(bad(
                OrthancCode::CreateDicomUseContent,
                "Use \"Content\" to inject an image into a new DICOM instance",
            ));
        }
        create::set_tag(ds, t, value, o.binary).map_err(from_create)?;
    }
    Ok(())
}

/// Sets the user's tags, embeds the content, numbers the instance (its place in a series
/// from a `Content` array) and writes the file: blocking (images are decoded here), to run in
/// `web::block`.
fn build(
    dictionary: &PrivateDictionary,
    mut ds: dicom_object::InMemDicomObject,
    tags: Option<&Value>,
    content: Option<&str>,
    o: Options,
    number: Option<usize>,
) -> ApiResult<Vec<u8>> {
    if let Some(tags) = tags {
        inject(dictionary, &mut ds, tags, &o)?;
    }
    if let Some(uri) = content {
        create::embed(&mut ds, uri, o.encapsulate).map_err(from_create)?;
    }
    if let Some(n) = number {
        ds.put_str(Tag(0x0020, 0x0013), dicom_core::VR::IS, n.to_string());
        ds.put(dicom_core::DataElement::new(
            Tag(0x0054, 0x1330),
            dicom_core::VR::US,
            dicom_core::PrimitiveValue::from(n as u16),
        ));
    }
    create::to_file(ds).map_err(from_create)
}

/// The tags of the modules of `parent` and its ancestors, read from one of its instances,
/// with its character set.
async fn parent_tags(
    state: &AppState,
    parent: &str,
) -> ApiResult<(
    Level,
    Vec<dicom_core::DataElement<dicom_object::InMemDicomObject>>,
)> {
    let Some(row) = state.reader.resource_any(parent).await? else {
        return Err(bad(
            OrthancCode::CreateDicomBadParent,
            format!("Trying to attach a new DICOM instance to an inexistent resource: {parent}"),
        ));
    };
    if row.level == Level::Instance {
        return Err(bad(
            OrthancCode::CreateDicomParentIsInstance,
            "Trying to attach a new DICOM instance to an instance (must be a series, study or patient)",
        ));
    }
    let sibling = state
        .reader
        .descendants(row.id, Level::Instance)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| bad(OrthancCode::InternalError, "A resource without instances"))?;
    let file = read_file(state, &sibling).await?;
    let levels: Vec<Level> = Level::ALL.into_iter().filter(|l| *l <= row.level).collect();
    let elements = web::block(move || {
        let obj = open_file(&file).map_err(|e| bad(OrthancCode::BadFileFormat, e.to_string()))?;
        let mut wanted: Vec<Tag> = vec![SPECIFIC_CHARACTER_SET];
        for l in levels {
            wanted.extend(
                main_tags::for_level(l)
                    .iter()
                    .map(|m| Tag(m.tag.0, m.tag.1)),
            );
        }
        Ok::<_, ApiError>(
            wanted
                .into_iter()
                .filter_map(|t| obj.get(t).filter(|e| e.vr() != dicom_core::VR::SQ).cloned())
                .collect(),
        )
    })
    .await??;
    Ok((row.level, elements))
}

/// The `SpecificCharacterSet` term of `Tags`, or of `DefaultEncoding`.
fn charset_term(state: &AppState, tags: &Map<String, Value>) -> ApiResult<String> {
    match tags
        .get("SpecificCharacterSet")
        .or_else(|| tags.get("0008,0005"))
    {
        Some(Value::String(term)) => {
            if charset::Encoding::from_specific_character_set(term).is_none() {
                return Err(bad(
                    OrthancCode::ParameterOutOfRange,
                    format!("Unknown specific character set: {term}"),
                ));
            }
            Ok(term.clone())
        }
        Some(_) => Err(ApiError::bad_request(
            "SpecificCharacterSet must be a string",
        )),
        None => Ok(super::queries::charset_term(state).to_string()),
    }
}

async fn create_dicom(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<Answer> {
    let body = parse_json(&body)?;
    let Value::Object(request) = &body else {
        return Err(ApiError::bad_request("The body must be a JSON object"));
    };
    let origin = origin_of(&req);
    let Some(tags) = request.get("Tags") else {
        return create_v1(&state, request, origin).await;
    };
    let Value::Object(tag_map) = tags else {
        return Err(ApiError::bad_request("\"Tags\" must be a JSON object"));
    };
    let options = Options {
        binary: flag(&body, "InterpretBinaryTags", true)?,
        force: flag(&body, "Force", false)?,
        encapsulate: flag(&body, "Encapsulate", false)?,
    };
    if request
        .get("PrivateCreator")
        .is_some_and(|v| !v.is_string())
    {
        return Err(ApiError::bad_request("\"PrivateCreator\" must be a string"));
    }
    let term = charset_term(&state, tag_map)?;
    let (parent_level, inherited) = match request.get("Parent") {
        None => (None, Vec::new()),
        Some(Value::String(p)) => {
            let (l, e) = parent_tags(&state, p).await?;
            (Some(l), e)
        }
        Some(_) => return Err(ApiError::bad_request("\"Parent\" must be a string")),
    };
    let series_dates = parent_level != Some(Level::Series);
    let study_dates = matches!(parent_level, None | Some(Level::Patient));
    let mut ds = create::new_dataset(&term, series_dates, study_dates);
    for e in inherited {
        ds.put(e);
    }
    let content = match request.get("Content") {
        None => None,
        Some(Value::String(uri)) => Some(uri.clone()),
        Some(Value::Array(items)) if !items.is_empty() => {
            let dictionary = state.dictionary.clone();
            let tags = tags.clone();
            let ds = web::block(move || inject(&dictionary, &mut ds, &tags, &options).map(|()| ds))
                .await??;
            return create_series(&state, ds, items, options, origin).await;
        }
        Some(Value::Array(_)) => None,
        Some(_) => {
            return Err(bad(
                OrthancCode::CreateDicomUseDataUriScheme,
                "The payload of the DICOM instance must be specified according to Data URI scheme",
            ))
        }
    };
    let (dictionary, tags) = (state.dictionary.clone(), tags.clone());
    let file = web::block(move || {
        build(
            &dictionary,
            ds,
            Some(&tags),
            content.as_deref(),
            options,
            None,
        )
    })
    .await??;
    let stored = store(&state, file, origin).await?;
    Ok(Answer::Json(answer_of(&stored)))
}

/// `Content` as an array: one instance per item (a data URI, or `{"Content", "Tags"}`), in
/// one new series; answers the series.
async fn create_series(
    state: &AppState,
    base: dicom_object::InMemDicomObject,
    items: &[Value],
    options: Options,
    origin: pacsnode_actors::ingest::Origin,
) -> ApiResult<Answer> {
    let mut series = None;
    for (i, item) in items.iter().enumerate() {
        let mut ds = base.clone();
        ds.put_str(
            Tag(0x0008, 0x0018),
            dicom_core::VR::UI,
            pacsnode_actors::model::dicom::modify::new_uid(),
        );
        ds.put_str(
            Tag(0x0020, 0x1002),
            dicom_core::VR::IS,
            items.len().to_string(),
        );
        ds.put_str(Tag(0x0020, 0x0105), dicom_core::VR::IS, "1");
        let (tags, payload) = match item {
            Value::String(s) => (None, s.clone()),
            Value::Object(o) => {
                let payload = o.get("Content").and_then(Value::as_str).ok_or_else(|| {
                    bad(
                        OrthancCode::CreateDicomNoPayload,
                        "No payload is present for one instance in the series",
                    )
                })?;
                (o.get("Tags").cloned(), payload.to_string())
            }
            _ => return Err(bad(
                OrthancCode::CreateDicomUseDataUriScheme,
                "The payload of the DICOM instance must be specified according to Data URI scheme",
            )),
        };
        let dictionary = state.dictionary.clone();
        let file = web::block(move || {
            build(
                &dictionary,
                ds,
                tags.as_ref(),
                Some(&payload),
                options,
                Some(i + 1),
            )
        })
        .await??;
        let stored = store(state, file, origin.clone()).await?;
        series = Some(stored.ids.series);
    }
    let id = series.unwrap_or_default();
    Ok(Answer::Json(json!({
        "ID": id,
        "Path": format!("/series/{id}"),
        "Status": "Success",
    })))
}

/// The form of Orthanc before 0.9.4: every member is a tag with a string value, and
/// `PixelData` a data URI.
async fn create_v1(
    state: &AppState,
    request: &Map<String, Value>,
    origin: pacsnode_actors::ingest::Origin,
) -> ApiResult<Answer> {
    let term = charset_term(state, &Map::new())?;
    let ds = create::new_dataset(&term, true, true);
    let (dictionary, request) = (state.dictionary.clone(), request.clone());
    let file = web::block(move || v1_file(&dictionary, ds, &request)).await??;
    let stored = store(state, file, origin).await?;
    Ok(Answer::Json(answer_of(&stored)))
}

/// The file of the older form (blocking: the pixel data may be an image to decode).
fn v1_file(
    dictionary: &PrivateDictionary,
    mut ds: dicom_object::InMemDicomObject,
    request: &Map<String, Value>,
) -> ApiResult<Vec<u8>> {
    for (name, value) in request {
        let Value::String(s) = value else {
            return Err(bad(
                OrthancCode::CreateDicomNotString,
                "Only string values are supported when creating DICOM instances",
            ));
        };
        let t = super::modify::tag_named(dictionary, name)?;
        if t == PIXEL_DATA {
            create::embed(&mut ds, s, false).map_err(from_create)?;
        } else {
            create::set_tag(&mut ds, t, value, false).map_err(from_create)?;
        }
    }
    create::to_file(ds).map_err(from_create)
}
