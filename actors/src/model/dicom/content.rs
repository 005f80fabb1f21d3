//! `/instances/{id}/content/...` raw browsing, as Orthanc's `SendPathValue`.

use super::dictionary::parse_tag;
use super::parse::{DataSet, Value, PIXEL_DATA};

#[derive(Debug, Clone, PartialEq)]
pub enum ContentAnswer {
    /// JSON array of strings ("gggg-eeee" tags, or item / fragment indices).
    List(Vec<String>),
    /// Raw bytes of a leaf value (as stored, little endian).
    Bytes(Vec<u8>),
}

/// Browses `path` (URI segments after `/content/`). `None` means 404.
pub fn browse(ds: &DataSet, path: &[&str]) -> Option<ContentAnswer> {
    let path: Vec<&str> = path.iter().copied().filter(|s| !s.is_empty()).collect();
    if (path.len() == 1 || path.len() == 2) && parse_tag(path[0]) == Some(PIXEL_DATA) {
        return pixel_data(ds, path.get(1).copied());
    }
    let mut cur = ds;
    for pair in 0..path.len() / 2 {
        let index: usize = path[2 * pair + 1].parse().ok()?;
        let el = cur.get(parse_tag(path[2 * pair])?)?;
        match &el.value {
            Value::Sequence(items) => cur = items.get(index)?,
            _ => return None,
        }
    }
    if path.len().is_multiple_of(2) {
        let tags = cur
            .elements
            .iter()
            .map(|e| format!("{:04x}-{:04x}", e.tag.0, e.tag.1))
            .collect();
        return Some(ContentAnswer::List(tags));
    }
    let el = cur.get(parse_tag(path[path.len() - 1])?)?;
    match &el.value {
        Value::Sequence(items) => Some(ContentAnswer::List(
            (0..items.len()).map(|i| i.to_string()).collect(),
        )),
        Value::Bytes(b) => Some(ContentAnswer::Bytes(b.clone())),
        _ => None,
    }
}

fn pixel_data(ds: &DataSet, block: Option<&str>) -> Option<ContentAnswer> {
    let el = ds.get(PIXEL_DATA)?;
    // DCMTK counts the basic offset table as item 0 of the pixel sequence.
    let blocks: Vec<&[u8]> = match &el.value {
        Value::Fragments {
            offset_table,
            fragments,
        } => std::iter::once(offset_table.as_slice())
            .chain(fragments.iter().map(|f| f.as_slice()))
            .collect(),
        Value::Bytes(b) => vec![b.as_slice()],
        _ => return None,
    };
    match block {
        None => Some(ContentAnswer::List(
            (0..blocks.len()).map(|i| i.to_string()).collect(),
        )),
        Some(b) => {
            let i: usize = b.parse().ok()?;
            blocks.get(i).map(|b| ContentAnswer::Bytes(b.to_vec()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::{Element, Tag, VR};
    use super::*;

    #[test]
    fn browse_paths() {
        let item = DataSet {
            elements: vec![Element {
                tag: Tag(0x0008, 0x1150),
                vr: VR::UI,
                value: Value::Bytes(b"1.2\0".to_vec()),
            }],
        };
        let ds = DataSet {
            elements: vec![Element {
                tag: Tag(0x0008, 0x1140),
                vr: VR::SQ,
                value: Value::Sequence(vec![item]),
            }],
        };
        assert_eq!(
            browse(&ds, &[]),
            Some(ContentAnswer::List(vec!["0008-1140".into()]))
        );
        assert_eq!(
            browse(&ds, &["0008-1140"]),
            Some(ContentAnswer::List(vec!["0".into()]))
        );
        assert_eq!(
            browse(&ds, &["0008,1140", "0", "0008-1150"]),
            Some(ContentAnswer::Bytes(b"1.2\0".to_vec()))
        );
        assert_eq!(browse(&ds, &["0008-1140", "1", "0008-1150"]), None);
    }
}
