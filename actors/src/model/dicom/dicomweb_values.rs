//! Value conversions of Orthanc's `DicomWebJsonVisitor` (numbers, strings).

use serde_json::{Map, Value as Json};

use super::parse::{Tag, VR};

/// "GGGGEEEE", uppercase hexadecimal.
pub fn format_tag(tag: Tag) -> String {
    format!("{:04X}{:04X}", tag.0, tag.1)
}

/// Numeric / AT values. `None`: the element is not emitted at all;
/// `Some(None)`: emitted without "Value".
pub fn binary_numbers(vr: VR, b: &[u8], legacy: bool) -> Option<Option<Vec<Json>>> {
    let ints = |size: usize, f: &dyn Fn(&[u8]) -> i64| -> Vec<Json> {
        b.chunks_exact(size).map(|c| format_integer(f(c))).collect()
    };
    let v: Vec<Json> = match vr {
        VR::SL => ints(4, &|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64),
        VR::SS => ints(2, &|c| i16::from_le_bytes([c[0], c[1]]) as i64),
        VR::UL | VR::OL => ints(4, &|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64),
        VR::US => ints(2, &|c| u16::from_le_bytes([c[0], c[1]]) as i64),
        VR::FL | VR::OF => b
            .chunks_exact(4)
            .map(|c| format_double(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64))
            .collect(),
        VR::FD | VR::OD => b
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                format_double(f64::from_le_bytes(a))
            })
            .collect(),
        VR::AT => b
            .chunks_exact(4)
            .map(|c| {
                let g = u16::from_le_bytes([c[0], c[1]]);
                let e = u16::from_le_bytes([c[2], c[3]]);
                Json::String(format_tag(Tag(g, e)))
            })
            .collect(),
        _ => return None,
    };
    // DCMTK 3.6.7 reports a VM of 1 for OF, OD and OL (fixed in 1.12.11)
    let v = if legacy && matches!(vr, VR::OF | VR::OD | VR::OL) {
        v.into_iter().take(1).collect()
    } else {
        v
    };
    Some((!v.is_empty()).then_some(v))
}

/// Orthanc's `FormatInteger`: int32 if negative, uint32 otherwise (truncating).
pub fn format_integer(v: i64) -> Json {
    if v < 0 {
        Json::from(v as i32)
    } else {
        Json::from(v as u32)
    }
}

/// Orthanc's `FormatDouble`: integers (up to 100 epsilons) become integers.
pub fn format_double(v: f64) -> Json {
    let r = v.round();
    // boost::math::llround throws if the result does not fit a long long
    if v.is_finite() && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&r) {
        let a = r as i64;
        if (v - a as f64).abs() <= f64::EPSILON * 100.0 {
            return format_integer(a);
        }
    }
    serde_json::Number::from_f64(v)
        .map(Json::Number)
        .unwrap_or(Json::Null)
}

/// `VisitString`: values of a string element (`None`: no "Value" key).
pub fn string_values(tag: Tag, vr: VR, value: &str, legacy: bool) -> Option<Vec<Json>> {
    let v = value.strip_suffix('\0').unwrap_or(value);
    if v.is_empty() {
        return None;
    }
    let mut tokens: Vec<&str> = v.split('\\').collect();
    if tag == Tag(0x0008, 0x0005) && tokens.len() > 1 && tokens[0].is_empty() {
        tokens.remove(0);
    }
    let mut out = Vec::with_capacity(tokens.len());
    for t in tokens {
        match vr {
            VR::PN => {
                let mut m = Map::new();
                if !t.is_empty() {
                    let keys = ["Alphabetic", "Ideographic", "Phonetic"];
                    for (k, c) in keys.iter().zip(t.split('=')) {
                        m.insert((*k).into(), c.into());
                    }
                }
                out.push(Json::Object(m));
            }
            VR::IS => match strip_spaces(t) {
                "" => out.push(Json::Null),
                s => {
                    // Invalid tokens are skipped (bad_lexical_cast is logged)
                    if let Some(i) = parse_int64(s) {
                        out.push(format_integer(i));
                    }
                }
            },
            VR::DS => match strip_spaces(t) {
                "" => out.push(Json::Null),
                s if !legacy => out.push(Json::String(s.to_string())),
                s => {
                    if let Some(d) = parse_double(s) {
                        out.push(format_double(d));
                    }
                }
            },
            _ if t.is_empty() => out.push(Json::Null),
            _ => out.push(Json::String(t.to_string())),
        }
    }
    Some(out)
}

/// Orthanc's `Toolbox::StripSpaces` (isspace on both ends).
fn strip_spaces(s: &str) -> &str {
    s.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'))
}

/// `boost::lexical_cast<int64_t>`: optional sign, decimal digits only.
fn parse_int64(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `boost::lexical_cast<double>`.
fn parse_double(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let ok = body
        .bytes()
        .all(|c| c.is_ascii_digit() || b".eE+-".contains(&c))
        || ["inf", "infinity", "nan"].contains(&body.to_ascii_lowercase().as_str());
    if !ok {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles() {
        assert_eq!(format_double(3.0000000000000004), Json::from(3u32));
        assert_eq!(format_double(-2.0), Json::from(-2i32));
        assert_eq!(format_double(0.5), Json::from(0.5));
        assert_eq!(format_double(1e20), Json::from(1e20));
        assert_eq!(parse_double("1e3"), Some(1000.0));
        assert_eq!(parse_int64("1.0"), None);
    }
}
