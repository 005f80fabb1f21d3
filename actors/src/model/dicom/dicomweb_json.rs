//! DICOMweb JSON (PS3.18 F.2) as Orthanc 1.10's `DicomWebJsonVisitor`
//! renders it (`GET /instances/{id}/file` with `Accept: application/dicom+json`).

use std::sync::Arc;

use base64::Engine;
use serde_json::{Map, Value as Json};

use super::charset::{self, Encoding};
use super::dicomweb_values::{binary_numbers, format_tag, string_values};
use super::dictionary::{self, PrivateDictionary};
use super::orthanc_json::private_creator;
use super::parse::{trim_trailing, DataSet, Element, Tag, Value, VR};

/// What to do with a binary (OB, OW, UN) element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinaryMode {
    Ignore,
    InlineBinary,
    BulkDataUri(String),
}

/// Chooses the binary mode from the path of parent (sequence tag, item
/// index) pairs, the tag and its VR (the DICOMweb plugin's formatter).
pub type BinaryFormatter = Arc<dyn Fn(&[(Tag, usize)], Tag, VR) -> BinaryMode + Send + Sync>;

#[derive(Clone)]
pub struct DicomWebOptions {
    /// Used when (0008,0005) is absent ("DefaultEncoding").
    pub default_encoding: Encoding,
    pub dictionary: Arc<PrivateDictionary>,
    /// The dataset was stored with the implicit VR transfer syntax.
    pub implicit_vr: bool,
    /// `None`: everything inline, as Orthanc's `/file` route does.
    pub formatter: Option<BinaryFormatter>,
    /// Orthanc 1.10 behaviour: DS as JSON numbers, first value only of
    /// OF/OD/OL. Mainline (>= 1.12.5, the default) keeps DS as strings.
    pub legacy: bool,
}

impl Default for DicomWebOptions {
    fn default() -> Self {
        DicomWebOptions {
            default_encoding: Encoding::Latin1,
            dictionary: Arc::new(PrivateDictionary::new()),
            implicit_vr: false,
            formatter: None,
            legacy: false,
        }
    }
}

/// Renders `ds` (the dataset, without meta header) as Orthanc does. When
/// Orthanc would fail (an empty sequence item followed by a non-empty one,
/// where Orthanc falls back to sending the DICOM file), the empty item is
/// kept as `{}`: use [`try_to_dicomweb_json`] to detect that case.
pub fn to_dicomweb_json(ds: &DataSet, opts: &DicomWebOptions) -> Json {
    let mut r = Renderer::new(ds, opts, false);
    r.dataset(ds, &mut Vec::new())
}

/// `None` where Orthanc's visitor throws an internal error (its `/file`
/// route then answers the raw DICOM file instead of JSON).
pub fn try_to_dicomweb_json(ds: &DataSet, opts: &DicomWebOptions) -> Option<Json> {
    let mut r = Renderer::new(ds, opts, true);
    let v = r.dataset(ds, &mut Vec::new());
    (!r.failed).then_some(v)
}

struct Renderer<'a> {
    opts: &'a DicomWebOptions,
    encoding: Encoding,
    ext: bool,
    strict: bool,
    failed: bool,
    /// Top-level Pixel Representation is 1 (signed).
    signed: bool,
}

impl<'a> Renderer<'a> {
    fn new(ds: &DataSet, opts: &'a DicomWebOptions, strict: bool) -> Self {
        let (encoding, ext) = charset::detect(ds, opts.default_encoding);
        Renderer {
            opts,
            encoding,
            ext,
            strict,
            failed: false,
            signed: pixel_representation(ds) == Some(1),
        }
    }

    fn dataset(&mut self, ds: &DataSet, path: &mut Vec<(Tag, usize)>) -> Json {
        let mut out = Map::new();
        for el in &ds.elements {
            if el.tag.1 == 0 {
                continue;
            }
            if let Some(node) = self.element(ds, el, path) {
                out.insert(format_tag(el.tag), Json::Object(node));
            }
        }
        Json::Object(out)
    }

    fn element(
        &mut self,
        ds: &DataSet,
        el: &Element,
        path: &mut Vec<(Tag, usize)>,
    ) -> Option<Map<String, Json>> {
        let mut node = Map::new();
        let b = match &el.value {
            Value::Sequence(items) => {
                node.insert("vr".into(), "SQ".into());
                if items.is_empty() {
                    return Some(node);
                }
                // Orthanc creates the items lazily, when visiting their first
                // element: trailing empty items vanish, inner ones are fatal.
                let mut arr = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    path.push((el.tag, i));
                    arr.push(self.dataset(item, path));
                    path.pop();
                }
                while arr.last().is_some_and(is_empty_object) {
                    arr.pop();
                }
                if arr.is_empty() {
                    return None;
                }
                if self.strict && arr.iter().any(is_empty_object) {
                    self.failed = true;
                }
                node.insert("Value".into(), Json::Array(arr));
                return Some(node);
            }
            Value::Bytes(b) => b.as_slice(),
            // Encapsulated pixel data: DCMTK cannot give it as an array.
            _ => return None,
        };
        let mut vr = el.vr;
        let mut un_element = false;
        if vr == VR::UN {
            let creator = private_creator(ds, el.tag);
            if let Some(dvr) = self.opts.dictionary.vr(el.tag, creator.as_deref()) {
                vr = dvr;
                un_element = !self.opts.implicit_vr;
            }
        } else if self.opts.implicit_vr && dictionary::is_context_dependent_vr(el.tag) {
            return None;
        } else if self.opts.implicit_vr && vr == VR::US && dictionary::is_xs(el.tag) {
            // DCMTK resolves "xs" with the Pixel Representation
            let signed = pixel_representation(ds).map_or(self.signed, |p| p == 1);
            if signed {
                vr = VR::SS;
            }
        }
        if matches!(vr, VR::OB | VR::OW | VR::UN) {
            let mode = match &self.opts.formatter {
                None => BinaryMode::InlineBinary,
                Some(f) => f(path, el.tag, vr),
            };
            node.insert("vr".into(), vr.to_string().into());
            match mode {
                BinaryMode::Ignore => return None,
                BinaryMode::BulkDataUri(u) => {
                    node.insert("BulkDataURI".into(), u.into());
                }
                BinaryMode::InlineBinary if !b.is_empty() => {
                    let s = base64::engine::general_purpose::STANDARD.encode(b);
                    node.insert("InlineBinary".into(), s.into());
                }
                BinaryMode::InlineBinary => {}
            }
            return Some(node);
        }
        let values = if is_string_vr(vr) {
            let raw = if un_element {
                // DCMTK keeps the UN element: raw bytes up to the first NUL.
                cut_at_nul(b)
            } else {
                dcmtk_string(b)
            };
            let s = if el.tag == Tag(0x0008, 0x0005) {
                String::from_utf8_lossy(raw).into_owned()
            } else {
                charset::decode(raw, self.encoding, self.ext)
            };
            string_values(el.tag, vr, &s, self.opts.legacy)
        } else if un_element {
            // Numeric VR on a UN element: DCMTK's dynamic_cast fails.
            return None;
        } else {
            binary_numbers(vr, b, self.opts.legacy)?
        };
        node.insert("vr".into(), vr.to_string().into());
        if let Some(v) = values {
            node.insert("Value".into(), Json::Array(v));
        }
        Some(node)
    }
}

