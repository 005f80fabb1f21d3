//! De-identification (`/{level}/{id}/anonymize`): the Basic Profile of DICOM PS3.15 Table
//! E.1-1 in the versions Orthanc offers (`deidentification.txt`), and the walk through the
//! sequences that keeps references consistent: a UID inside a sequence gets the same new
//! value as the attribute it refers to (one [`super::modify::UidMap`] per job).

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, Tag, VR};
use dicom_object::InMemDicomObject;

use super::modify::{
    tag_number, Modification, UidMap, PATIENT_ID, SERIES_INSTANCE_UID, SOP_INSTANCE_UID,
    STUDY_INSTANCE_UID,
};
use crate::model::Level;

/// The versions of the profile, oldest first; the last is the default.
pub const VERSIONS: [&str; 4] = ["2008", "2017c", "2021b", "2023b"];

/// What one version of the profile does.
#[derive(Debug, Default)]
pub struct Profile {
    pub remove: HashSet<u32>,
    pub clear: HashSet<u32>,
    pub uids: HashSet<u32>,
    /// Ranges removed: (group from, group to, element from, element to).
    pub ranges: Vec<(u16, u16, u16, u16)>,
}

impl Profile {
    pub fn removes(&self, t: Tag) -> bool {
        self.remove.contains(&tag_number(t))
            || self
                .ranges
                .iter()
                .any(|&(g0, g1, e0, e1)| (g0..=g1).contains(&t.0) && (e0..=e1).contains(&t.1))
    }
}

fn hex(s: &str) -> Option<u16> {
    u16::from_str_radix(s, 16).ok()
}

fn range(s: &str) -> Option<(u16, u16)> {
    match s.split_once('-') {
        Some((a, b)) => Some((hex(a)?, hex(b)?)),
        None => hex(s).map(|v| (v, v)),
    }
}

/// The profile of a version (`2008`, `2017c`, `2021b`, `2023b`).
pub fn profile(version: &str) -> Option<&'static Profile> {
    static PROFILES: OnceLock<HashMap<&'static str, Profile>> = OnceLock::new();
    let all = PROFILES.get_or_init(|| {
        let mut all: HashMap<&'static str, Profile> = HashMap::new();
        for line in include_str!("deidentification.txt").lines() {
            let mut f = line.split_whitespace();
            let (Some(v), Some(action), Some(tag)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let Some(v) = VERSIONS.iter().find(|x| **x == v) else {
                continue;
            };
            let p = all.entry(v).or_default();
            let Some((g, e)) = tag.split_once(',') else {
                continue;
            };
            let (Some(gs), Some(es)) = (range(g), range(e)) else {
                continue;
            };
            let n = (u32::from(gs.0) << 16) | u32::from(es.0);
            match action {
                "X" => p.remove.insert(n),
                "Z" => p.clear.insert(n),
                "U" => p.uids.insert(n),
                "R" => {
                    p.ranges.push((gs.0, gs.1, es.0, es.1));
                    true
                }
                _ => false,
            };
        }
        all
    });
    all.get(version)
}

/// The `DeidentificationMethod` (0012,0063) of a version used as it is.
pub fn method(version: &str) -> String {
    if version == "2008" {
        "Orthanc mainline - PS 3.15-2008 Table E.1-1".into()
    } else {
        format!("Orthanc mainline - PS 3.15-{version} Table E.1-1 Basic Profile")
    }
}

const RT_REFERENCED_FRAME_OF_REFERENCE: Tag = Tag(0x3006, 0x0010);
const RT_REFERENCED_STUDY: Tag = Tag(0x3006, 0x0012);
const REFERENCED_SOP_INSTANCE_UID: Tag = Tag(0x0008, 0x1155);

fn text(e: &DataElement<InMemDicomObject>) -> Option<String> {
    e.to_str()
        .ok()
        .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
}

fn is_text(vr: VR) -> bool {
    !matches!(
        vr,
        VR::SQ
            | VR::OB
            | VR::OW
            | VR::OF
            | VR::OD
            | VR::OL
            | VR::OV
            | VR::UN
            | VR::US
            | VR::SS
            | VR::UL
            | VR::SL
            | VR::FL
            | VR::FD
            | VR::AT
            | VR::UV
            | VR::SV
    )
}

