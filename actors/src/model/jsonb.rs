//! A reader of SQLite's binary JSON (JSONB, <https://sqlite.org/jsonb.html>), for the main
//! tags the index stores as JSONB objects of strings: reading them as they are stored saves
//! SQLite's conversion to JSON text and the parse of that text (a large find reads thousands).

use std::borrow::Cow;

/// The element types of JSONB that matter here.
const TEXT: u8 = 7;
const TEXTJ: u8 = 8;
const TEXT5: u8 = 9;
const TEXTRAW: u8 = 10;
const OBJECT: u8 = 12;

/// One element: its type, its payload, and what follows it.
fn element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&head, rest) = b.split_first()?;
    let (size, rest) = match head >> 4 {
        n @ 0..=11 => (usize::from(n), rest),
        12 => (usize::from(*rest.first()?), rest.get(1..)?),
        13 => (
            usize::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
            rest.get(2..)?,
        ),
        14 => (
            usize::try_from(u32::from_be_bytes(rest.get(..4)?.try_into().ok()?)).ok()?,
            rest.get(4..)?,
        ),
        _ => (
            usize::try_from(u64::from_be_bytes(rest.get(..8)?.try_into().ok()?)).ok()?,
            rest.get(8..)?,
        ),
    };
    Some((head & 0x0f, rest.get(..size)?, rest.get(size..)?))
}

/// The text of a string element (`None` for any other type, or invalid text).
fn text(kind: u8, payload: &[u8]) -> Option<Cow<'_, str>> {
    let s = std::str::from_utf8(payload).ok()?;
    match kind {
        TEXT | TEXTRAW => Some(Cow::Borrowed(s)),
        // With JSON (or JSON5) escapes: rare, read by serde (JSON5 escapes it does not know
        // give `None`).
        TEXTJ | TEXT5 => serde_json::from_str::<String>(&format!("\"{s}\""))
            .ok()
            .map(Cow::Owned),
        _ => None,
    }
}

/// Calls `each` with the key and, when it is a string, the value of every member of a JSONB
/// object. `None` if `blob` is not a well-formed JSONB object.
pub fn for_each_member(blob: &[u8], mut each: impl FnMut(&str, Option<&str>)) -> Option<()> {
    let (kind, mut members, rest) = element(blob)?;
    if kind != OBJECT || !rest.is_empty() {
        return None;
    }
    while !members.is_empty() {
        let (key_kind, key, after_key) = element(members)?;
        let (value_kind, value, after_value) = element(after_key)?;
        let key = text(key_kind, key)?;
        each(&key, text(value_kind, value).as_deref());
        members = after_value;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jsonb(json: &str) -> Vec<u8> {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.query_row("SELECT jsonb(?)", [json], |r| r.get(0))
            .unwrap()
    }

    fn members(blob: &[u8]) -> Option<Vec<(String, Option<String>)>> {
        let mut out = Vec::new();
        for_each_member(blob, |k, v| out.push((k.to_string(), v.map(String::from))))?;
        Some(out)
    }

    #[test]
    fn reads_what_sqlite_writes() {
        let long = "x".repeat(70_000);
        let json = format!(
            r#"{{"0010,0010":"DOE^J\u00e9r\"o","a":"","b":3,"c":[1,"2"],"d":{{"e":"f"}},"g":"{long}","h":null,"é\n":"ok"}}"#
        );
        let got = members(&jsonb(&json)).unwrap();
        let want: Vec<(String, Option<String>)> = vec![
            ("0010,0010".into(), Some("DOE^Jér\"o".into())),
            ("a".into(), Some(String::new())),
            ("b".into(), None),
            ("c".into(), None),
            ("d".into(), None),
            ("g".into(), Some(long)),
            ("h".into(), None),
            ("é\n".into(), Some("ok".into())),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn refuses_what_is_not_an_object() {
        assert!(members(&jsonb("[1]")).is_none());
        assert!(members(b"").is_none());
        let mut truncated = jsonb(r#"{"a":"bcdef"}"#);
        truncated.pop();
        assert!(members(&truncated).is_none());
        assert_eq!(members(&jsonb("{}")), Some(Vec::new()));
    }
}
