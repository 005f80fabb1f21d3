//! [`PreviewActor`]: decodes a frame (native, RLE, JPEG through dicom-pixeldata) and encodes
//! it as PNG, JPEG or PAM, as `/preview` and `/image-uint8|uint16` answer. Runs on its own
//! bounded threads (a SyncArbiter): decoding and encoding never touch an async thread.

use std::sync::Arc;

use actix::prelude::*;
use dicom_pixeldata::{PhotometricInterpretation, PixelDecoder, PixelRepresentation};

/// What to compute from the pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// 8 bits, the dynamics stretched to [0, 255] (grayscale), or RGB as is.
    Preview,
    /// Values cropped to [0, 255].
    Uint8,
    /// Values cropped to [0, 65535].
    Uint16,
}

/// The image file format of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg(u8),
    Pam,
}

/// Errors of rendering.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// The frame cannot be decoded (unsupported transfer syntax, bad data...).
    #[error("cannot decode the frame: {0}")]
    Decode(String),
    /// No such frame.
    #[error("no frame {0} in this instance")]
    NoFrame(u32),
    /// This combination of image and format cannot be written (e.g. 16 bits as JPEG).
    #[error("{0}")]
    Unsupported(String),
}

/// Renders one frame of a DICOM file.
#[derive(Message)]
#[rtype(result = "Result<(Vec<u8>, &'static str), PreviewError>")]
pub struct RenderFrame {
    pub file: Arc<Vec<u8>>,
    pub frame: u32,
    pub kind: ImageKind,
    pub format: ImageFormat,
}

/// The rendering actor.
pub struct PreviewActor;

impl PreviewActor {
    pub fn start(threads: usize) -> Addr<PreviewActor> {
        SyncArbiter::start(threads.max(1), || PreviewActor)
    }
}

impl Actor for PreviewActor {
    type Context = SyncContext<Self>;
}

