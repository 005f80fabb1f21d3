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
    Pattern::compile(pattern, flags).matches(value)
}

/// A pattern prepared once (SQLite keeps it for all the rows of a statement).
#[derive(Debug, Clone)]
pub struct Pattern {
    flags: i64,
    universal: bool,
    alternatives: Vec<Alternative>,
}

#[derive(Debug, Clone)]
enum Alternative {
    Range(String, String),
    /// Folded when case-insensitive.
    Exact(String),
    Wildcard(Vec<char>),
}

impl Pattern {
    pub fn compile(pattern: &str, flags: i64) -> Pattern {
        let pattern = pattern.trim();
        // `*` matches every value, but not a missing tag (as Orthanc, its issue 90).
        let universal = pattern.is_empty();
        let ci = flags & CASE_INSENSITIVE != 0;
        let alternatives = pattern
            .split('\\')
            .map(|p| {
                let p = p.trim();
                if flags & RANGE != 0 && p.contains('-') {
                    let (lo, hi) = p.split_once('-').unwrap_or((p, ""));
                    return Alternative::Range(lo.trim().to_string(), hi.trim().to_string());
                }
                let p = if ci { fold(p) } else { p.to_string() };
                if p.contains('*') || p.contains('?') {
                    Alternative::Wildcard(p.chars().collect())
                } else {
                    Alternative::Exact(p)
                }
            })
            .collect();
        Pattern {
            flags,
            universal,
            alternatives,
        }
    }

    pub fn matches(&self, value: Option<&str>) -> bool {
        if self.universal {
            return true;
        }
        let Some(value) = value else { return false };
        let value = value.trim();
        let ci = self.flags & CASE_INSENSITIVE != 0;
        // Folding allocates: only for values that need it.
        let folded = if ci && !value.is_ascii() {
            Some(fold(value))
        } else {
            None
        };
        self.alternatives.iter().any(|alt| match alt {
            Alternative::Range(lo, hi) => {
                (lo.is_empty() || value >= lo.as_str())
                    && (hi.is_empty() || value <= hi.as_str() || value.starts_with(hi.as_str()))
            }
            Alternative::Exact(p) => match (&folded, ci) {
                (Some(f), _) => f == p,
                (None, true) => value.eq_ignore_ascii_case(p),
                (None, false) => value == p,
            },
            Alternative::Wildcard(p) => match &folded {
                Some(f) => wildcard_value(p, f, false),
                None => wildcard_value(p, value, ci),
            },
        })
    }
}

/// Case folding for case-insensitive matches.
pub fn fold(s: &str) -> String {
    s.to_uppercase()
}

/// `*`/`?` matching of a value of `len` chars (the `i`th given by `at`) against `p`.
fn wildcard(p: &[char], len: usize, at: impl Fn(usize) -> char) -> bool {
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < len {
        if pi < p.len() && (p[pi] == '?' || p[pi] == at(si)) {
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

/// Wildcard matching of a value, without allocating when it is ASCII.
fn wildcard_value(p: &[char], value: &str, upper: bool) -> bool {
    if value.is_ascii() {
        let b = value.as_bytes();
        if upper {
            wildcard(p, b.len(), |i| b[i].to_ascii_uppercase() as char)
        } else {
            wildcard(p, b.len(), |i| b[i] as char)
        }
    } else {
        let chars: Vec<char> = value.chars().collect();
        wildcard(p, chars.len(), |i| chars[i])
    }
}

/// Registers `dicom_match(value, pattern, flags)` on a connection.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "dicom_match",
        3,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let flags: i64 = ctx.get(2)?;
            // Compiled once per statement (the pattern is a bound parameter).
            let pattern = ctx.get_or_create_aux(1, |v| -> rusqlite::Result<Pattern> {
                Ok(Pattern::compile(v.as_str().unwrap_or(""), flags))
            })?;
            let value = ctx.get_raw(0).as_str_or_null().unwrap_or(None);
            Ok(pattern.matches(value))
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