fn pixel_representation(ds: &DataSet) -> Option<u16> {
    let b = ds.get(Tag(0x0028, 0x0103))?.bytes()?;
    (b.len() >= 2).then(|| u16::from_le_bytes([b[0], b[1]]))
}

fn is_empty_object(v: &Json) -> bool {
    v.as_object().is_some_and(|m| m.is_empty())
}

fn is_string_vr(vr: VR) -> bool {
    super::orthanc_json::is_string_vr(vr)
}

fn cut_at_nul(b: &[u8]) -> &[u8] {
    match b.iter().position(|c| *c == 0) {
        Some(p) => &b[..p],
        None => b,
    }
}

/// DCMTK `getString()`: trailing padding removed, then cut at the first NUL.
fn dcmtk_string(b: &[u8]) -> &[u8] {
    trim_trailing(cut_at_nul(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(tag: Tag, vr: VR, v: &[u8]) -> Element {
        Element {
            tag,
            vr,
            value: Value::Bytes(v.to_vec()),
        }
    }

    #[test]
    fn values() {
        let ds = DataSet {
            elements: vec![
                el(Tag(0x0008, 0x0000), VR::UL, &[4, 0, 0, 0]),
                el(Tag(0x0010, 0x0010), VR::PN, b"A^B=C^D\\\\E "),
                el(Tag(0x0010, 0x0020), VR::LO, b""),
                el(Tag(0x0018, 0x0050), VR::DS, b" 1.50\\\\2 \\x "),
                el(Tag(0x0020, 0x0013), VR::IS, b"-3 "),
                el(Tag(0x0028, 0x0009), VR::AT, &[0x18, 0, 0x63, 0x10]),
                el(Tag(0x0028, 0x0010), VR::US, &[0, 2, 1, 0]),
                el(Tag(0x0042, 0x0011), VR::OB, b""),
                el(Tag(0x7fe0, 0x0010), VR::OW, &[1, 2, 3, 4]),
            ],
        };
        let legacy = DicomWebOptions {
            legacy: true,
            ..Default::default()
        };
        let j = to_dicomweb_json(&ds, &DicomWebOptions::default());
        assert_eq!(
            j["00180050"]["Value"],
            serde_json::json!(["1.50", null, "2", "x"])
        );
        let j = to_dicomweb_json(&ds, &legacy);
        let expected = serde_json::json!({
            "00100010": {"vr": "PN", "Value": [
                {"Alphabetic": "A^B", "Ideographic": "C^D"}, {}, {"Alphabetic": "E"}]},
            "00100020": {"vr": "LO"},
            "00180050": {"vr": "DS", "Value": [1.5, null, 2]},
            "00200013": {"vr": "IS", "Value": [-3]},
            "00280009": {"vr": "AT", "Value": ["00181063"]},
            "00280010": {"vr": "US", "Value": [512, 1]},
            "00420011": {"vr": "OB"},
            "7FE00010": {"vr": "OW", "InlineBinary": "AQIDBA=="},
        });
        assert_eq!(j, expected);
    }

    #[test]
    fn sequences() {
        let item = DataSet {
            elements: vec![el(Tag(0x0008, 0x1150), VR::UI, b"1.2\0")],
        };
        let seq = |items: Vec<DataSet>| Element {
            tag: Tag(0x0008, 0x1140),
            vr: VR::SQ,
            value: Value::Sequence(items),
        };
        let o = DicomWebOptions::default();
        let ds = DataSet {
            elements: vec![seq(vec![item.clone(), DataSet::default()])],
        };
        let j = to_dicomweb_json(&ds, &o);
        assert_eq!(j["00081140"]["Value"].as_array().unwrap().len(), 1);
        assert_eq!(j["00081140"]["Value"][0]["00081150"]["Value"][0], "1.2");
        let ds = DataSet {
            elements: vec![seq(vec![DataSet::default(), item])],
        };
        assert!(try_to_dicomweb_json(&ds, &o).is_none());
        let ds = DataSet {
            elements: vec![seq(vec![])],
        };
        assert_eq!(to_dicomweb_json(&ds, &o)["00081140"]["vr"], "SQ");
    }
}
