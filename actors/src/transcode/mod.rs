//! Transcoding of a DICOM file to another transfer syntax (Orthanc's `Transcode` option of
//! peers and archives). Blocking code (decoding and encoding pixel data): call it from a
//! blocking thread.
//!
//! Native syntaxes (implicit, explicit little and big endian, deflated) and JPEG baseline
//! use the dicom-rs codecs; JPEG extended (…4.51) is written as baseline for 8-bit images
//! (process 1 is part of processes 2 and 4); JPEG lossless (…4.57, …4.70) by
//! [`lossless_jpeg`].

pub mod lossless_jpeg;

use dicom_core::value::PixelFragmentSequence;
use dicom_core::{DataElement, Length, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::Transcode;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";
const JPEG_LOSSLESS: &str = "1.2.840.10008.1.2.4.57";
const JPEG_LOSSLESS_SV1: &str = "1.2.840.10008.1.2.4.70";

/// Errors of transcoding.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    /// Not a transfer syntax UID this server knows.
    #[error("unknown transfer syntax: {0}")]
    UnknownSyntax(String),
    /// The file cannot be read, or its pixel data cannot be decoded or encoded so.
    #[error("cannot transcode to {0}: {1}")]
    Failed(String, String),
}

/// Whether `uid` is a lossy transfer syntax (JPEG baseline/extended, JPEG-LS near-lossless,
/// JPEG 2000).
pub fn is_lossy(uid: &str) -> bool {
    matches!(
        uid.trim_end_matches('\0'),
        JPEG_BASELINE | JPEG_EXTENDED | "1.2.840.10008.1.2.4.81" | "1.2.840.10008.1.2.4.91"
    )
}

/// Whether `uid` is a transfer syntax this server can write.
pub fn is_supported(uid: &str) -> bool {
    matches!(uid, JPEG_EXTENDED | JPEG_LOSSLESS | JPEG_LOSSLESS_SV1)
        || TransferSyntaxRegistry
            .get(uid)
            .is_some_and(|ts| !ts.is_encapsulated_pixel_data() || ts.uid() == JPEG_BASELINE)
}

/// The file (Part 10 bytes) in transfer syntax `target`; the same bytes if it already is.
/// `quality` (1–100) applies to the lossy JPEG syntaxes.
pub fn transcode(
    data: &[u8],
    target: &str,
    quality: Option<u8>,
) -> Result<Vec<u8>, TranscodeError> {
    let target = target.trim_end_matches('\0').trim();
    if !is_supported(target) {
        return Err(TranscodeError::UnknownSyntax(target.to_string()));
    }
    let failed = |e: &dyn std::fmt::Display| TranscodeError::Failed(target.into(), e.to_string());
    let start = if data.len() >= 132 && &data[128..132] == b"DICM" {
        128
    } else {
        0
    };
    let mut obj = OpenFileOptions::new()
        .from_reader(&data[start..])
        .map_err(|e| failed(&e))?;
    if obj.meta().transfer_syntax().trim_end_matches('\0') == target {
        return Ok(data.to_vec());
    }
    match target {
        JPEG_EXTENDED => {
            let bits = obj
                .element(tags::BITS_ALLOCATED)
                .ok()
                .and_then(|e| e.to_int::<u16>().ok());
            if bits != Some(8) {
                return Err(failed(&"only 8-bit images can be written as JPEG extended"));
            }
            to_syntax(&mut obj, JPEG_BASELINE, quality).map_err(|e| failed(&e))?;
            obj.meta_mut()
                .set_transfer_syntax(registered(JPEG_EXTENDED)?);
        }
        JPEG_LOSSLESS | JPEG_LOSSLESS_SV1 => {
            to_syntax(&mut obj, EXPLICIT_LE, None).map_err(|e| failed(&e))?;
            encode_lossless(&mut obj).map_err(|e| failed(&e))?;
            obj.meta_mut().set_transfer_syntax(registered(target)?);
        }
        _ => to_syntax(&mut obj, target, quality).map_err(|e| failed(&e))?,
    }
    let mut out = Vec::with_capacity(data.len());
    obj.write_all(&mut out).map_err(|e| failed(&e))?;
    Ok(out)
}

