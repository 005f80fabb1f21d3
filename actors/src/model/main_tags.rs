//! Orthanc's main DICOM tags per level (DicomMap.cpp `DEFAULT_*_MAIN_DICOM_TAGS`): the tags
//! copied into the index and shown in `MainDicomTags`.

use super::Level;

/// A DICOM tag as (group, element).
pub type TagNum = (u16, u16);

/// One main tag: its number and Orthanc's name for it.
#[derive(Debug, Clone, Copy)]
pub struct MainTag {
    pub tag: TagNum,
    pub name: &'static str,
}

const fn t(group: u16, element: u16, name: &'static str) -> MainTag {
    MainTag {
        tag: (group, element),
        name,
    }
}

pub const PATIENT_ID: TagNum = (0x0010, 0x0020);
pub const STUDY_INSTANCE_UID: TagNum = (0x0020, 0x000d);
pub const SERIES_INSTANCE_UID: TagNum = (0x0020, 0x000e);
pub const SOP_INSTANCE_UID: TagNum = (0x0008, 0x0018);
pub const SOP_CLASS_UID: TagNum = (0x0008, 0x0016);
pub const ACCESSION_NUMBER: TagNum = (0x0008, 0x0050);

pub const PATIENT: &[MainTag] = &[
    t(0x0010, 0x0010, "PatientName"),
    t(0x0010, 0x0030, "PatientBirthDate"),
    t(0x0010, 0x0040, "PatientSex"),
    t(0x0010, 0x1000, "OtherPatientIDs"),
    t(0x0010, 0x0020, "PatientID"),
];

pub const STUDY: &[MainTag] = &[
    t(0x0008, 0x0020, "StudyDate"),
    t(0x0008, 0x0030, "StudyTime"),
    t(0x0020, 0x0010, "StudyID"),
    t(0x0008, 0x1030, "StudyDescription"),
    t(0x0008, 0x0050, "AccessionNumber"),
    t(0x0020, 0x000d, "StudyInstanceUID"),
    t(0x0032, 0x1060, "RequestedProcedureDescription"),
    t(0x0008, 0x0080, "InstitutionName"),
    t(0x0032, 0x1032, "RequestingPhysician"),
    t(0x0008, 0x0090, "ReferringPhysicianName"),
];

pub const SERIES: &[MainTag] = &[
    t(0x0008, 0x0021, "SeriesDate"),
    t(0x0008, 0x0031, "SeriesTime"),
    t(0x0008, 0x0060, "Modality"),
    t(0x0008, 0x0070, "Manufacturer"),
    t(0x0008, 0x1010, "StationName"),
    t(0x0008, 0x103e, "SeriesDescription"),
    t(0x0018, 0x0015, "BodyPartExamined"),
    t(0x0018, 0x0024, "SequenceName"),
    t(0x0018, 0x1030, "ProtocolName"),
    t(0x0020, 0x0011, "SeriesNumber"),
    t(0x0018, 0x1090, "CardiacNumberOfImages"),
    t(0x0020, 0x1002, "ImagesInAcquisition"),
    t(0x0020, 0x0105, "NumberOfTemporalPositions"),
    t(0x0054, 0x0081, "NumberOfSlices"),
    t(0x0054, 0x0101, "NumberOfTimeSlices"),
    t(0x0020, 0x000e, "SeriesInstanceUID"),
    t(0x0020, 0x0037, "ImageOrientationPatient"),
    t(0x0054, 0x1000, "SeriesType"),
    t(0x0008, 0x1070, "OperatorsName"),
    t(0x0040, 0x0254, "PerformedProcedureStepDescription"),
    t(0x0018, 0x1400, "AcquisitionDeviceProcessingDescription"),
    t(0x0018, 0x0010, "ContrastBolusAgent"),
];

pub const INSTANCE: &[MainTag] = &[
    t(0x0008, 0x0012, "InstanceCreationDate"),
    t(0x0008, 0x0013, "InstanceCreationTime"),
    t(0x0020, 0x0012, "AcquisitionNumber"),
    t(0x0054, 0x1330, "ImageIndex"),
    t(0x0020, 0x0013, "InstanceNumber"),
    t(0x0028, 0x0008, "NumberOfFrames"),
    t(0x0020, 0x0100, "TemporalPositionIdentifier"),
    t(0x0008, 0x0018, "SOPInstanceUID"),
    t(0x0020, 0x0032, "ImagePositionPatient"),
    t(0x0020, 0x4000, "ImageComments"),
    t(0x0020, 0x0037, "ImageOrientationPatient"),
];

/// The main tags of a level.
pub fn for_level(level: Level) -> &'static [MainTag] {
    match level {
        Level::Patient => PATIENT,
        Level::Study => STUDY,
        Level::Series => SERIES,
        Level::Instance => INSTANCE,
    }
}

/// Formats a tag as Orthanc's JSON keys do: `gggg,eeee` in lowercase hex.
pub fn tag_key(tag: TagNum) -> String {
    format!("{:04x},{:04x}", tag.0, tag.1)
}

/// Parses `gggg,eeee` or `ggggeeee` (hex, any case).
pub fn parse_tag_key(s: &str) -> Option<TagNum> {
    let b = s.as_bytes();
    let (g, e) = match b.len() {
        9 if b[4] == b',' || b[4] == b'-' => (&s[..4], &s[5..]),
        8 => (&s[..4], &s[4..]),
        _ => return None,
    };
    let hex = |x: &str| {
        if x.bytes().all(|c| c.is_ascii_hexdigit()) {
            u16::from_str_radix(x, 16).ok()
        } else {
            None
        }
    };
    Some((hex(g)?, hex(e)?))
}

/// Orthanc's signature of the main tags of a level (`/system` `MainDicomTags` and the
/// `MainDicomTagsSignature` metadata): the sorted `gggg,eeee` keys joined with `;`.
pub fn signature(level: Level) -> String {
    let mut keys: Vec<String> = for_level(level).iter().map(|m| tag_key(m.tag)).collect();
    keys.sort();
    keys.join(";")
}

/// Finds the name of a main tag of any level.
pub fn name_of(tag: TagNum) -> Option<&'static str> {
    Level::ALL
        .iter()
        .flat_map(|l| for_level(*l).iter())
        .find(|m| m.tag == tag)
        .map(|m| m.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_keys_round_trip() {
        assert_eq!(tag_key((0x0010, 0x0010)), "0010,0010");
        assert_eq!(parse_tag_key("0020,000D"), Some((0x20, 0x0d)));
        assert_eq!(parse_tag_key("0020000d"), Some((0x20, 0x0d)));
        assert_eq!(parse_tag_key("zz"), None);
        assert_eq!(name_of((0x0008, 0x0050)), Some("AccessionNumber"));
    }
}
