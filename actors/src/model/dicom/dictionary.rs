//! Tag names and VRs: standard dictionary, DCMTK-style `.dic` files and
//! Orthanc's "Dictionary" configuration option (private tags).

use std::collections::HashMap;

use dicom_core::dictionary::{DataDictionary, VirtualVr};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

/// Name given by DCMTK/Orthanc to tags missing from the dictionary.
pub const UNKNOWN_TAG_NAME: &str = "Unknown Tag & Data";

#[derive(Debug, Clone, PartialEq)]
pub struct PrivateEntry {
    pub name: String,
    pub vr: VR,
}

/// A range entry of a `.dic` file: group/element ranges with a parity rule.
#[derive(Debug, Clone)]
struct RangeEntry {
    group: (u16, u16, Parity),
    element: (u16, u16, Parity),
    entry: PrivateEntry,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Parity {
    Any,
    Odd,
    Even,
}

/// Dictionary overlay on top of the standard DICOM dictionary.
#[derive(Debug, Clone, Default)]
pub struct PrivateDictionary {
    /// Public (or creator-less) exact entries, override the standard dictionary.
    public: HashMap<(u16, u16), PrivateEntry>,
    ranges: Vec<RangeEntry>,
    /// (group, creator, low byte of element) -> entry
    private: HashMap<(u16, String, u8), PrivateEntry>,
}

impl PrivateDictionary {
    pub fn new() -> Self {
        Self::default()
    }

    /// The tag of a name registered here (private tags in their first block, `gggg,10xx`).
    pub fn tag_of(&self, name: &str) -> Option<Tag> {
        self.public
            .iter()
            .find(|(_, e)| e.name == name)
            .map(|(k, _)| Tag(k.0, k.1))
            .or_else(|| {
                self.private
                    .iter()
                    .find(|(_, e)| e.name == name)
                    .map(|(k, _)| Tag(k.0, 0x1000 | u16::from(k.2)))
            })
    }

    /// Registers a tag as with Orthanc's "Dictionary" configuration option.
    /// `creator` is required for private tags (odd groups).
    pub fn add(&mut self, tag: Tag, vr: VR, name: &str, creator: Option<&str>) {
        let entry = PrivateEntry {
            name: name.to_string(),
            vr,
        };
        match creator {
            Some(c) if tag.0 % 2 == 1 && !c.is_empty() => {
                self.private
                    .insert((tag.0, c.to_string(), (tag.1 & 0xff) as u8), entry);
            }
            _ => {
                self.public.insert((tag.0, tag.1), entry);
            }
        }
    }

    /// Loads Orthanc's "Dictionary" configuration section:
    /// `{"4321,1012": ["LO", "RadioButton3", 1, 1, "RadioLogic"]}`.
    pub fn add_orthanc_config(&mut self, config: &serde_json::Value) {
        let Some(obj) = config.as_object() else {
            return;
        };
        for (k, v) in obj {
            let (Some(tag), Some(arr)) = (parse_tag(k), v.as_array()) else {
                continue;
            };
            let vr = arr
                .first()
                .and_then(|x| x.as_str())
                .and_then(|s| s.parse().ok());
            let name = arr.get(1).and_then(|x| x.as_str());
            let creator = arr.get(4).and_then(|x| x.as_str());
            if let (Some(vr), Some(name)) = (vr, name) {
                self.add(tag, vr, name, creator);
            }
        }
    }

    /// Loads a DCMTK data dictionary (`dicom.dic`, `private.dic`).
    pub fn add_dcmtk_dic(&mut self, text: &str) {
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') || !line.starts_with('(') {
                continue;
            }
            let Some(close) = line.find(')') else {
                continue;
            };
            let key = &line[1..close];
            let mut cols = line[close + 1..]
                .split('\t')
                .map(str::trim)
                .filter(|c| !c.is_empty());
            let (Some(vr), Some(name)) = (cols.next(), cols.next()) else {
                continue;
            };
            let name: String = name.split_whitespace().collect();
            let vr = match vr {
                "xs" | "lt" => VR::US,
                "ox" | "px" => VR::OW,
                "na" | "up" => VR::UL,
                v => v.parse().unwrap_or(VR::UN),
            };
            let entry = PrivateEntry { name, vr };
            let parts: Vec<&str> = key.split(',').collect();
            if parts.len() == 3 {
                let creator = parts[1].trim_matches('"').to_string();
                if let (Ok(g), Ok(e)) = (
                    u16::from_str_radix(parts[0], 16),
                    u8::from_str_radix(parts[2], 16),
                ) {
                    self.private.insert((g, creator, e), entry);
                }
            } else if parts.len() == 2 {
                match (parse_range(parts[0]), parse_range(parts[1])) {
                    (Some(g), Some(e)) if g.0 == g.1 && e.0 == e.1 => {
                        self.public.insert((g.0, e.0), entry);
                    }
                    (Some(group), Some(element)) => self.ranges.push(RangeEntry {
                        group,
                        element,
                        entry,
                    }),
                    _ => {}
                }
            }
        }
    }

