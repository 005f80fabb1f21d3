//! New DICOM files from JSON (`/tools/create-dicom`): given tags, new identifiers, the
//! creation dates, and content from a data URI (a PNG or JPEG image as pixel data, a PDF or a
//! 3D model as an encapsulated document), as Orthanc makes them.

use base64::Engine;
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, Tag, VR};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use serde_json::Value;

use super::modify::{element, new_uid, ModifyError};

/// Why a file cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// Orthanc's `CreateDicomUseDataUriScheme` and kin: the content is not what it must be.
    #[error("{0}")]
    BadContent(String),
    /// A media type Orthanc cannot embed either.
    #[error("Unsupported MIME type for the content of a new DICOM file: {0}")]
    Unsupported(String),
    #[error("{0}")]
    BadValue(String),
    #[error("cannot write the DICOM file: {0}")]
    Write(String),
}

impl From<ModifyError> for CreateError {
    fn from(e: ModifyError) -> Self {
        CreateError::BadValue(e.to_string())
    }
}

const SOP_CLASS_UID: Tag = Tag(0x0008, 0x0016);
const SOP_INSTANCE_UID: Tag = Tag(0x0008, 0x0018);
const MODALITY: Tag = Tag(0x0008, 0x0060);
const SECONDARY_CAPTURE: &str = "1.2.840.10008.5.1.4.1.1.7";

/// A data URI: its media type (lower case) and decoded bytes.
pub fn decode_data_uri(s: &str) -> Option<(String, Vec<u8>)> {
    let rest = s.strip_prefix("data:")?;
    let (head, data) = rest.split_once(',')?;
    let (mime, base64) = match head.strip_suffix(";base64") {
        Some(m) => (m, true),
        None => (head, false),
    };
    let bytes = if base64 {
        base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .ok()?
    } else {
        data.as_bytes().to_vec()
    };
    Some((mime.to_ascii_lowercase(), bytes))
}

fn put(ds: &mut InMemDicomObject, t: Tag, vr: VR, v: impl Into<PrimitiveValue>) {
    ds.put(DataElement::new(t, vr, v.into()));
}

fn put_if_absent(ds: &mut InMemDicomObject, t: Tag, vr: VR, v: &str) {
    if ds.get(t).is_none() {
        put(ds, t, vr, v);
    }
}

/// A new data set with new identifiers (PatientID a UUID, the three UIDs), the given
/// `SpecificCharacterSet` term, and the creation dates (UTC).
pub fn new_dataset(
    charset_term: &str,
    with_series_dates: bool,
    with_study_dates: bool,
) -> InMemDicomObject {
    let mut ds = InMemDicomObject::new_empty();
    if !charset_term.is_empty() {
        put(&mut ds, Tag(0x0008, 0x0005), VR::CS, charset_term);
    }
    put(
        &mut ds,
        Tag(0x0010, 0x0020),
        VR::LO,
        uuid::Uuid::new_v4().to_string(),
    );
    put(&mut ds, Tag(0x0020, 0x000d), VR::UI, new_uid());
    put(&mut ds, Tag(0x0020, 0x000e), VR::UI, new_uid());
    put(&mut ds, SOP_INSTANCE_UID, VR::UI, new_uid());
    let now = chrono::Utc::now();
    let (date, time) = (
        now.format("%Y%m%d").to_string(),
        now.format("%H%M%S").to_string(),
    );
    let mut pairs = vec![(0x0022, 0x0032), (0x0023, 0x0033), (0x0012, 0x0013)];
    if with_series_dates {
        pairs.push((0x0021, 0x0031));
    }
    if with_study_dates {
        pairs.push((0x0020, 0x0030));
    }
    for (d, t) in pairs {
        put(&mut ds, Tag(0x0008, d), VR::DA, date.as_str());
        put(&mut ds, Tag(0x0008, t), VR::TM, time.as_str());
    }
    ds
}

/// Tags a user may set although the new data set has them already (Orthanc's list).
const OVERRIDABLE: [Tag; 11] = [
    Tag(0x0010, 0x0020),
    Tag(0x0008, 0x0022),
    Tag(0x0008, 0x0032),
    Tag(0x0008, 0x0023),
    Tag(0x0008, 0x0033),
    Tag(0x0008, 0x0012),
    Tag(0x0008, 0x0013),
    Tag(0x0008, 0x0021),
    Tag(0x0008, 0x0031),
    Tag(0x0008, 0x0020),
    Tag(0x0008, 0x0030),
];

