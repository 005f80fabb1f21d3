//! Orthanc's native JSON rendering of DICOM datasets (`/instances/{id}/tags`).

use std::sync::Arc;

use serde_json::{Map, Value as Json};

use super::charset::{self, Encoding};
use super::dictionary::PrivateDictionary;
use super::parse::{trim_trailing, DataSet, Element, Tag, Value, PIXEL_DATA, VR};

/// Orthanc's ORTHANC_MAXIMUM_TAG_LENGTH.
pub const DEFAULT_MAX_STRING_LENGTH: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"gggg,eeee": {"Name", "Type", "Value", ["PrivateCreator"]}}`
    Full,
    /// `{"gggg,eeee": value}`
    Short,
    /// `{"Name": value}`
    Simplify,
}

/// Tags whose length limit is ignored (`?ignore-length=...`).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum IgnoreLength {
    #[default]
    None,
    Tags(Vec<Tag>),
    All,
}

#[derive(Debug, Clone)]
pub struct JsonOptions {
    /// 0 means unlimited.
    pub max_string_length: usize,
    pub ignore_length: IgnoreLength,
    /// Used when (0008,0005) is absent ("DefaultEncoding").
    pub default_encoding: Encoding,
    /// Forces the encoding (e.g. Ascii for the meta header).
    pub force_encoding: Option<Encoding>,
    pub dictionary: Arc<PrivateDictionary>,
    /// Include top-level tags after the pixel data (`?whole`).
    pub whole: bool,
    /// The dataset was stored with the implicit VR transfer syntax.
    pub implicit_vr: bool,
    /// Orthanc's `DicomToJsonFlags_Default` (true) or `_None` (false, used
    /// by `/header`): binary, private and unknown tags are skipped if false.
    pub default_flags: bool,
}

impl JsonOptions {
    /// Options for `/instances/{id}/header` (meta header, group 0002).
    pub fn for_header(&self) -> JsonOptions {
        JsonOptions {
            max_string_length: 0,
            force_encoding: Some(Encoding::Ascii),
            default_flags: false,
            ..self.clone()
        }
    }
}

impl Default for JsonOptions {
    fn default() -> Self {
        JsonOptions {
            max_string_length: DEFAULT_MAX_STRING_LENGTH,
            ignore_length: IgnoreLength::None,
            default_encoding: Encoding::Latin1,
            force_encoding: None,
            dictionary: Arc::new(PrivateDictionary::new()),
            whole: false,
            implicit_vr: false,
            default_flags: true,
        }
    }
}

/// Leaf value as Orthanc computes it before JSON conversion.
#[derive(Debug, Clone, PartialEq)]
pub enum LeafValue {
    Null,
    String(String),
}

struct Ctx<'a> {
    opts: &'a JsonOptions,
    encoding: Encoding,
    ext: bool,
}

/// Renders a dataset as Orthanc does.
pub fn to_orthanc_json(ds: &DataSet, format: Format, opts: &JsonOptions) -> Json {
    let (encoding, ext) = match opts.force_encoding {
        Some(e) => (e, false),
        None => charset::detect(ds, opts.default_encoding),
    };
    let ctx = Ctx {
        opts,
        encoding,
        ext,
    };
    let full = dataset_full(ds, &ctx, 0);
    match format {
        Format::Full => full,
        _ => simplify(&full, format),
    }
}

/// Orthanc's `Toolbox::SimplifyDicomAsJson` applied to a full JSON.
pub fn simplify(full: &Json, format: Format) -> Json {
    let mut out = Map::new();
    let Some(obj) = full.as_object() else {
        return Json::Object(out);
    };
    for (key, v) in obj {
        let name = match format {
            Format::Simplify => v["Name"].as_str().unwrap_or("").to_string(),
            _ => key.clone(),
        };
        let val = match v["Type"].as_str() {
            Some("String") => v["Value"].clone(),
            Some("Sequence") => Json::Array(
                v["Value"]
                    .as_array()
                    .map(|a| a.iter().map(|i| simplify(i, format)).collect())
                    .unwrap_or_default(),
            ),
            _ => Json::Null,
        };
        out.insert(name, val);
    }
    Json::Object(out)
}

/// Private creator of a private tag (gggg,xxee), read in the same dataset.
pub fn private_creator(ds: &DataSet, tag: Tag) -> Option<String> {
    if tag.0.is_multiple_of(2) || tag.1 < 0x1000 {
        return None;
    }
    let e = ds.get(Tag(tag.0, tag.1 >> 8))?;
    let s = String::from_utf8_lossy(trim_trailing(e.bytes()?))
        .trim()
        .to_string();
    Some(s)
}

fn dataset_full(ds: &DataSet, ctx: &Ctx, depth: usize) -> Json {
    let mut out = Map::new();
    for el in &ds.elements {
        if depth == 0 && !ctx.opts.whole && el.tag > PIXEL_DATA {
            continue;
        }
        let creator = private_creator(ds, el.tag);
        let name = ctx.opts.dictionary.name(el.tag, creator.as_deref());
        if !ctx.opts.default_flags
            && (el.tag.0 % 2 == 1
                || name == super::dictionary::UNKNOWN_TAG_NAME
                || matches!(el.vr, VR::OB | VR::OW | VR::UN))
        {
            continue;
        }
        let mut node = Map::new();
        node.insert("Name".into(), Json::String(name));
        if let Value::Sequence(items) = &el.value {
            node.insert("Type".into(), "Sequence".into());
            let arr = items
                .iter()
                .map(|i| dataset_full(i, ctx, depth + 1))
                .collect();
            node.insert("Value".into(), Json::Array(arr));
        } else {
            if let Some(c) = &creator {
                node.insert("PrivateCreator".into(), Json::String(c.clone()));
            }
            let ignore = match &ctx.opts.ignore_length {
                IgnoreLength::All => true,
                IgnoreLength::Tags(t) => t.contains(&el.tag),
                IgnoreLength::None => false,
            };
            let max = if ignore {
                0
            } else {
                ctx.opts.max_string_length
            };
            let (ty, v) = match leaf_value(el, creator.as_deref(), ctx) {
                LeafValue::Null => ("Null", Json::Null),
                LeafValue::String(s) if max == 0 || s.len() <= max => ("String", Json::String(s)),
                LeafValue::String(_) => ("TooLong", Json::Null),
            };
            node.insert("Type".into(), ty.into());
            node.insert("Value".into(), v);
        }
        out.insert(
            format!("{:04x},{:04x}", el.tag.0, el.tag.1),
            Json::Object(node),
        );
    }
    Json::Object(out)
}

/// Whether DCMTK handles the VR as a string.
pub fn is_string_vr(vr: VR) -> bool {
    matches!(
        vr,
        VR::AE
            | VR::AS
            | VR::CS
            | VR::DA
            | VR::DS
            | VR::DT
            | VR::IS
            | VR::LO
            | VR::LT
            | VR::PN
            | VR::SH
            | VR::ST
            | VR::TM
            | VR::UI
            | VR::UT
            | VR::UC
            | VR::UR
    )
}

/// DCMTK `getString()` normalisation: cut at the first NUL, remove trailing padding.
fn dcmtk_string(b: &[u8]) -> &[u8] {
    let b = match b.iter().position(|c| *c == 0) {
        Some(p) => &b[..p],
        None => b,
    };
    trim_trailing(b)
}

fn leaf_value(el: &Element, creator: Option<&str>, ctx: &Ctx) -> LeafValue {
    let Value::Bytes(b) = &el.value else {
        return LeafValue::Null;
    };
    let mut vr = el.vr;
    if ctx.opts.implicit_vr && super::dictionary::is_context_dependent_vr(el.tag) {
        return LeafValue::Null;
    }
    if vr == VR::UN {
        if let Some(dvr) = ctx.opts.dictionary.vr(el.tag, creator) {
            if ctx.opts.implicit_vr {
                vr = dvr;
            } else if is_string_vr(dvr) {
                if b.is_empty() {
                    return LeafValue::String(String::new());
                }
                let mut n = b.len();
                if n % 2 == 0 && b[n - 1] == 0 {
                    n -= 1;
                }
                let data = &b[..n];
                if el.tag.0 % 2 == 1 {
                    if data.iter().all(|c| charset::is_ascii_char(*c)) {
                        return LeafValue::String(String::from_utf8_lossy(data).into_owned());
                    }
                    return LeafValue::Null;
                }
                return LeafValue::String(charset::decode(data, ctx.encoding, ctx.ext));
            }
        }
    }
    if is_string_vr(vr) {
        return LeafValue::String(charset::decode(dcmtk_string(b), ctx.encoding, ctx.ext));
    }
    match vr {
        VR::SL => numbers(b, 4, |c| {
            i32::from_le_bytes([c[0], c[1], c[2], c[3]]).to_string()
        }),
        VR::SS => numbers(b, 2, |c| i16::from_le_bytes([c[0], c[1]]).to_string()),
        VR::UL | VR::OL => numbers(b, 4, |c| {
            u32::from_le_bytes([c[0], c[1], c[2], c[3]]).to_string()
        }),
        VR::US => numbers(b, 2, |c| u16::from_le_bytes([c[0], c[1]]).to_string()),
        VR::FL | VR::OF => numbers(b, 4, |c| {
            format_g17(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
        }),
        VR::FD | VR::OD => numbers(b, 8, |c| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            format_g17(f64::from_le_bytes(a))
        }),
        VR::AT if b.len() >= 4 => LeafValue::String(format!(
            "{:04x},{:04x}",
            u16::from_le_bytes([b[0], b[1]]),
            u16::from_le_bytes([b[2], b[3]])
        )),
        _ => LeafValue::Null,
    }
}

fn numbers(b: &[u8], size: usize, f: impl Fn(&[u8]) -> String) -> LeafValue {
    if b.len() > size && b.len().is_multiple_of(size) {
        let v: Vec<String> = b.chunks_exact(size).map(f).collect();
        LeafValue::String(v.join("\\"))
    } else if b.len() >= size {
        LeafValue::String(f(&b[..size]))
    } else {
        LeafValue::Null
    }
}

/// C++ `ostream << setprecision(17) << v` (i.e. printf "%.17g").
pub fn format_g17(v: f64) -> String {
    format_g(v, 17)
}

/// printf-style "%.{prec}g".
pub fn format_g(v: f64, prec: usize) -> String {
    if v.is_nan() {
        return if v.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if v.is_infinite() {
        return if v < 0.0 { "-inf" } else { "inf" }.into();
    }
    let p = prec.max(1);
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let e = format!("{:.*e}", p - 1, v);
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let x: i32 = exp.parse().unwrap_or(0);
    if x < -4 || x >= p as i32 {
        let mant = strip_zeros(mant);
        let sign = if x < 0 { '-' } else { '+' };
        format!("{}e{}{:02}", mant, sign, x.abs())
    } else {
        let decimals = (p as i32 - 1 - x).max(0) as usize;
        strip_zeros(&format!("{:.*}", decimals, v)).to_string()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g17() {
        assert_eq!(format_g17(61.5833), "61.583300000000001");
        assert_eq!(format_g17(0.5), "0.5");
        assert_eq!(format_g17(1.0), "1");
        assert_eq!(format_g17(0.1f32 as f64), "0.10000000149011612");
        assert_eq!(format_g17(1e20), "1e+20");
        assert_eq!(format_g17(2.5e-5), "2.5000000000000001e-05");
        assert_eq!(format_g17(-3.0), "-3");
    }

    #[test]
    fn full_and_simplify() {
        let ds = DataSet {
            elements: vec![
                Element {
                    tag: Tag(0x0010, 0x0010),
                    vr: VR::PN,
                    value: Value::Bytes(b"DOE^JOHN".to_vec()),
                },
                Element {
                    tag: Tag(0x0028, 0x0010),
                    vr: VR::US,
                    value: Value::Bytes(vec![0, 2]),
                },
            ],
        };
        let o = JsonOptions::default();
        let j = to_orthanc_json(&ds, Format::Full, &o);
        assert_eq!(j["0010,0010"]["Value"], "DOE^JOHN");
        assert_eq!(j["0028,0010"]["Value"], "512");
        let s = to_orthanc_json(&ds, Format::Simplify, &o);
        assert_eq!(s["PatientName"], "DOE^JOHN");
        let s = to_orthanc_json(&ds, Format::Short, &o);
        assert_eq!(s["0028,0010"], "512");
    }
}