    fn lookup(&self, tag: Tag, creator: Option<&str>) -> Option<PrivateEntry> {
        if let Some(c) = creator {
            if let Some(e) = self
                .private
                .get(&(tag.0, c.to_string(), (tag.1 & 0xff) as u8))
            {
                return Some(e.clone());
            }
        }
        if let Some(e) = self.public.get(&(tag.0, tag.1)) {
            return Some(e.clone());
        }
        self.ranges
            .iter()
            .find(|r| in_range(tag.0, r.group) && in_range(tag.1, r.element))
            .map(|r| r.entry.clone())
    }

    /// Whether DCMTK-style public entries were loaded (then they are authoritative).
    fn has_public(&self) -> bool {
        !self.ranges.is_empty()
    }

    /// Name of a tag, as Orthanc reports it in "Name".
    pub fn name(&self, tag: Tag, creator: Option<&str>) -> String {
        if let Some(n) = main_tag_patch(tag) {
            return n.to_string();
        }
        if tag.0 % 2 == 1 && tag.1 < 0x0100 && tag.0 > 0x0008 && tag.0 != 0xffff {
            if let Some(e) = self.public.get(&(tag.0, tag.1)) {
                return e.name.clone();
            }
            return match tag.1 {
                0x0000 => "PrivateGroupLength".into(),
                0x0010..=0x00ff => "PrivateCreator".into(),
                _ => UNKNOWN_TAG_NAME.into(),
            };
        }
        if let Some(e) = self.lookup(tag, creator) {
            return e.name;
        }
        if tag.0 % 2 == 1 {
            return UNKNOWN_TAG_NAME.into();
        }
        if self.has_public() {
            return UNKNOWN_TAG_NAME.into();
        }
        if tag.1 == 0 && tag.0 != 0x0002 {
            return "GenericGroupLength".into();
        }
        match StandardDataDictionary.by_tag(tag) {
            Some(e) => e.alias.to_string(),
            None => UNKNOWN_TAG_NAME.into(),
        }
    }

    /// Dictionary VR of a tag (None if unknown).
    pub fn vr(&self, tag: Tag, creator: Option<&str>) -> Option<VR> {
        if let Some(e) = self.lookup(tag, creator) {
            return Some(e.vr);
        }
        if tag.0 % 2 == 1 {
            return match tag.1 {
                0x0000 => Some(VR::UL),
                0x0010..=0x00ff => Some(VR::LO),
                _ => None,
            };
        }
        standard_vr(tag)
    }
}

/// Orthanc's patches for important tags (names independent of DCMTK version).
fn main_tag_patch(tag: Tag) -> Option<&'static str> {
    Some(match (tag.0, tag.1) {
        (0x0008, 0x0050) => "AccessionNumber",
        (0x0008, 0x0018) => "SOPInstanceUID",
        (0x0010, 0x0020) => "PatientID",
        (0x0020, 0x000e) => "SeriesInstanceUID",
        (0x0020, 0x000d) => "StudyInstanceUID",
        (0x7fe0, 0x0010) => "PixelData",
        (0x0054, 0x1330) => "ImageIndex",
        (0x0020, 0x0013) => "InstanceNumber",
        (0x0054, 0x0081) => "NumberOfSlices",
        (0x0028, 0x0008) => "NumberOfFrames",
        (0x0018, 0x1090) => "CardiacNumberOfImages",
        (0x0020, 0x1002) => "ImagesInAcquisition",
        (0x0010, 0x0010) => "PatientName",
        (0x0020, 0x0032) => "ImagePositionPatient",
        (0x0020, 0x0037) => "ImageOrientationPatient",
        (0x0010, 0x1000) => "OtherPatientIDs",
        _ => return None,
    })
}

fn standard_vr(tag: Tag) -> Option<VR> {
    if tag.1 == 0 {
        return Some(VR::UL);
    }
    StandardDataDictionary.by_tag(tag).map(|e| match e.vr {
        VirtualVr::Exact(vr) => vr,
        VirtualVr::Xs => VR::US,
        _ => VR::OW,
    })
}

/// Whether the standard VR depends on context (US/SS "xs", LUT data "lt"):
/// DCMTK leaves such elements unresolved when read with implicit VR.
pub fn is_context_dependent_vr(tag: Tag) -> bool {
    match StandardDataDictionary.by_tag(tag).map(|e| e.vr) {
        Some(VirtualVr::Lt) => true,
        // LUT descriptors stay unresolved; pixel values become US
        Some(VirtualVr::Xs) => tag.0 == 0x0028 && (tag.1 & 0xff00 == 0x1100 || tag.1 == 0x3002),
        _ => false,
    }
}

/// Whether the standard VR is "US or SS" (xs).
pub fn is_xs(tag: Tag) -> bool {
    matches!(
        StandardDataDictionary.by_tag(tag).map(|e| e.vr),
        Some(VirtualVr::Xs)
    )
}