/// Whether setting `t` would override a value the new data set has (inherited or generated)
/// without `Force`.
pub fn overrides(ds: &InMemDicomObject, t: Tag) -> bool {
    !OVERRIDABLE.contains(&t) && ds.get(t).is_some()
}

/// Sets one tag from its JSON value: a string (a data URI is decoded to bytes when
/// `binary`), `null`, or an array of items for a sequence.
pub fn set_tag(
    ds: &mut InMemDicomObject,
    t: Tag,
    value: &Value,
    binary: bool,
) -> Result<(), CreateError> {
    if let (true, Value::String(s)) = (binary, value) {
        if let Some((_, bytes)) = decode_data_uri(s) {
            let vr = match super::modify::vr_of(t) {
                VR::OW => VR::OW,
                VR::UN => VR::UN,
                _ => VR::OB,
            };
            put(ds, t, vr, bytes);
            return Ok(());
        }
    }
    ds.put(element(t, value)?);
    Ok(())
}

/// The transfer syntax of a JPEG image kept as it is (`Encapsulate`).
pub const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";

/// Embeds the content of a data URI: pixel data from a PNG or JPEG image (a JPEG kept as it
/// is, encapsulated, when `encapsulate`: the file must then be written in [`JPEG_BASELINE`]),
/// or an encapsulated PDF / STL / OBJ / MTL document.
pub fn embed(
    ds: &mut InMemDicomObject,
    data_uri: &str,
    encapsulate: bool,
) -> Result<(), CreateError> {
    let (mime, bytes) = decode_data_uri(data_uri).ok_or_else(|| {
        CreateError::BadContent(
            "The payload of the DICOM instance must be specified according to Data URI scheme"
                .into(),
        )
    })?;
    let document = |ds: &mut InMemDicomObject, class: &str, modality: &str| {
        let mut bytes = bytes.clone();
        if bytes.len() % 2 == 1 {
            bytes.push(0);
        }
        put(ds, Tag(0x0042, 0x0011), VR::OB, bytes);
        put(ds, Tag(0x0042, 0x0012), VR::LO, mime.as_str());
        put_if_absent(ds, SOP_CLASS_UID, VR::UI, class);
        put_if_absent(ds, MODALITY, VR::CS, modality);
    };
    match mime.as_str() {
        "image/png" => embed_image(ds, png_image(&bytes)?),
        "image/jpeg" if encapsulate => encapsulate_jpeg(ds, bytes),
        "image/jpeg" => embed_image(ds, jpeg_image(&bytes)?),
        "application/pdf" => {
            if !bytes.starts_with(b"%PDF-") {
                return Err(CreateError::BadContent("Not a PDF file".into()));
            }
            document(ds, "1.2.840.10008.5.1.4.1.1.104.1", "OT");
            put_if_absent(ds, Tag(0x0008, 0x0064), VR::CS, "WSD");
            Ok(())
        }
        "model/stl" => {
            document(ds, "1.2.840.10008.5.1.4.1.1.104.3", "M3D");
            Ok(())
        }
        "model/obj" => {
            document(ds, "1.2.840.10008.5.1.4.1.1.104.4", "M3D");
            Ok(())
        }
        "model/mtl" => {
            document(ds, "1.2.840.10008.5.1.4.1.1.104.5", "M3D");
            Ok(())
        }
        other => Err(CreateError::Unsupported(other.to_string())),
    }
}

/// A decoded image: size, samples per pixel (1 or 3), bits (8 or 16), little-endian samples.
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub samples: u16,
    pub bits: u16,
    pub data: Vec<u8>,
}

/// Images whose pixels would take more than this once decoded are refused before decoding
/// (a header can claim 65535 × 65535 pixels in a few bytes).
const MAX_DECODED_BYTES: u64 = 256 * 1024 * 1024;

fn check_size(width: u32, height: u32, bytes_per_pixel: u64) -> Result<(), CreateError> {
    let size = u64::from(width) * u64::from(height) * bytes_per_pixel;
    if width > 65535 || height > 65535 || size > MAX_DECODED_BYTES {
        return Err(CreateError::BadContent(format!(
            "The image is too large: {width} x {height}"
        )));
    }
    Ok(())
}

