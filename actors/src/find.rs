//! DICOM matching of `/tools/find` (and later of the C-FIND SCP): one implementation of the
//! rules of PS3.4 C.2.2.2 (single value, `*`/`?` wildcards, `\` lists, ranges on dates and
//! times, universal match), independent of HTTP.
//!
//! This first version scans the main tags of the resources of one level; issue 4 replaces
//! the scan by indexed lookups, keeping these rules.

use serde_json::{Map, Value};

use crate::model::main_tags::{self, TagNum};
use crate::model::Level;

/// One constraint of a query.
#[derive(Debug, Clone)]
pub struct Constraint {
    pub tag: TagNum,
    pub pattern: String,
    pub case_sensitive: bool,
    /// The level whose main tags hold the tag.
    pub level: Level,
}

/// Errors of a query.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    /// A tag that is not a main tag of the level or of its ancestors.
    #[error("tag {0} cannot be used in a query at this level yet")]
    UnsupportedTag(String),
    /// A malformed range or pattern.
    #[error("bad query: {0}")]
    BadQuery(String),
}

fn is_range_tag(tag: TagNum) -> bool {
    matches!(
        tag,
        (0x0008, 0x0020)
            | (0x0008, 0x0030)
            | (0x0008, 0x0021)
            | (0x0008, 0x0031)
            | (0x0010, 0x0030)
            | (0x0008, 0x0012)
            | (0x0008, 0x0013)
    )
}

fn is_person_name(tag: TagNum) -> bool {
    matches!(
        tag,
        (0x0010, 0x0010) | (0x0008, 0x0090) | (0x0032, 0x1032) | (0x0008, 0x1070)
    )
}

/// Builds the constraint of `tag: pattern` for a query at `level`.
pub fn constraint(
    level: Level,
    tag: TagNum,
    pattern: &str,
    case_sensitive: Option<bool>,
    case_sensitive_pn: bool,
) -> Result<Constraint, FindError> {
    let owner = Level::ALL
        .iter()
        .copied()
        .filter(|l| *l <= level)
        .find(|l| main_tags::for_level(*l).iter().any(|m| m.tag == tag))
        .ok_or_else(|| FindError::UnsupportedTag(main_tags::tag_key(tag)))?;
    let case_sensitive = case_sensitive.unwrap_or(true)
        && (!is_person_name(tag) || case_sensitive.is_some() || case_sensitive_pn);
    Ok(Constraint {
        tag,
        pattern: pattern.to_string(),
        case_sensitive,
        level: owner,
    })
}

/// Whether a value matches a DICOM pattern.
pub fn matches(c: &Constraint, value: Option<&str>) -> bool {
    let pattern = c.pattern.trim();
    if pattern.is_empty() || pattern == "*" {
        return true;
    }
    let Some(value) = value else { return false };
    pattern.split('\\').any(|p| match_one(c, p, value))
}

fn match_one(c: &Constraint, pattern: &str, value: &str) -> bool {
    if is_range_tag(c.tag) && pattern.contains('-') {
        let (lo, hi) = pattern.split_once('-').unwrap_or((pattern, ""));
        let v = value.trim();
        return (lo.is_empty() || v >= lo.trim())
            && (hi.is_empty() || v <= hi.trim() || v.starts_with(hi.trim()));
    }
    let (p, v) = if c.case_sensitive {
        (pattern.to_string(), value.to_string())
    } else {
        (pattern.to_uppercase(), value.to_uppercase())
    };
    if p.contains('*') || p.contains('?') {
        wildcard(p.as_bytes(), v.as_bytes())
    } else {
        p == v
    }
}

fn wildcard(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
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
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// Whether a resource matches every constraint; `tags_at(level)` gives the stored main tags of
/// the resource or of its ancestor at that level.
pub fn matches_all<'a>(
    constraints: &[Constraint],
    tags_at: impl Fn(Level) -> Option<&'a Map<String, Value>>,
) -> bool {
    constraints.iter().all(|c| {
        let value = tags_at(c.level)
            .and_then(|m| m.get(&main_tags::tag_key(c.tag)))
            .and_then(Value::as_str);
        matches(c, value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(tag: TagNum, p: &str, cs: bool) -> Constraint {
        Constraint {
            tag,
            pattern: p.into(),
            case_sensitive: cs,
            level: Level::Study,
        }
    }

    #[test]
    fn dicom_matching_rules() {
        let name = (0x0010, 0x0010);
        assert!(matches(&c(name, "FOO\\HELLO", true), Some("HELLO")));
        assert!(!matches(&c(name, "foo", true), Some("FOO")));
        assert!(matches(&c(name, "foo", false), Some("FOO")));
        assert!(matches(&c(name, "*o^b?r*", true), Some("foo^bar")));
        assert!(matches(&c(name, "", true), None));
        assert!(!matches(&c(name, "A*", true), None));
        let date = (0x0008, 0x0020);
        assert!(matches(
            &c(date, "20200101-20201231", true),
            Some("20200615")
        ));
        assert!(!matches(&c(date, "-20191231", true), Some("20200615")));
        assert!(matches(&c(date, "20200101-", true), Some("20200615")));
    }
}