impl Handler<RenderFrame> for PreviewActor {
    type Result = Result<(Vec<u8>, &'static str), PreviewError>;

    fn handle(&mut self, msg: RenderFrame, _: &mut SyncContext<Self>) -> Self::Result {
        render(&msg.file, msg.frame, msg.kind, msg.format)
    }
}

/// A decoded frame: width, height, samples per pixel, and samples as i32.
struct Frame {
    width: u32,
    height: u32,
    samples: u16,
    values: Vec<i32>,
}

fn decode(file: &[u8], frame: u32) -> Result<Frame, PreviewError> {
    let start = if file.len() >= 132 && &file[128..132] == b"DICM" {
        128
    } else {
        0
    };
    let err = |e: &dyn std::fmt::Display| PreviewError::Decode(e.to_string());
    let obj = dicom_object::OpenFileOptions::new()
        .from_reader(&file[start..])
        .map_err(|e| err(&e))?;
    let frames = obj
        .element(dicom_dictionary_std::tags::NUMBER_OF_FRAMES)
        .ok()
        .and_then(|e| e.to_int::<u32>().ok())
        .unwrap_or(1);
    if frame >= frames.max(1) {
        return Err(PreviewError::NoFrame(frame));
    }
    let native = matches!(
        obj.meta().transfer_syntax().trim_end_matches('\0'),
        "1.2.840.10008.1.2"
            | "1.2.840.10008.1.2.1"
            | "1.2.840.10008.1.2.2"
            | "1.2.840.10008.1.2.1.99"
    );
    let photometric = obj
        .element(dicom_dictionary_std::tags::PHOTOMETRIC_INTERPRETATION)
        .ok()
        .and_then(|e| e.to_str().ok().map(|s| s.trim().to_string()))
        .unwrap_or_default();
    // As Orthanc without the GDCM plugin: palettes and native YCbCr are not rendered.
    if photometric == "PALETTE COLOR" || (native && photometric.starts_with("YBR")) {
        return Err(PreviewError::Unsupported(format!(
            "photometric interpretation {photometric}"
        )));
    }
    let decoded = obj.decode_pixel_data_frame(frame).map_err(|e| err(&e))?;
    let data = decoded.frame_data(0).map_err(|e| err(&e))?;
    let (bits, samples) = (decoded.bits_allocated(), decoded.samples_per_pixel());
    let signed = decoded.pixel_representation() == PixelRepresentation::Signed;
    let mut values: Vec<i32> = match bits {
        8 => data
            .iter()
            .map(|&b| if signed { b as i8 as i32 } else { b as i32 })
            .collect(),
        16 => data
            .chunks_exact(2)
            .map(|c| {
                let v = u16::from_le_bytes([c[0], c[1]]);
                if signed {
                    v as i16 as i32
                } else {
                    v as i32
                }
            })
            .collect(),
        other => return Err(PreviewError::Unsupported(format!("{other} bits allocated"))),
    };
    if samples == 1
        && *decoded.photometric_interpretation() == PhotometricInterpretation::Monochrome1
    {
        let max = values.iter().copied().max().unwrap_or(0);
        let min = values.iter().copied().min().unwrap_or(0);
        values.iter_mut().for_each(|v| *v = max + min - *v);
    }
    Ok(Frame {
        width: decoded.columns(),
        height: decoded.rows(),
        samples,
        values,
    })
}

/// Decodes and encodes one frame; answers the bytes and their MIME type.
pub fn render(
    file: &[u8],
    frame: u32,
    kind: ImageKind,
    format: ImageFormat,
) -> Result<(Vec<u8>, &'static str), PreviewError> {
    let f = decode(file, frame)?;
    if f.samples != 1 && f.samples != 3 {
        return Err(PreviewError::Unsupported(format!(
            "{} samples per pixel",
            f.samples
        )));
    }
    if f.samples == 3 && kind != ImageKind::Preview {
        return Err(PreviewError::Unsupported(
            "only the preview of a color image can be computed".into(),
        ));
    }
    let (min, max) = (
        f.values.iter().copied().min().unwrap_or(0),
        f.values.iter().copied().max().unwrap_or(0),
    );
    let (eight, sixteen): (Option<Vec<u8>>, Option<Vec<u16>>) = match kind {
        ImageKind::Preview if f.samples == 1 && max > min => {
            let scale = 255.0 / (max - min) as f64;
            (
                Some(
                    f.values
                        .iter()
                        .map(|v| ((v - min) as f64 * scale).round() as u8)
                        .collect(),
                ),
                None,
            )
        }
        ImageKind::Preview | ImageKind::Uint8 => (
            Some(f.values.iter().map(|v| (*v).clamp(0, 255) as u8).collect()),
            None,
        ),
        ImageKind::Uint16 => (
            None,
            Some(
                f.values
                    .iter()
                    .map(|v| (*v).clamp(0, 65535) as u16)
                    .collect(),
            ),
        ),
    };
    let rgb = f.samples == 3;
    match (format, eight, sixteen) {
        (ImageFormat::Png, Some(b), _) => png(f.width, f.height, rgb, png::BitDepth::Eight, &b),
        (ImageFormat::Png, None, Some(w)) => {
            let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_be_bytes()).collect();
            png(f.width, f.height, rgb, png::BitDepth::Sixteen, &bytes)
        }
        (ImageFormat::Jpeg(quality), Some(b), _) => {
            let mut out = Vec::new();
            let color = if rgb {
                jpeg_encoder::ColorType::Rgb
            } else {
                jpeg_encoder::ColorType::Luma
            };
            let (w, h) = (u16::try_from(f.width), u16::try_from(f.height));
            let (Ok(w), Ok(h)) = (w, h) else {
                return Err(PreviewError::Unsupported("image too large for JPEG".into()));
            };
            jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100))
                .encode(&b, w, h, color)
                .map_err(|e| PreviewError::Unsupported(e.to_string()))?;
            Ok((out, "image/jpeg"))
        }
        (ImageFormat::Jpeg(_), None, _) => Err(PreviewError::Unsupported(
            "JPEG cannot hold 16 bits per sample".into(),
        )),
        (ImageFormat::Pam, Some(b), _) => Ok((
            pam(f.width, f.height, rgb, 255, b),
            "image/x-portable-arbitrarymap",
        )),
        (ImageFormat::Pam, None, Some(w)) => Ok((
            pam(
                f.width,
                f.height,
                rgb,
                65535,
                w.iter().flat_map(|v| v.to_be_bytes()).collect(),
            ),
            "image/x-portable-arbitrarymap",
        )),
        (_, None, None) => Err(PreviewError::Unsupported("nothing to encode".into())),
    }
}

fn png(
    width: u32,
    height: u32,
    rgb: bool,
    depth: png::BitDepth,
    data: &[u8],
) -> Result<(Vec<u8>, &'static str), PreviewError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(if rgb {
            png::ColorType::Rgb
        } else {
            png::ColorType::Grayscale
        });
        enc.set_depth(depth);
        enc.set_compression(png::Compression::Fast);
        let mut writer = enc
            .write_header()
            .map_err(|e| PreviewError::Unsupported(e.to_string()))?;
        writer
            .write_image_data(data)
            .map_err(|e| PreviewError::Unsupported(e.to_string()))?;
    }
    Ok((out, "image/png"))
}

fn pam(width: u32, height: u32, rgb: bool, max: u32, data: Vec<u8>) -> Vec<u8> {
    let (depth, tuple) = if rgb { (3, "RGB") } else { (1, "GRAYSCALE") };
    let mut out = format!("P7\nWIDTH {width}\nHEIGHT {height}\nDEPTH {depth}\nMAXVAL {max}\nTUPLTYPE {tuple}\nENDHDR\n").into_bytes();
    out.extend(data);
    out
}
