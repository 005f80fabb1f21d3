//! DICOMweb XML (PS3.19 Native DICOM Model) as Orthanc renders it from its
//! DICOMweb JSON (`Accept: application/dicom+xml`), pugixml formatting.

use serde_json::Value as Json;

use super::dicomweb_json::{to_dicomweb_json, DicomWebOptions};
use super::dictionary::{parse_tag, UNKNOWN_TAG_NAME};
use super::orthanc_json::format_g;
use super::parse::DataSet;

/// Renders `ds` as Orthanc's `FormatXml()`.
pub fn to_dicomweb_xml(ds: &DataSet, opts: &DicomWebOptions) -> String {
    json_to_xml(&to_dicomweb_json(ds, opts), opts)
}

/// Converts a DICOMweb JSON dataset to the Native DICOM Model.
pub fn json_to_xml(json: &Json, opts: &DicomWebOptions) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    out.push_str(
        "<NativeDicomModel xmlns=\"http://dicom.nema.org/PS3.19/models/NativeDICOM\" \
         xsi:schemaLocation=\"http://dicom.nema.org/PS3.19/models/NativeDICOM\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"",
    );
    let mut body = String::new();
    dataset(&mut body, json, opts, 1);
    close(&mut out, "NativeDicomModel", &body, 0);
    out
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

/// Ends an element whose start tag (without '>') is already written.
fn close(out: &mut String, name: &str, body: &str, depth: usize) {
    if body.is_empty() {
        out.push_str(" />\n");
    } else {
        out.push_str(">\n");
        out.push_str(body);
        indent(out, depth);
        out.push_str(&format!("</{name}>\n"));
    }
}

fn leaf(out: &mut String, depth: usize, name: &str, attrs: &str, text: &str) {
    indent(out, depth);
    if text.is_empty() {
        out.push_str(&format!("<{name}{attrs} />\n"));
    } else {
        out.push_str(&format!(
            "<{name}{attrs}>{}</{name}>\n",
            escape(text, false)
        ));
    }
}

fn escape(s: &str, attr: bool) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' if attr => o.push_str("&quot;"),
            c if (c as u32) < 32 && !matches!(c, '\t' | '\n' | '\r') => {
                o.push_str(&format!("&#{};", c as u32))
            }
            c => o.push(c),
        }
    }
    o
}

fn dataset(out: &mut String, json: &Json, opts: &DicomWebOptions, depth: usize) {
    let Some(obj) = json.as_object() else {
        return;
    };
    for (key, content) in obj {
        let vr = content["vr"].as_str().unwrap_or("");
        indent(out, depth);
        out.push_str(&format!(
            "<DicomAttribute tag=\"{}\" vr=\"{}\"",
            escape(key, true),
            escape(vr, true)
        ));
        if let Some(tag) = parse_tag(key) {
            let name = opts.dictionary.name(tag, None);
            if name != UNKNOWN_TAG_NAME {
                out.push_str(&format!(" keyword=\"{}\"", escape(&name, true)));
            }
        }
        let mut body = String::new();
        if let Some(values) = content.get("Value").and_then(|v| v.as_array()) {
            for (j, v) in values.iter().enumerate() {
                let number = format!(" number=\"{}\"", j + 1);
                if vr == "SQ" && v.is_object() {
                    indent(&mut body, depth + 1);
                    body.push_str(&format!("<Item{number}"));
                    let mut inner = String::new();
                    dataset(&mut inner, v, opts, depth + 2);
                    close(&mut body, "Item", &inner, depth + 1);
                }
                if vr == "PN" {
                    person_name(&mut body, v, &number, depth + 1);
                } else {
                    leaf(&mut body, depth + 1, "Value", &number, &xml_value(v));
                }
            }
        } else if let Some(u) = content.get("BulkDataURI").and_then(|v| v.as_str()) {
            leaf(
                &mut body,
                depth + 1,
                "BulkData",
                &format!(" URI=\"{}\"", escape(u, true)),
                "",
            );
        } else if let Some(b) = content.get("InlineBinary").and_then(|v| v.as_str()) {
            leaf(&mut body, depth + 1, "InlineBinary", "", b);
        }
        close(out, "DicomAttribute", &body, depth);
    }
}

/// pugixml's text of a JSON scalar (reals through `asFloat()`).
fn xml_value(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Number(n) if n.is_f64() => format_g(n.as_f64().unwrap_or(0.0) as f32 as f64, 9),
        Json::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

fn person_name(out: &mut String, v: &Json, number: &str, depth: usize) {
    let parts: Vec<(&str, &str)> = ["Alphabetic", "Ideographic", "Phonetic"]
        .iter()
        .filter_map(|k| v.get(*k).and_then(|s| s.as_str()).map(|s| (*k, s)))
        .collect();
    if parts.is_empty() {
        return;
    }
    indent(out, depth);
    out.push_str(&format!("<PersonName{number}>\n"));
    for (k, s) in parts {
        indent(out, depth + 1);
        out.push_str(&format!("<{k}"));
        let mut inner = String::new();
        let names = [
            "FamilyName",
            "GivenName",
            "MiddleName",
            "NamePrefix",
            "NameSuffix",
        ];
        for (n, t) in names.iter().zip(s.split('^')) {
            // pugixml writes an empty text node as <X></X>
            indent(&mut inner, depth + 2);
            inner.push_str(&format!("<{n}>{}</{n}>\n", escape(t, false)));
        }
        close(out, k, &inner, depth + 1);
    }
    indent(out, depth);
    out.push_str("</PersonName>\n");
}

#[cfg(test)]
mod tests {
    use super::super::parse::{Element, Tag, Value, VR};
    use super::*;

    #[test]
    fn xml() {
        let ds = DataSet {
            elements: vec![
                Element {
                    tag: Tag(0x0010, 0x0010),
                    vr: VR::PN,
                    value: Value::Bytes(b"A^B".to_vec()),
                },
                Element {
                    tag: Tag(0x0010, 0x0020),
                    vr: VR::LO,
                    value: Value::Bytes(b"<&>".to_vec()),
                },
            ],
        };
        let x = to_dicomweb_xml(&ds, &DicomWebOptions::default());
        assert!(x.contains("<Alphabetic>\n        <FamilyName>A</FamilyName>\n"));
        assert!(x.contains("<Value number=\"1\">&lt;&amp;&gt;</Value>"));
    }
}
