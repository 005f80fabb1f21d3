//! Decoded images: `/instances/{id}/preview`, `/image-uint8`, `/image-uint16`, and the same
//! per frame, as PNG (default), JPEG (`Accept: image/jpeg`, `?quality=`) or PAM.

use std::sync::Arc;

use actix_web::{web, HttpRequest};
use pacsnode_actors::preview::{ImageFormat, ImageKind, PreviewError, RenderFrame};

use super::error::{ApiError, ApiResult, OrthancCode};
use super::middleware::not_allowed;
use super::resources::lookup;
use super::respond::{accept_of, arg, Answer};
use super::tags::read_file;
use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    for op in ["preview", "image-uint8", "image-uint16"] {
        for prefix in ["/instances/{id}", "/instances/{id}/frames/{frame}"] {
            cfg.service(
                web::resource(format!("{prefix}/{op}"))
                    .route(web::get().to(image))
                    .default_service(not_allowed("GET")),
            );
        }
    }
}

fn format_of(req: &HttpRequest) -> ApiResult<ImageFormat> {
    let accept = accept_of(req);
    let known = [
        "image/png",
        "image/jpeg",
        "image/x-portable-arbitrarymap",
        "image/*",
        "*/*",
    ];
    let acceptable = accept.trim().is_empty()
        || accept
            .split(',')
            .any(|t| known.iter().any(|k| t.trim().starts_with(k)));
    if !acceptable {
        return Err(ApiError::new(
            OrthancCode::NotAcceptable,
            format!("Cannot produce an image for: {accept}"),
        ));
    }
    if accept.contains("image/jpeg") {
        let quality = match arg(req, "quality") {
            Some(q) => q
                .parse::<u8>()
                .ok()
                .filter(|q| (1..=100).contains(q))
                .ok_or_else(|| {
                    ApiError::new(
                        OrthancCode::ParameterOutOfRange,
                        "Bad quality for a JPEG encoding",
                    )
                })?,
            None => 90,
        };
        return Ok(ImageFormat::Jpeg(quality));
    }
    if accept.contains("image/x-portable-arbitrarymap") {
        return Ok(ImageFormat::Pam);
    }
    Ok(ImageFormat::Png)
}

async fn image(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let row = lookup(&state, &req).await?;
    let frame: u32 = match req.match_info().get("frame") {
        Some(f) => f
            .parse()
            .map_err(|_| ApiError::new(OrthancCode::ParameterOutOfRange, "Bad frame number"))?,
        None => 0,
    };
    let kind = match req.path().rsplit('/').next() {
        Some("image-uint8") => ImageKind::Uint8,
        Some("image-uint16") => ImageKind::Uint16,
        _ => ImageKind::Preview,
    };
    let format = format_of(&req)?;
    let file = Arc::new(read_file(&state, &row).await?);
    let rendered = state
        .preview
        .send(RenderFrame {
            file,
            frame,
            kind,
            format,
        })
        .await?;
    match rendered {
        Ok((bytes, content_type)) => Ok(Answer::Bytes(bytes, content_type)),
        Err(PreviewError::NoFrame(n)) => Err(ApiError::inexistent_item(format!(
            "No frame {n} in this instance"
        ))),
        Err(e @ (PreviewError::Decode(_) | PreviewError::Unsupported(_))) => Err(ApiError::new(
            OrthancCode::IncompatibleImageFormat,
            e.to_string(),
        )),
    }
}