fn png_image(bytes: &[u8]) -> Result<Image, CreateError> {
    let bad = |e: &dyn std::fmt::Display| CreateError::BadContent(format!("Bad PNG image: {e}"));
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().map_err(|e| bad(&e))?;
    let header = reader.info();
    check_size(header.width, header.height, 8)?;
    let mut buf = vec![
        0;
        reader
            .output_buffer_size()
            .ok_or_else(|| bad(&"too large"))?
    ];
    let info = reader.next_frame(&mut buf).map_err(|e| bad(&e))?;
    buf.truncate(info.buffer_size());
    let bits: u16 = if info.bit_depth == png::BitDepth::Sixteen {
        16
    } else {
        8
    };
    let channels = info.color_type.samples();
    let bytes_per_sample = usize::from(bits / 8);
    // Alpha is dropped; grey stays one sample, colour becomes RGB; 16-bit samples become
    // little endian (PNG stores them big endian).
    let keep = match channels {
        1 | 2 => 1,
        _ => 3,
    };
    let mut data = Vec::with_capacity(buf.len());
    for px in buf.chunks_exact(channels * bytes_per_sample) {
        for s in px.chunks_exact(bytes_per_sample).take(keep) {
            if bits == 16 {
                data.extend_from_slice(&[s[1], s[0]]);
            } else {
                data.push(s[0]);
            }
        }
    }
    Ok(Image {
        width: info.width,
        height: info.height,
        samples: keep as u16,
        bits,
        data,
    })
}

fn jpeg_image(bytes: &[u8]) -> Result<Image, CreateError> {
    let bad = |e: &dyn std::fmt::Display| CreateError::BadContent(format!("Bad JPEG image: {e}"));
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.read_info().map_err(|e| bad(&e))?;
    let header = decoder.info().ok_or_else(|| bad(&"no header"))?;
    check_size(u32::from(header.width), u32::from(header.height), 4)?;
    let pixels = decoder.decode().map_err(|e| bad(&e))?;
    let info = decoder.info().ok_or_else(|| bad(&"no header"))?;
    let samples = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => 1,
        jpeg_decoder::PixelFormat::RGB24 => 3,
        other => return Err(bad(&format!("unsupported pixel format {other:?}"))),
    };
    Ok(Image {
        width: u32::from(info.width),
        height: u32::from(info.height),
        samples,
        bits: 8,
        data: pixels,
    })
}

/// Keeps a JPEG image as it is: one fragment of encapsulated pixel data, the image pixel
/// module read from its header.
fn encapsulate_jpeg(ds: &mut InMemDicomObject, mut bytes: Vec<u8>) -> Result<(), CreateError> {
    let mut decoder = jpeg_decoder::Decoder::new(&bytes[..]);
    decoder
        .read_info()
        .map_err(|e| CreateError::BadContent(format!("Bad JPEG image: {e}")))?;
    let info = decoder
        .info()
        .ok_or_else(|| CreateError::BadContent("Bad JPEG image".into()))?;
    let color = info.pixel_format != jpeg_decoder::PixelFormat::L8;
    let samples: u16 = if color { 3 } else { 1 };
    let photometric = if color { "YBR_FULL_422" } else { "MONOCHROME2" };
    put(ds, Tag(0x0028, 0x0002), VR::US, samples);
    put(ds, Tag(0x0028, 0x0004), VR::CS, photometric);
    if color {
        put(ds, Tag(0x0028, 0x0006), VR::US, 0_u16);
    }
    put(ds, Tag(0x0028, 0x0010), VR::US, info.height);
    put(ds, Tag(0x0028, 0x0011), VR::US, info.width);
    put(ds, Tag(0x0028, 0x0100), VR::US, 8_u16);
    put(ds, Tag(0x0028, 0x0101), VR::US, 8_u16);
    put(ds, Tag(0x0028, 0x0102), VR::US, 7_u16);
    put(ds, Tag(0x0028, 0x0103), VR::US, 0_u16);
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    let fragments = dicom_core::value::PixelFragmentSequence::new(Vec::<u32>::new(), vec![bytes]);
    ds.put(DataElement::new(Tag(0x7fe0, 0x0010), VR::OB, fragments));
    Ok(())
}