/// The level whose map gives the new value of a UID attribute, if it is one to map.
fn uid_level(m: &Modification, p: &Profile, t: Tag, path: &[(Tag, usize)]) -> Option<Level> {
    let tags: Vec<Tag> = path.iter().map(|(t, _)| *t).collect();
    if t == REFERENCED_SOP_INSTANCE_UID
        && tags == [RT_REFERENCED_FRAME_OF_REFERENCE, RT_REFERENCED_STUDY]
    {
        return Some(Level::Study);
    }
    match t {
        STUDY_INSTANCE_UID => Some(Level::Study),
        SERIES_INSTANCE_UID => Some(Level::Series),
        SOP_INSTANCE_UID => Some(Level::Instance),
        PATIENT_ID => Some(Level::Patient),
        _ if p.uids.contains(&tag_number(t)) && !m.is_replaced(t) && !m.is_removed(t) => {
            Some(Level::Instance)
        }
        _ => None,
    }
}

/// Maps the UID attributes of the top level (those of the profile and PatientID), then
/// de-identifies every sequence that is not kept.
pub fn visit_top(ds: &mut InMemDicomObject, m: &Modification, p: &Profile, uids: &mut UidMap) {
    let tags: Vec<Tag> = ds.tags().collect();
    for t in tags {
        if m.is_kept(t) {
            continue;
        }
        let top_uid = t == PATIENT_ID || p.uids.contains(&tag_number(t));
        if top_uid && !m.is_replaced(t) && !m.is_removed(t) {
            if let Some(level) = uid_level(m, p, t, &[]) {
                map_value(ds, t, level, uids);
            }
        } else if ds.get(t).is_some_and(|e| e.vr() == VR::SQ) {
            visit_items(ds, t, m, p, uids, &mut Vec::new());
        }
    }
}

fn map_value(ds: &mut InMemDicomObject, t: Tag, level: Level, uids: &mut UidMap) {
    if let Some(e) = ds.get(t) {
        let vr = e.vr();
        let old = text(e).unwrap_or_default();
        let new = uids.map(level, &old);
        ds.put(DataElement::new(t, vr, PrimitiveValue::from(new)));
    }
}

fn visit_items(
    ds: &mut InMemDicomObject,
    t: Tag,
    m: &Modification,
    p: &Profile,
    uids: &mut UidMap,
    path: &mut Vec<(Tag, usize)>,
) {
    ds.update_value(t, |v| {
        if let Some(items) = v.items_mut() {
            for (i, item) in items.iter_mut().enumerate() {
                path.push((t, i));
                visit_item(item, m, p, uids, path);
                path.pop();
            }
        }
    });
}

/// De-identifies one item of a sequence, recursively.
fn visit_item(
    item: &mut InMemDicomObject,
    m: &Modification,
    p: &Profile,
    uids: &mut UidMap,
    path: &mut Vec<(Tag, usize)>,
) {
    let tags: Vec<Tag> = item.tags().collect();
    let remove_private = !m.keep_private_tags();
    for t in tags {
        let Some(vr) = item.get(t).map(|e| e.vr()) else {
            continue;
        };
        if m.path_keep.iter().any(|k| k.covers(path, t)) {
            continue;
        }
        if (remove_private && t.0 % 2 == 1) || p.removes(t) || m.is_removed(t) {
            item.remove_element(t);
        } else if p.clear.contains(&tag_number(t)) {
            if is_text(vr) {
                item.put(DataElement::new(t, vr, PrimitiveValue::Empty));
            } else {
                item.remove_element(t);
            }
        } else if let Some(level) = uid_level(m, p, t, path) {
            map_value(item, t, level, uids);
        } else if vr == VR::SQ {
            visit_items(item, t, m, p, uids, path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_of_the_profile_is_loaded() {
        let p = profile("2023b").unwrap();
        assert_eq!(
            (p.remove.len(), p.clear.len(), p.uids.len(), p.ranges.len()),
            (408, 138, 51, 3)
        );
        assert!(p.removes(Tag(0x5012, 0x0010)), "curve data");
        assert!(p.removes(Tag(0x6002, 0x3000)), "overlay data");
        assert!(!p.removes(Tag(0x6002, 0x0010)), "overlay rows stay");
        assert!(p.clear.contains(&0x0008_0020), "StudyDate is emptied");
        assert!(
            p.uids.contains(&0x0020_0052),
            "FrameOfReferenceUID is mapped"
        );
        assert_eq!(profile("2008").unwrap().remove.len(), 39);
        assert!(profile("2099").is_none());
        assert!(method("2021b").contains("PS 3.15-2021b Table E.1-1 Basic Profile"));
    }
}
