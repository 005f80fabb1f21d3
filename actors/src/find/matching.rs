//! DICOM matching (PS3.4 C.2.2.2): single value, `*`/`?` wildcards, `\` lists, ranges on
//! dates and times, universal match. One implementation, used by the index through the SQL
//! function `dicom_match(value, pattern, flags)` and by the checks done outside SQL.

use rusqlite::functions::FunctionFlags;
use rusqlite::Connection;

use crate::model::main_tags::TagNum;

/// `flags` bit of `dicom_match`: compare without case.
pub const CASE_INSENSITIVE: i64 = 1;
/// `flags` bit of `dicom_match`: `A-B` is a range (DA, TM, DT tags).
pub const RANGE: i64 = 2;

/// Whether a tag has a DA, TM or DT value, where `A-B` means a range.
pub fn is_range_tag(tag: TagNum) -> bool {
    matches!(
        tag,
        (0x0008, 0x0020)
            | (0x0008, 0x0030)
            | (0x0008, 0x0021)
            | (0x0008, 0x0031)
            | (0x0008, 0x0022)
            | (0x0008, 0x0032)
            | (0x0008, 0x0023)
            | (0x0008, 0x0033)
            | (0x0008, 0x002a)
            | (0x0010, 0x0030)
            | (0x0008, 0x0012)
            | (0x0008, 0x0013)
            | (0x0040, 0x0244)
            | (0x0040, 0x0245)
    )
}

/// Whether a tag has a PN value (case sensitivity then follows `CaseSensitivePN`).
pub fn is_person_name(tag: TagNum) -> bool {
    matches!(
        tag,
        (0x0010, 0x0010)
            | (0x0008, 0x0090)
            | (0x0032, 0x1032)
            | (0x0008, 0x1070)
            | (0x0008, 0x1050)
            | (0x0010, 0x1001)
    )
}

/// Whether `value` matches `pattern` under `flags`. An empty pattern or `*` matches anything,
/// even an absent value.
pub fn matches(pattern: &str, flags: i64, value: Option<&str>) -> bool {
    let pattern = pattern.trim();
    if pattern.is_empty() || pattern == "*" {
        return true;
    }
    let Some(value) = value else { return false };
    let value = value.trim();
    pattern
        .split('\\')
        .any(|p| match_one(p.trim(), flags, value))
}

fn match_one(pattern: &str, flags: i64, value: &str) -> bool {
    if flags & RANGE != 0 && pattern.contains('-') {
        let (lo, hi) = pattern.split_once('-').unwrap_or((pattern, ""));
        let (lo, hi) = (lo.trim(), hi.trim());
        return (lo.is_empty() || value >= lo)
            && (hi.is_empty() || value <= hi || value.starts_with(hi));
    }
    if flags & CASE_INSENSITIVE != 0 {
        let (p, v) = (fold(pattern), fold(value));
        compare(&p, &v)
    } else {
        compare(pattern, value)
    }
}

/// Case folding for case-insensitive matches.
pub fn fold(s: &str) -> String {
    s.to_uppercase()
}

fn compare(pattern: &str, value: &str) -> bool {
    if pattern.contains('*') || pattern.contains('?') {
        wildcard(
            &pattern.chars().collect::<Vec<_>>(),
            &value.chars().collect::<Vec<_>>(),
        )
    } else {
        pattern == value
    }
}

fn wildcard(p: &[char], s: &[char]) -> bool {
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Registers `dicom_match(value, pattern, flags)` on a connection.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "dicom_match",
        3,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let value = ctx.get_raw(0).as_str_or_null().unwrap_or(None);
            let pattern = ctx.get_raw(1).as_str().unwrap_or("");
            let flags: i64 = ctx.get(2)?;
            Ok(matches(pattern, flags, value))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dicom_matching_rules() {
        assert!(matches("FOO\\HELLO", 0, Some("HELLO")));
        assert!(!matches("foo", 0, Some("FOO")));
        assert!(matches("foo", CASE_INSENSITIVE, Some("FOO")));
        assert!(matches("*o^b?r*", 0, Some("foo^bar")));
        assert!(matches("MyName[*]", 0, Some("MyName[]")));
        assert!(matches("", 0, None));
        assert!(!matches("A*", 0, None));
        assert!(matches("*é*", CASE_INSENSITIVE, Some("RENÉ")));
        assert!(matches("20200101-20201231", RANGE, Some("20200615")));
        assert!(!matches("-20191231", RANGE, Some("20200615")));
        assert!(matches("20200101-", RANGE, Some("20200615")));
        assert!(matches("-20200615", RANGE, Some("20200615")));
    }

    #[test]
    fn sql_function() {
        let c = Connection::open_in_memory().unwrap();
        register(&c).unwrap();
        let hit: bool = c
            .query_row("SELECT dicom_match('Knee', '*NE*', 1)", [], |r| r.get(0))
            .unwrap();
        assert!(hit);
        let hit: bool = c
            .query_row("SELECT dicom_match(NULL, 'A*', 0)", [], |r| r.get(0))
            .unwrap();
        assert!(!hit);
    }
}
