//! Paths into sequences, as `/modify` takes them in `Replace` and `Remove`:
//! `DimensionIndexSequence[1].DimensionDescriptionLabel`, `(5200,9229)[*].0008,1140[*].0008,1155`
//! (items counted from 0, `*` for every item). A path reaches existing items only.

use dicom_core::Tag;
use dicom_object::InMemDicomObject;
use serde::{Deserialize, Serialize};

use super::dictionary::parse_tag;

/// One step down: a sequence and which of its items (`None`: all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub tag: (u16, u16),
    pub item: Option<usize>,
}

/// A tag inside items of sequences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagPath {
    pub steps: Vec<Step>,
    pub tag: (u16, u16),
}

/// Why a path cannot be read.
#[derive(Debug, PartialEq)]
pub enum PathError {
    /// A name that is no tag: Orthanc's `UnknownDicomTag`.
    UnknownTag(String),
    /// A malformed step: Orthanc's `ParameterOutOfRange`.
    BadPath(String),
}

/// Whether a name is a path into sequences rather than a tag.
pub fn is_path(name: &str) -> bool {
    name.contains('.') || name.contains('[')
}

/// Reads a path; `lookup` names tags (the standard dictionary first).
pub fn parse(name: &str, lookup: &dyn Fn(&str) -> Option<Tag>) -> Result<TagPath, PathError> {
    let tag_of = |s: &str| {
        let s = s.trim();
        let s = s
            .strip_prefix('(')
            .and_then(|x| x.strip_suffix(')'))
            .unwrap_or(s);
        parse_tag(s)
            .or_else(|| lookup(s))
            .map(|t| (t.0, t.1))
            .ok_or_else(|| PathError::UnknownTag(s.to_string()))
    };
    let parts: Vec<&str> = name.split('.').collect();
    let (last, parents) = parts.split_last().expect("split gives one part at least");
    let mut steps = Vec::new();
    for p in parents {
        let bad = || PathError::BadPath(format!("Parent path doesn't contain an index: {name}"));
        let (tag, index) = p
            .trim()
            .strip_suffix(']')
            .and_then(|x| x.split_once('['))
            .ok_or_else(bad)?;
        let item = match index.trim() {
            "*" => None,
            n => Some(
                n.parse::<usize>()
                    .map_err(|_| PathError::BadPath(format!("Bad index in a path: {name}")))?,
            ),
        };
        steps.push(Step {
            tag: tag_of(tag)?,
            item,
        });
    }
    if last.contains('[') {
        return Err(PathError::BadPath(format!(
            "A path must end with a tag: {name}"
        )));
    }
    Ok(TagPath {
        steps,
        tag: tag_of(last)?,
    })
}

impl TagPath {
    /// Whether this path names the element `tag` reached through `items` (sequence, item
    /// index), or one of its ancestors.
    pub fn covers(&self, items: &[(Tag, usize)], tag: Tag) -> bool {
        let node = items
            .iter()
            .map(|(t, i)| (*t, Some(*i)))
            .chain(std::iter::once((tag, None)));
        let mine = self
            .steps
            .iter()
            .map(|s| (Tag(s.tag.0, s.tag.1), s.item, false))
            .chain(std::iter::once((Tag(self.tag.0, self.tag.1), None, true)));
        let depth = self.steps.len() + 1;
        depth <= items.len() + 1
            && mine.zip(node).all(|((t, item, last), (nt, ni))| {
                t == nt && (last || item.is_none() || item == ni)
            })
    }
}

/// Calls `f` on every existing item the steps of `path` lead to.
pub fn for_each_item(
    ds: &mut InMemDicomObject,
    steps: &[Step],
    f: &mut dyn FnMut(&mut InMemDicomObject),
) {
    let Some((first, rest)) = steps.split_first() else {
        f(ds);
        return;
    };
    ds.update_value(Tag(first.tag.0, first.tag.1), |v| {
        if let Some(items) = v.items_mut() {
            for (i, item) in items.iter_mut().enumerate() {
                if first.item.is_none_or(|n| n == i) {
                    for_each_item(item, rest, f);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_read_as_orthanc_writes_them() {
        let none = |_: &str| None;
        let p = parse(
            "SharedFunctionalGroupsSequence[*].ReferencedImageSequence[1].ReferencedSOPClassUID",
            &none,
        )
        .unwrap();
        assert_eq!(
            p.steps,
            vec![
                Step {
                    tag: (0x5200, 0x9229),
                    item: None
                },
                Step {
                    tag: (0x0008, 0x1140),
                    item: Some(1)
                }
            ]
        );
        assert_eq!(p.tag, (0x0008, 0x1150));
        assert_eq!(
            parse("(5200,9229)[0].0008,1155", &none)
                .unwrap()
                .steps
                .len(),
            1
        );
        assert!(matches!(
            parse("PatientName.PatientID", &none),
            Err(PathError::BadPath(_))
        ));
        assert!(matches!(
            parse("Nope[0].PatientID", &none),
            Err(PathError::UnknownTag(_))
        ));
        assert!(matches!(
            parse("ReferencedImageSequence[-1].PatientID", &none),
            Err(PathError::BadPath(_))
        ));
    }
}
