//! Answers in Orthanc's formats: JSON (or XML when `Accept: application/xml`), plain text,
//! raw bytes, and empty bodies.

use actix_web::body::BoxBody;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, Responder};
use serde_json::Value;

/// What a handler answers.
pub enum Answer {
    /// A JSON document (converted to XML if the client asks for it).
    Json(Value),
    /// `text/plain`.
    Text(String),
    /// Raw bytes with a content type.
    Bytes(Vec<u8>, &'static str),
    /// 200 with an empty body.
    Empty,
}

impl Responder for Answer {
    type Body = BoxBody;

    fn respond_to(self, req: &HttpRequest) -> HttpResponse {
        match self {
            Answer::Json(v) => json_or_xml(req, &v),
            Answer::Text(t) => HttpResponse::Ok().content_type("text/plain").body(t),
            Answer::Bytes(b, ct) => HttpResponse::Ok().content_type(ct).body(b),
            Answer::Empty => HttpResponse::Ok().content_type("text/plain").finish(),
        }
    }
}

pub fn wants_xml(req: &HttpRequest) -> bool {
    let a = accept_of(req);
    (a.contains("application/xml") || a.contains("text/xml")) && !a.contains("application/json")
}

/// Renders a JSON value as JSON or as Orthanc's XML.
pub fn json_or_xml(req: &HttpRequest, v: &Value) -> HttpResponse {
    if wants_xml(req) {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
        write_xml(&mut out, "root", v, 0);
        HttpResponse::Ok()
            .content_type("application/xml; charset=utf-8")
            .body(out)
    } else {
        let body = serde_json::to_vec_pretty(v).unwrap_or_default();
        HttpResponse::Ok()
            .content_type("application/json; charset=utf-8")
            .body(body)
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn xml_name(key: &str) -> String {
    let ok = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if ok {
        key.to_string()
    } else {
        format!("tag_{}", key.replace([',', ' '], "_"))
    }
}

fn write_xml(out: &mut String, name: &str, v: &Value, depth: usize) {
    let pad = "  ".repeat(depth);
    match v {
        Value::Object(m) => {
            out.push_str(&format!("{pad}<{name}>\n"));
            for (k, child) in m {
                write_xml(out, &xml_name(k), child, depth + 1);
            }
            out.push_str(&format!("{pad}</{name}>\n"));
        }
        Value::Array(a) => {
            out.push_str(&format!("{pad}<{name}>\n"));
            for child in a {
                write_xml(out, "item", child, depth + 1);
            }
            out.push_str(&format!("{pad}</{name}>\n"));
        }
        Value::Null => out.push_str(&format!("{pad}<{name} />\n")),
        Value::String(s) => out.push_str(&format!("{pad}<{name}>{}</{name}>\n", escape(s))),
        other => out.push_str(&format!("{pad}<{name}>{other}</{name}>\n")),
    }
}

/// The `Accept` header, lowercase ("" when absent).
pub fn accept_of(req: &HttpRequest) -> String {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Reads a boolean GET argument as Orthanc does: present without value means true.
pub fn flag(req: &HttpRequest, name: &str) -> Result<Option<bool>, super::error::ApiError> {
    for (k, v) in query_pairs(req) {
        if k == name {
            return match v.to_ascii_lowercase().as_str() {
                "" | "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(super::error::ApiError::new(
                    super::error::OrthancCode::ParameterOutOfRange,
                    format!("Boolean value expected for argument \"{name}\": {v}"),
                )),
            };
        }
    }
    Ok(None)
}

/// The value of a GET argument.
pub fn arg(req: &HttpRequest, name: &str) -> Option<String> {
    query_pairs(req)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The decoded GET arguments, in order.
pub fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    req.query_string()
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `%xx` and `+` in a query component.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_of_array_has_items() {
        let mut out = String::new();
        write_xml(&mut out, "root", &serde_json::json!(["a", "b<"]), 0);
        assert_eq!(
            out,
            "<root>\n  <item>a</item>\n  <item>b&lt;</item>\n</root>\n"
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%3Cb+c%"), "a<b c%");
    }
}
