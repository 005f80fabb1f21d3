//! Modification of one DICOM file (`/instances/{id}/modify`): `Replace`, `Remove`, `Keep`,
//! `RemovePrivateTags`, with Orthanc's rules for identifiers (the SOPInstanceUID of an
//! instance-level modification is new unless kept or replaced). Uses dicom-object to rewrite
//! the file, meta header included.

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_object::OpenFileOptions;

/// What to change.
#[derive(Debug, Clone, Default)]
pub struct Modification {
    pub replace: Vec<(Tag, String)>,
    pub remove: Vec<Tag>,
    pub keep: Vec<Tag>,
    pub remove_private_tags: bool,
    /// The SOPInstanceUID given to the result when neither kept nor replaced.
    pub new_sop_instance_uid: String,
}

/// Errors of a modification.
#[derive(Debug, thiserror::Error)]
pub enum ModifyError {
    #[error("cannot read the DICOM file: {0}")]
    Read(String),
    #[error("cannot write the DICOM file: {0}")]
    Write(String),
}

const SOP_INSTANCE_UID: Tag = Tag(0x0008, 0x0018);

fn vr_of(tag: Tag) -> VR {
    use dicom_core::dictionary::DataDictionary;
    StandardDataDictionary
        .by_tag(tag)
        .and_then(|e| e.vr.exact())
        .unwrap_or(VR::LO)
}

/// Applies a modification to a DICOM file (with or without preamble); returns the new file.
pub fn modify(file: &[u8], m: &Modification) -> Result<Vec<u8>, ModifyError> {
    let start = if file.len() >= 132 && &file[128..132] == b"DICM" {
        128
    } else {
        0
    };
    let mut obj = OpenFileOptions::new()
        .from_reader(&file[start..])
        .map_err(|e| ModifyError::Read(e.to_string()))?;
    if m.remove_private_tags {
        let private: Vec<Tag> = obj
            .iter()
            .map(|e| e.header().tag)
            .filter(|t| t.0 % 2 == 1 && !m.keep.contains(t))
            .collect();
        for t in private {
            obj.remove_element(t);
        }
    }
    for t in &m.remove {
        obj.remove_element(*t);
    }
    for (t, v) in &m.replace {
        let vr = vr_of(*t);
        obj.put(DataElement::new(*t, vr, PrimitiveValue::from(v.as_str())));
    }
    let replaced = |t: Tag| m.replace.iter().any(|(x, _)| *x == t);
    if !m.keep.contains(&SOP_INSTANCE_UID) && !replaced(SOP_INSTANCE_UID) {
        obj.put(DataElement::new(
            SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(m.new_sop_instance_uid.as_str()),
        ));
    }
    let sop = obj
        .element(SOP_INSTANCE_UID)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches('\0').to_string());
    if let Some(sop) = sop {
        obj.update_meta(|meta| meta.media_storage_sop_instance_uid = sop);
    }
    let mut out = Vec::new();
    obj.write_all(&mut out)
        .map_err(|e| ModifyError::Write(e.to_string()))?;
    Ok(out)
}
