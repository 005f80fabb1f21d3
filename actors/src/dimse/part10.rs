//! Minimal DICOM Part-10 file handling: building a file from a received data
//! set, and locating the data set of a file to send. The data set bytes are
//! never decoded, so any transfer syntax (including deflated) passes through.

/// Implementation Class UID written in file meta information and A-ASSOCIATE.
/// Note: kept at 28 characters and the version name at 16, like DCMTK's, so
/// that a re-stored file keeps the size of a DCMTK-written original.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.88407716226314917410329";
/// Implementation Version Name (16 characters at most).
pub const IMPLEMENTATION_VERSION_NAME: &str = "PACSNODE_DIMSE_1";

/// What the SCU needs to know about a Part-10 file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part10Info {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub transfer_syntax: String,
    /// Offset of the first byte of the data set (after the meta group).
    pub dataset_offset: usize,
}

fn has_long_length(vr: &[u8]) -> bool {
    matches!(
        vr,
        b"OB"
            | b"OD"
            | b"OF"
            | b"OL"
            | b"OV"
            | b"OW"
            | b"SQ"
            | b"SV"
            | b"UC"
            | b"UN"
            | b"UR"
            | b"UT"
            | b"UV"
    )
}

fn uid_value(v: &[u8]) -> String {
    String::from_utf8_lossy(v)
        .trim_end_matches(['\0', ' '])
        .trim()
        .to_string()
}

/// Parses the file meta information of a Part-10 file.
pub fn parse_part10(file: &[u8]) -> Result<Part10Info, String> {
    if file.len() < 132 || &file[128..132] != b"DICM" {
        return Err("missing 128-byte preamble and DICM prefix".into());
    }
    let mut pos = 132usize;
    let (mut class, mut instance, mut ts) = (None, None, None);
    while pos + 8 <= file.len() {
        let group = u16::from_le_bytes([file[pos], file[pos + 1]]);
        if group != 0x0002 {
            break;
        }
        let element = u16::from_le_bytes([file[pos + 2], file[pos + 3]]);
        let vr = &file[pos + 4..pos + 6];
        let (len, header) = if has_long_length(vr) {
            let b = file
                .get(pos + 8..pos + 12)
                .ok_or("truncated file meta information")?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        } else {
            (
                u16::from_le_bytes([file[pos + 6], file[pos + 7]]) as usize,
                8,
            )
        };
        let start = pos + header;
        let end = start
            .checked_add(len)
            .filter(|e| *e <= file.len())
            .ok_or("truncated or undefined-length file meta element")?;
        let value = &file[start..end];
        match element {
            0x0002 => class = Some(uid_value(value)),
            0x0003 => instance = Some(uid_value(value)),
            0x0010 => ts = Some(uid_value(value)),
            _ => {}
        }
        pos = end;
    }
    let missing = |what: &str| format!("file meta information lacks {what}");
    Ok(Part10Info {
        sop_class_uid: class
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("MediaStorageSOPClassUID"))?,
        sop_instance_uid: instance
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("MediaStorageSOPInstanceUID"))?,
        transfer_syntax: ts
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("TransferSyntaxUID"))?,
        dataset_offset: pos,
    })
}

fn push_element(out: &mut Vec<u8>, element: u16, vr: &[u8; 2], value: &[u8], pad: u8) {
    let padded = value.len() + value.len() % 2;
    out.extend_from_slice(&0x0002u16.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(vr);
    if has_long_length(vr) {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(padded as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(padded as u16).to_le_bytes());
    }
    out.extend_from_slice(value);
    if value.len() % 2 == 1 {
        out.push(pad);
    }
}

/// Builds a Part-10 file: preamble, "DICM", file meta group, then `dataset`
/// copied verbatim (it must be encoded in `transfer_syntax`).
pub fn build_part10(
    sop_class_uid: &str,
    sop_instance_uid: &str,
    transfer_syntax: &str,
    dataset: &[u8],
) -> Vec<u8> {
    let mut meta = Vec::with_capacity(256);
    push_element(&mut meta, 0x0001, b"OB", &[0, 1], 0);
    push_element(&mut meta, 0x0002, b"UI", sop_class_uid.as_bytes(), 0);
    push_element(&mut meta, 0x0003, b"UI", sop_instance_uid.as_bytes(), 0);
    push_element(&mut meta, 0x0010, b"UI", transfer_syntax.as_bytes(), 0);
    push_element(
        &mut meta,
        0x0012,
        b"UI",
        IMPLEMENTATION_CLASS_UID.as_bytes(),
        0,
    );
    push_element(
        &mut meta,
        0x0013,
        b"SH",
        IMPLEMENTATION_VERSION_NAME.as_bytes(),
        b' ',
    );
    let mut out = Vec::with_capacity(132 + 12 + meta.len() + dataset.len());
    out.resize(128, 0);
    out.extend_from_slice(b"DICM");
    push_element(
        &mut out,
        0x0000,
        b"UL",
        &(meta.len() as u32).to_le_bytes(),
        0,
    );
    out.extend_from_slice(&meta);
    out.extend_from_slice(dataset);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_then_parse() {
        let data = [8u8, 0, 0x16, 0, b'U', b'I', 2, 0, b'1', 0];
        let file = build_part10(
            "1.2.840.10008.5.1.4.1.1.2",
            "1.2.3",
            "1.2.840.10008.1.2.1",
            &data,
        );
        let info = parse_part10(&file).unwrap();
        assert_eq!(info.sop_class_uid, "1.2.840.10008.5.1.4.1.1.2");
        assert_eq!(info.sop_instance_uid, "1.2.3");
        assert_eq!(info.transfer_syntax, "1.2.840.10008.1.2.1");
        assert_eq!(&file[info.dataset_offset..], &data);
        // group length is consistent
        let gl = u32::from_le_bytes(file[140..144].try_into().unwrap()) as usize;
        assert_eq!(144 + gl, info.dataset_offset);
    }

    #[test]
    fn same_meta_size_as_dcmtk() {
        assert_eq!(IMPLEMENTATION_CLASS_UID.len(), 28);
        assert_eq!(IMPLEMENTATION_VERSION_NAME.len(), 16);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_part10(b"hello").is_err());
        let mut f = vec![0u8; 128];
        f.extend_from_slice(b"DICM");
        f.extend_from_slice(&[2, 0, 0x10, 0, b'U', b'I', 200, 0, b'1']);
        assert!(parse_part10(&f).is_err());
    }
}
