//! `/instances/{id}/frames/{n}/raw` and `raw.gz`: a frame's bytes exactly as stored (one
//! slice of native Pixel Data, or the fragments of an encapsulated frame).

use std::io::Write;

use actix_web::{web, HttpRequest};
use pacsnode_actors::model::dicom::{self, DicomFile, ParseOptions, Tag, Value};

use super::error::{ApiError, ApiResult, OrthancCode};
use super::middleware::not_allowed;
use super::resources::lookup;
use super::respond::Answer;
use super::tags::read_file;
use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    for op in ["raw", "raw.gz"] {
        cfg.service(
            web::resource(format!("/instances/{{id}}/frames/{{frame}}/{op}"))
                .route(web::get().to(raw_frame))
                .default_service(not_allowed("GET")),
        );
    }
}

fn number(file: &DicomFile, tag: (u16, u16)) -> Option<u64> {
    let e = file.dataset.get(Tag(tag.0, tag.1))?;
    let b = e.bytes()?;
    match b.len() {
        2 => Some(u16::from_le_bytes([b[0], b[1]]) as u64),
        4 => Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64),
        _ => String::from_utf8_lossy(b)
            .trim_matches(|c: char| c.is_whitespace() || c == '\0')
            .parse()
            .ok(),
    }
}

/// The MIME type Orthanc gives to a frame of this transfer syntax.
fn content_type(ts: &str) -> &'static str {
    match ts {
        "1.2.840.10008.1.2.4.50"
        | "1.2.840.10008.1.2.4.51"
        | "1.2.840.10008.1.2.4.57"
        | "1.2.840.10008.1.2.4.70" => "image/jpeg",
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => "image/jls",
        "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" => "image/jp2",
        "1.2.840.10008.1.2.4.100" | "1.2.840.10008.1.2.4.101" => "video/mpeg",
        "1.2.840.10008.1.2.4.102"
        | "1.2.840.10008.1.2.4.103"
        | "1.2.840.10008.1.2.4.104"
        | "1.2.840.10008.1.2.4.105"
        | "1.2.840.10008.1.2.4.106" => "video/mp4",
        _ => "application/octet-stream",
    }
}

/// The bytes of frame `index`, or `None` when there is no such frame.
fn frame(file: &DicomFile, index: u64) -> Option<Vec<u8>> {
    let frames = number(file, (0x0028, 0x0008)).unwrap_or(1).max(1);
    if index >= frames {
        return None;
    }
    match &file.dataset.get(dicom::parse::PIXEL_DATA)?.value {
        Value::Bytes(all) => {
            let size = all.len() as u64 / frames;
            let start = (index * size) as usize;
            all.get(start..start + size as usize).map(<[u8]>::to_vec)
        }
        Value::Fragments { fragments, .. } if frames == 1 => Some(fragments.concat()),
        Value::Fragments { fragments, .. } if fragments.len() as u64 == frames => {
            fragments.get(index as usize).cloned()
        }
        _ => None,
    }
}

async fn raw_frame(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let row = lookup(&state, &req).await?;
    let index: u64 = req
        .match_info()
        .get("frame")
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| ApiError::new(OrthancCode::ParameterOutOfRange, "Bad frame number"))?;
    let gz = req.path().ends_with(".gz");
    let bytes = read_file(&state, &row).await?;
    let (data, ts) = web::block(move || {
        let file = dicom::parse(&bytes, &ParseOptions::default())
            .map_err(|e| ApiError::new(OrthancCode::BadFileFormat, e.to_string()))?;
        let data = frame(&file, index).ok_or_else(|| {
            ApiError::inexistent_item(format!("No frame {index} in this instance"))
        })?;
        Ok::<_, ApiError>((data, file.transfer_syntax))
    })
    .await??;
    if gz {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&data)
            .map_err(|e| ApiError::new(OrthancCode::InternalError, e.to_string()))?;
        let zipped = enc
            .finish()
            .map_err(|e| ApiError::new(OrthancCode::InternalError, e.to_string()))?;
        return Ok(Answer::Bytes(zipped, "application/gzip"));
    }
    Ok(Answer::Bytes(data, content_type(&ts)))
}