/// Sets the image pixel module from a decoded image.
pub fn embed_image(ds: &mut InMemDicomObject, img: Image) -> Result<(), CreateError> {
    let too_large = || CreateError::BadContent("The image is too large".into());
    let rows = u16::try_from(img.height).map_err(|_| too_large())?;
    let columns = u16::try_from(img.width).map_err(|_| too_large())?;
    let photometric = if img.samples == 1 {
        "MONOCHROME2"
    } else {
        "RGB"
    };
    put(ds, Tag(0x0028, 0x0002), VR::US, img.samples);
    put(ds, Tag(0x0028, 0x0004), VR::CS, photometric);
    if img.samples > 1 {
        put(ds, Tag(0x0028, 0x0006), VR::US, 0_u16);
    }
    put(ds, Tag(0x0028, 0x0010), VR::US, rows);
    put(ds, Tag(0x0028, 0x0011), VR::US, columns);
    put(ds, Tag(0x0028, 0x0100), VR::US, img.bits);
    put(ds, Tag(0x0028, 0x0101), VR::US, img.bits);
    put(ds, Tag(0x0028, 0x0102), VR::US, img.bits - 1);
    put(ds, Tag(0x0028, 0x0103), VR::US, 0_u16);
    let mut data = img.data;
    if data.len() % 2 == 1 {
        data.push(0);
    }
    let vr = if img.bits == 16 { VR::OW } else { VR::OB };
    put(ds, Tag(0x7fe0, 0x0010), vr, data);
    Ok(())
}

/// The Part 10 file of a data set: explicit VR little endian, or JPEG baseline when its
/// pixel data is an encapsulated JPEG.
pub fn to_file(ds: InMemDicomObject) -> Result<Vec<u8>, CreateError> {
    let encapsulated = ds
        .get(Tag(0x7fe0, 0x0010))
        .is_some_and(|e| matches!(e.value(), dicom_core::DicomValue::PixelSequence(_)));
    let syntax = if encapsulated {
        JPEG_BASELINE
    } else {
        "1.2.840.10008.1.2.1"
    };
    let text = |t: Tag| {
        ds.get(t)
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
            .filter(|s| !s.is_empty())
    };
    let class = text(SOP_CLASS_UID).unwrap_or_else(|| SECONDARY_CAPTURE.to_string());
    let sop = text(SOP_INSTANCE_UID).unwrap_or_default();
    let file = ds
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(syntax)
                .media_storage_sop_class_uid(class)
                .media_storage_sop_instance_uid(sop),
        )
        .map_err(|e| CreateError::Write(e.to_string()))?;
    let mut out = Vec::new();
    file.write_all(&mut out)
        .map_err(|e| CreateError::Write(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_images_are_refused_before_decoding() {
        // A PNG header claiming 65535 x 8193 RGBA pixels of 16 bits.
        let png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA//8AACABEAYAAACUhg7WAAAADUlEQVR42mNgGAWDEwAAAZAAAbxd4WAAAAAASUVORK5CYII=";
        let mut ds = new_dataset("", false, false);
        let t = std::time::Instant::now();
        assert!(matches!(
            embed(&mut ds, png, false),
            Err(CreateError::BadContent(_))
        ));
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn data_uris_are_decoded() {
        let (mime, bytes) = decode_data_uri("data:Application/PDF;base64,JVBERi0=").unwrap();
        assert_eq!(
            (mime.as_str(), bytes.as_slice()),
            ("application/pdf", &b"%PDF-"[..])
        );
        assert!(decode_data_uri("hello").is_none());
    }

    #[test]
    fn a_png_becomes_pixel_data() {
        // 5x5 red dot, RGBA (the PNG of Orthanc's test_create).
        let uri = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAUAAAAFCAYAAACNbyblAAAAHElEQVQI12P4//8/w38GIAXDIBKE0DHxgljNBAAO9TXL0Y4OHwAAAABJRU5ErkJggg==";
        let mut ds = new_dataset("ISO_IR 100", true, true);
        embed(&mut ds, uri, false).unwrap();
        let get = |g, e| ds.get(Tag(g, e)).unwrap().to_int::<u32>().unwrap();
        assert_eq!(
            (
                get(0x0028, 0x0010),
                get(0x0028, 0x0011),
                get(0x0028, 0x0002)
            ),
            (5, 5, 3)
        );
        assert_eq!(
            ds.get(Tag(0x7fe0, 0x0010))
                .unwrap()
                .to_bytes()
                .unwrap()
                .len(),
            76
        );
        assert!(to_file(ds).unwrap().len() > 200);
    }
}