fn registered(uid: &str) -> Result<&'static dicom_encoding::TransferSyntax, TranscodeError> {
    TransferSyntaxRegistry
        .get(uid)
        .ok_or_else(|| TranscodeError::UnknownSyntax(uid.to_string()))
}

/// Transcodes with the dicom-rs codecs.
fn to_syntax(obj: &mut DefaultDicomObject, uid: &str, quality: Option<u8>) -> Result<(), String> {
    let ts = TransferSyntaxRegistry
        .get(uid)
        .ok_or_else(|| format!("unknown transfer syntax {uid}"))?;
    let mut options = dicom_encoding::adapters::EncodeOptions::new();
    options.quality = quality;
    obj.transcode_with_options(ts, options)
        .map_err(|e| e.to_string())
}

/// Replaces native pixel data (explicit little endian) with lossless JPEG fragments, one
/// per frame.
fn encode_lossless(obj: &mut DefaultDicomObject) -> Result<(), String> {
    let int = |tag| obj.element(tag).ok().and_then(|e| e.to_int::<usize>().ok());
    let rows = int(tags::ROWS).ok_or("no Rows")?;
    let columns = int(tags::COLUMNS).ok_or("no Columns")?;
    let samples = int(tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let allocated = int(tags::BITS_ALLOCATED).ok_or("no BitsAllocated")?;
    let stored = int(tags::BITS_STORED).unwrap_or(allocated);
    let frames = int(tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    let planar = int(tags::PLANAR_CONFIGURATION).unwrap_or(0);
    if !matches!(samples, 1 | 3) || !matches!(allocated, 8 | 16) || !(2..=16).contains(&stored) {
        return Err(format!(
            "unsupported image: {samples} samples of {allocated} bits ({stored} stored)"
        ));
    }
    let pixels = obj
        .element(tags::PIXEL_DATA)
        .map_err(|e| e.to_string())?
        .to_bytes()
        .map_err(|e| e.to_string())?
        .into_owned();
    let per_frame = rows * columns * samples * allocated / 8;
    if pixels.len() < per_frame * frames {
        return Err("pixel data shorter than its frames".into());
    }
    let mask = if stored == 16 {
        0xFFFF
    } else {
        (1u32 << stored) - 1
    };
    let mut fragments = Vec::with_capacity(frames);
    for f in 0..frames {
        let raw = &pixels[f * per_frame..(f + 1) * per_frame];
        let mut values: Vec<u16> = if allocated == 8 {
            raw.iter().map(|&b| b as u16).collect()
        } else {
            raw.chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect()
        };
        values
            .iter_mut()
            .for_each(|v| *v = (*v as u32 & mask) as u16);
        if samples == 3 && planar == 1 {
            let plane = rows * columns;
            values = (0..plane * 3)
                .map(|i| values[(i % 3) * plane + i / 3])
                .collect();
        }
        let mut fragment = lossless_jpeg::encode(&lossless_jpeg::Frame {
            rows,
            columns,
            samples,
            precision: stored as u8,
            values: &values,
        });
        if fragment.len() % 2 == 1 {
            fragment.push(0);
        }
        fragments.push(fragment);
    }
    obj.put(DataElement::new_with_len(
        tags::PIXEL_DATA,
        VR::OB,
        Length::UNDEFINED,
        PixelFragmentSequence::new(Vec::<u32>::new(), fragments),
    ));
    if samples == 3 {
        obj.put(DataElement::new(
            tags::PLANAR_CONFIGURATION,
            VR::US,
            PrimitiveValue::from(0u16),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_dictionary_std::uids;
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
    use dicom_pixeldata::PixelDecoder;

    /// A file with a `rows × columns` image of `bits`-bit samples (a gradient and noise).
    fn image(bits: u16, samples: u16) -> (Vec<u8>, Vec<u8>) {
        let (rows, columns) = (37u16, 53u16);
        let mut pixels = Vec::new();
        let mut seed = 7u32;
        for y in 0..rows as u32 {
            for x in 0..columns as u32 {
                for s in 0..samples as u32 {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    let v = (x * 37 + y * 11 + s * 50 + (seed >> 28)) % (1 << bits.min(12));
                    if bits == 8 {
                        pixels.push(v as u8);
                    } else {
                        pixels.extend_from_slice(&(v as u16).to_le_bytes());
                    }
                }
            }
        }
        let mut obj = InMemDicomObject::new_empty();
        let mut put = |tag, vr, value: PrimitiveValue| obj.put(DataElement::new(tag, vr, value));
        put(
            tags::SOP_CLASS_UID,
            VR::UI,
            uids::SECONDARY_CAPTURE_IMAGE_STORAGE.into(),
        );
        put(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4.5".into());
        put(tags::ROWS, VR::US, rows.into());
        put(tags::COLUMNS, VR::US, columns.into());
        put(tags::SAMPLES_PER_PIXEL, VR::US, samples.into());
        let photometric = if samples == 3 { "RGB" } else { "MONOCHROME2" };
        put(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, photometric.into());
        put(tags::BITS_ALLOCATED, VR::US, bits.into());
        put(tags::BITS_STORED, VR::US, bits.into());
        put(tags::HIGH_BIT, VR::US, (bits - 1).into());
        put(tags::PIXEL_REPRESENTATION, VR::US, 0u16.into());
        if samples == 3 {
            put(tags::PLANAR_CONFIGURATION, VR::US, 0u16.into());
        }
        let vr = if bits == 8 { VR::OB } else { VR::OW };
        put(tags::PIXEL_DATA, vr, PrimitiveValue::from(pixels.clone()));
        let file = obj
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(EXPLICIT_LE)
                    .media_storage_sop_class_uid(uids::SECONDARY_CAPTURE_IMAGE_STORAGE)
                    .media_storage_sop_instance_uid("1.2.3.4.5"),
            )
            .unwrap();
        let mut out = Vec::new();
        file.write_all(&mut out).unwrap();
        (out, pixels)
    }

    fn decoded(file: &[u8]) -> (String, Vec<u8>) {
        let obj = OpenFileOptions::new().from_reader(&file[128..]).unwrap();
        let ts = obj
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string();
        let pixels = obj.decode_pixel_data().unwrap().data().to_vec();
        (ts, pixels)
    }

    #[test]
    fn lossless_syntaxes_keep_every_pixel() {
        for (bits, samples) in [(8, 1), (16, 1), (8, 3)] {
            let (file, pixels) = image(bits, samples);
            for ts in [
                "1.2.840.10008.1.2",
                "1.2.840.10008.1.2.2",
                "1.2.840.10008.1.2.1.99",
                JPEG_LOSSLESS,
                JPEG_LOSSLESS_SV1,
            ] {
                let out = transcode(&file, ts, None).unwrap();
                let (got_ts, got) = decoded(&out);
                assert_eq!(got_ts, ts);
                // (an odd length is padded with a zero byte)
                assert!(
                    got.len() >= pixels.len() && got[..pixels.len()] == pixels[..],
                    "{bits} bits × {samples} to {ts}: pixels differ"
                );
            }
        }
    }

    #[test]
    fn lossy_syntaxes_are_close_and_quality_matters() {
        let (file, pixels) = image(8, 1);
        for ts in [JPEG_BASELINE, JPEG_EXTENDED] {
            let out = transcode(&file, ts, None).unwrap();
            let (got_ts, got) = decoded(&out);
            assert_eq!(got_ts, ts);
            let error: f64 = got
                .iter()
                .zip(&pixels)
                .map(|(a, b)| (*a as f64 - *b as f64).abs())
                .sum::<f64>()
                / pixels.len() as f64;
            assert!(error < 8.0, "mean error {error}");
        }
        let low = transcode(&file, JPEG_BASELINE, Some(20)).unwrap();
        let high = transcode(&file, JPEG_BASELINE, Some(95)).unwrap();
        assert!(low.len() < high.len());
    }

    #[test]
    fn unknown_or_unwritable_syntaxes_are_refused() {
        let (file, _) = image(8, 1);
        for ts in ["nope", "1.2.840.10008.1.2.4.90"] {
            assert!(matches!(
                transcode(&file, ts, None),
                Err(TranscodeError::UnknownSyntax(_))
            ));
        }
        let (file16, _) = image(16, 1);
        assert!(matches!(
            transcode(&file16, JPEG_EXTENDED, None),
            Err(TranscodeError::Failed(..))
        ));
    }
}