/// VR used for an element read with the implicit VR transfer syntax.
pub fn implicit_vr(tag: Tag) -> VR {
    if tag.0 % 2 == 1 {
        return match tag.1 {
            0x0000 => VR::UL,
            0x0010..=0x00ff => VR::LO,
            _ => VR::UN,
        };
    }
    standard_vr(tag).unwrap_or(VR::UN)
}

/// Parses "gggg,eeee", "gggg-eeee", "ggggeeee", or a standard keyword.
pub fn parse_tag(s: &str) -> Option<Tag> {
    let s = s.trim();
    let hex = |x: &str| {
        if x.len() == 4 && x.chars().all(|c| c.is_ascii_hexdigit()) {
            u16::from_str_radix(x, 16).ok()
        } else {
            None
        }
    };
    if s.len() == 9 && (s.as_bytes()[4] == b',' || s.as_bytes()[4] == b'-') {
        return Some(Tag(hex(&s[..4])?, hex(&s[5..])?));
    }
    if s.len() == 8 {
        if let (Some(g), Some(e)) = (hex(&s[..4]), hex(&s[4..])) {
            return Some(Tag(g, e));
        }
    }
    if let Some(t) = main_tag_by_name(s) {
        return Some(t);
    }
    StandardDataDictionary.by_name(s).map(|e| match e.tag {
        dicom_core::dictionary::TagRange::Single(t) => t,
        _ => Tag(0xffff, 0xffff),
    })
}

fn main_tag_by_name(s: &str) -> Option<Tag> {
    [
        (0x0008u16, 0x0050u16),
        (0x0008, 0x0018),
        (0x0010, 0x0020),
        (0x0020, 0x000e),
        (0x0020, 0x000d),
        (0x7fe0, 0x0010),
        (0x0010, 0x0010),
    ]
    .into_iter()
    .map(|(g, e)| Tag(g, e))
    .find(|t| main_tag_patch(*t) == Some(s))
}

fn parse_range(s: &str) -> Option<(u16, u16, Parity)> {
    let s = s.trim();
    for (sep, parity) in [
        ("-o-", Parity::Odd),
        ("-e-", Parity::Even),
        ("-u-", Parity::Any),
    ] {
        if let Some((a, b)) = s.split_once(sep) {
            return Some((parse_x(a)?.0, parse_x(b)?.1, parity));
        }
    }
    if let Some((a, b)) = s.split_once('-') {
        return Some((parse_x(a)?.0, parse_x(b)?.1, Parity::Any));
    }
    let (lo, hi) = parse_x(s)?;
    Some((lo, hi, Parity::Any))
}

/// Hex with 'x' wildcards ("60xx") -> (min, max).
fn parse_x(s: &str) -> Option<(u16, u16)> {
    let lo = u16::from_str_radix(&s.replace(['x', 'X'], "0"), 16).ok()?;
    let hi = u16::from_str_radix(&s.replace(['x', 'X'], "F"), 16).ok()?;
    Some((lo, hi))
}

fn in_range(v: u16, r: (u16, u16, Parity)) -> bool {
    v >= r.0
        && v <= r.1
        && match r.2 {
            Parity::Any => true,
            Parity::Odd => v % 2 == 1,
            Parity::Even => v.is_multiple_of(2),
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let d = PrivateDictionary::new();
        assert_eq!(d.name(Tag(0x0010, 0x0010), None), "PatientName");
        assert_eq!(d.name(Tag(0x0009, 0x0010), None), "PrivateCreator");
        assert_eq!(d.name(Tag(0x0009, 0x1010), Some("X")), UNKNOWN_TAG_NAME);
        assert_eq!(d.name(Tag(0x0008, 0x0000), None), "GenericGroupLength");
        assert_eq!(implicit_vr(Tag(0x0028, 0x0010)), VR::US);
    }

    #[test]
    fn orthanc_config_and_dic() {
        let mut d = PrivateDictionary::new();
        let cfg = serde_json::json!({"4321,1012": ["LO", "RadioButton3", 1, 1, "RadioLogic"]});
        d.add_orthanc_config(&cfg);
        assert_eq!(
            d.name(Tag(0x4321, 0x1012), Some("RadioLogic")),
            "RadioButton3"
        );
        assert_eq!(d.vr(Tag(0x4321, 0x1012), Some("RadioLogic")), Some(VR::LO));
        d.add_dcmtk_dic("(6000-60FF,3000)\tox\tOverlayData\t1\tDICOM\n(0019,\"GEMS_ACQU_01\",02)\tSL\tNumberOfCellsInDetector\t1\tPrivateTag\n");
        assert_eq!(d.name(Tag(0x6002, 0x3000), None), "OverlayData");
        assert_eq!(
            d.name(Tag(0x0019, 0x1002), Some("GEMS_ACQU_01")),
            "NumberOfCellsInDetector"
        );
        assert_eq!(parse_tag("0008-103E"), Some(Tag(0x0008, 0x103e)));
        assert_eq!(parse_tag("PatientName"), Some(Tag(0x0010, 0x0010)));
    }
}
