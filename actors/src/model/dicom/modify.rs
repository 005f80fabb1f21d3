//! Modification of DICOM files (`/{level}/{id}/modify`): `Replace`, `Remove`, `Keep`,
//! `RemovePrivateTags`, with Orthanc's rules for identifiers: below the level of the
//! modification, the Study, Series and SOP Instance UIDs are new (unless kept or replaced),
//! and one [`UidMap`] gives the same new UID to every file of a resource. Uses dicom-object
//! to rewrite the file, meta header included.

use std::collections::HashMap;

use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::{DefaultDicomObject, FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::anonymize;
use super::tag_path::{self, TagPath};
use crate::model::Level;

/// What to change. Tags are `gggg << 16 | eeee` (so that a job can store it as JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Modification {
    /// The level whose identifiers, and those below, are new.
    pub level: Level,
    /// A string (converted to the tag's VR), `null` (empty) or an array of items (sequence).
    pub replace: Vec<(u32, Value)>,
    pub remove: Vec<u32>,
    pub keep: Vec<u32>,
    pub remove_private_tags: bool,
    /// De-identification (`/anonymize`), on top of the above.
    #[serde(default)]
    pub anonymization: Option<Anonymization>,
    /// Replacements and removals inside sequences, applied last.
    #[serde(default)]
    pub path_replace: Vec<(TagPath, Value)>,
    #[serde(default)]
    pub path_remove: Vec<TagPath>,
    /// Elements inside sequences that an anonymization leaves as they are.
    #[serde(default)]
    pub path_keep: Vec<TagPath>,
}

/// What `/anonymize` adds to a modification.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Anonymization {
    /// The version of the profile (`DicomVersion`).
    pub version: String,
    pub keep_private_tags: bool,
}

/// Errors of a modification.
#[derive(Debug, thiserror::Error)]
pub enum ModifyError {
    #[error("cannot read the DICOM file: {0}")]
    Read(String),
    #[error("cannot write the DICOM file: {0}")]
    Write(String),
    #[error("{0}")]
    BadValue(String),
}

pub const PATIENT_ID: Tag = Tag(0x0010, 0x0020);
pub const STUDY_INSTANCE_UID: Tag = Tag(0x0020, 0x000d);
pub const SERIES_INSTANCE_UID: Tag = Tag(0x0020, 0x000e);
pub const SOP_INSTANCE_UID: Tag = Tag(0x0008, 0x0018);
const SOP_CLASS_UID: Tag = Tag(0x0008, 0x0016);

/// PatientID and the three UIDs: changing, removing or keeping them needs `Force`.
pub const IDENTIFIERS: [Tag; 4] = [
    PATIENT_ID,
    STUDY_INSTANCE_UID,
    SERIES_INSTANCE_UID,
    SOP_INSTANCE_UID,
];

pub fn tag_number(t: Tag) -> u32 {
    (u32::from(t.0) << 16) | u32::from(t.1)
}

pub fn tag_of(n: u32) -> Tag {
    Tag((n >> 16) as u16, (n & 0xffff) as u16)
}

/// A fresh UID: `2.25.` and a random 128-bit number, as DICOM PS3.5 B.2 allows.
pub fn new_uid() -> String {
    format!("2.25.{}", uuid::Uuid::new_v4().as_u128())
}

/// The new UIDs given so far, by level and original UID: the same original gets the same
/// new UID in every file of one modification.
#[derive(Debug, Default)]
pub struct UidMap(HashMap<(Level, String), String>);

impl UidMap {
    /// The new value of an identifier: a UID, or a UUID for a PatientID.
    pub fn map(&mut self, level: Level, original: &str) -> String {
        self.0
            .entry((level, original.trim().to_string()))
            .or_insert_with(|| match level {
                Level::Patient => uuid::Uuid::new_v4().to_string(),
                _ => new_uid(),
            })
            .clone()
    }

    /// Records the new value the user chose for an identifier.
    fn force(&mut self, level: Level, original: &str, new: &str) {
        self.0
            .insert((level, original.trim().to_string()), new.to_string());
    }
}

impl Modification {
    /// A modification that changes nothing but the identifiers from `level` down.
    pub fn at(level: Level) -> Modification {
        Modification {
            level,
            replace: Vec::new(),
            remove: Vec::new(),
            keep: Vec::new(),
            remove_private_tags: false,
            anonymization: None,
            path_replace: Vec::new(),
            path_remove: Vec::new(),
            path_keep: Vec::new(),
        }
    }

    fn has(list: &[u32], t: Tag) -> bool {
        list.contains(&tag_number(t))
    }

    pub fn is_kept(&self, t: Tag) -> bool {
        Self::has(&self.keep, t)
    }

    pub fn is_replaced(&self, t: Tag) -> bool {
        self.replace.iter().any(|(n, _)| *n == tag_number(t))
    }

    pub fn is_removed(&self, t: Tag) -> bool {
        Self::has(&self.remove, t)
    }

    /// Whether private tags stay (anonymization with `KeepPrivateTags`, or a modification
    /// without `RemovePrivateTags`).
    pub fn keep_private_tags(&self) -> bool {
        match &self.anonymization {
            Some(a) => a.keep_private_tags,
            None => !self.remove_private_tags,
        }
    }

    /// Orthanc's level of an instance modification: the highest identifier replaced.
    pub fn detect_level(&self) -> Level {
        if self.is_replaced(PATIENT_ID) {
            Level::Patient
        } else if self.is_replaced(STUDY_INSTANCE_UID) {
            Level::Study
        } else if self.is_replaced(SERIES_INSTANCE_UID) {
            Level::Series
        } else {
            Level::Instance
        }
    }
}

pub fn vr_of(tag: Tag) -> VR {
    use dicom_core::dictionary::DataDictionary;
    if tag.1 == 0 {
        return VR::UL;
    }
    StandardDataDictionary
        .by_tag(tag)
        .and_then(|e| e.vr.exact())
        .unwrap_or(VR::LO)
}

/// The element a `Replace` value makes: a string, `null` (empty) or a sequence of items.
pub fn element(tag: Tag, value: &Value) -> Result<DataElement<InMemDicomObject>, ModifyError> {
    let vr = vr_of(tag);
    match value {
        Value::Null => Ok(DataElement::new(tag, vr, PrimitiveValue::Empty)),
        Value::String(s) => Ok(DataElement::new(tag, vr, primitive(vr, s))),
        Value::Array(items) if vr == VR::SQ => {
            let items = items
                .iter()
                .map(item)
                .collect::<Result<Vec<_>, ModifyError>>()?;
            Ok(DataElement::new(
                tag,
                VR::SQ,
                DataSetSequence::new(items, Length::UNDEFINED),
            ))
        }
        _ => Err(ModifyError::BadValue(format!(
            "Bad value for tag ({:04x},{:04x}): a string, null or (for a sequence) an array is expected",
            tag.0, tag.1
        ))),
    }
}

fn item(value: &Value) -> Result<InMemDicomObject, ModifyError> {
    let Value::Object(map) = value else {
        return Err(ModifyError::BadValue(
            "The items of a sequence must be JSON objects".into(),
        ));
    };
    let mut obj = InMemDicomObject::new_empty();
    for (name, v) in map {
        let tag = super::dictionary::parse_tag(name)
            .ok_or_else(|| ModifyError::BadValue(format!("Unknown DICOM tag: \"{name}\"")))?;
        obj.put(element(tag, v)?);
    }
    Ok(obj)
}

/// A string as a value of `vr`: numbers and tags are parsed (multiple values split on `\`).
fn primitive(vr: VR, s: &str) -> PrimitiveValue {
    let parts = || s.split('\\').map(str::trim);
    macro_rules! numbers {
        ($t:ty, $variant:ident) => {
            parts()
                .map(|p| p.parse::<$t>().ok())
                .collect::<Option<Vec<$t>>>()
                .map(|v| PrimitiveValue::$variant(v.into()))
        };
    }
    let parsed = match vr {
        VR::US => numbers!(u16, U16),
        VR::SS => numbers!(i16, I16),
        VR::UL => numbers!(u32, U32),
        VR::SL => numbers!(i32, I32),
        VR::FL | VR::OF => numbers!(f32, F32),
        VR::FD | VR::OD => numbers!(f64, F64),
        VR::AT => parts()
            .map(super::dictionary::parse_tag)
            .collect::<Option<Vec<_>>>()
            .map(|tags| PrimitiveValue::Tags(tags.into())),
        _ => None,
    };
    parsed.unwrap_or_else(|| PrimitiveValue::from(s))
}

/// Reads a DICOM file: Part 10 (with or without preamble), or a bare data set (implicit or
/// explicit VR little endian, as Orthanc accepts them), given a meta header.
pub fn open_file(file: &[u8]) -> Result<DefaultDicomObject, ModifyError> {
    let read = |e: &dyn std::fmt::Display| ModifyError::Read(e.to_string());
    if file.len() >= 132 && &file[128..132] == b"DICM" {
        return OpenFileOptions::new()
            .from_reader(&file[128..])
            .map_err(|e| read(&e));
    }
    if file.starts_with(b"DICM") {
        return OpenFileOptions::new()
            .from_reader(file)
            .map_err(|e| read(&e));
    }
    let explicit = file.len() > 6 && file[4].is_ascii_uppercase() && file[5].is_ascii_uppercase();
    let uid = if explicit {
        "1.2.840.10008.1.2.1"
    } else {
        "1.2.840.10008.1.2"
    };
    let ts = TransferSyntaxRegistry
        .get(uid)
        .ok_or_else(|| read(&"unknown transfer syntax"))?;
    let ds = InMemDicomObject::read_dataset_with_ts(file, ts).map_err(|e| read(&e))?;
    let text = |t: Tag| {
        ds.element(t)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
            .unwrap_or_default()
    };
    let (class, sop) = (text(SOP_CLASS_UID), text(SOP_INSTANCE_UID));
    ds.with_meta(
        FileMetaTableBuilder::new()
            .transfer_syntax(uid)
            .media_storage_sop_class_uid(class)
            .media_storage_sop_instance_uid(sop),
    )
    .map_err(|e| read(&e))
}

/// The removals, then the replacements, inside sequences (in the items that exist).
fn apply_paths(obj: &mut InMemDicomObject, m: &Modification) -> Result<(), ModifyError> {
    for p in &m.path_remove {
        let t = Tag(p.tag.0, p.tag.1);
        tag_path::for_each_item(obj, &p.steps, &mut |item| {
            item.remove_element(t);
        });
    }
    let mut failure = None;
    for (p, v) in &m.path_replace {
        let t = Tag(p.tag.0, p.tag.1);
        tag_path::for_each_item(obj, &p.steps, &mut |item| match element(t, v) {
            Ok(e) => {
                item.put(e);
            }
            Err(e) => failure = Some(e),
        });
    }
    failure.map_or(Ok(()), Err)
}

/// Applies a modification to a DICOM file (with or without preamble); returns the new file.
pub fn modify(file: &[u8], m: &Modification, uids: &mut UidMap) -> Result<Vec<u8>, ModifyError> {
    let mut obj = open_file(file)?;
    let current = |obj: &InMemDicomObject, t: Tag| {
        obj.element(t)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
            .unwrap_or_default()
    };
    let profile = match &m.anonymization {
        Some(a) => Some(anonymize::profile(&a.version).ok_or_else(|| {
            ModifyError::BadValue(format!("Unknown DICOM version: {}", a.version))
        })?),
        None => None,
    };
    if profile.is_some() {
        // References to a UID the user chose follow it.
        for (t, level) in [
            (STUDY_INSTANCE_UID, Level::Study),
            (SERIES_INSTANCE_UID, Level::Series),
            (SOP_INSTANCE_UID, Level::Instance),
        ] {
            if let Some((_, Value::String(new))) =
                m.replace.iter().find(|(n, _)| *n == tag_number(t))
            {
                uids.force(level, &current(&obj, t), new);
            }
        }
    }
    let untouched = |t: Tag| !m.is_kept(t) && !m.is_replaced(t) && !m.is_removed(t);
    let tags: Vec<Tag> = obj.tags().collect();
    for t in tags {
        let private = t.0 % 2 == 1 && !m.keep_private_tags();
        let by_profile = profile.is_some_and(|p| p.removes(t)) && untouched(t);
        if (private || by_profile || m.is_removed(t)) && !m.is_kept(t) {
            obj.remove_element(t);
        } else if profile.is_some_and(|p| p.clear.contains(&tag_number(t))) && untouched(t) {
            let vr = obj.element(t).map(|e| e.vr()).unwrap_or(VR::LO);
            obj.put(DataElement::new(t, vr, PrimitiveValue::Empty));
        }
    }
    for (n, v) in &m.replace {
        let t = tag_of(*n);
        if !m.is_kept(t) {
            obj.put(element(t, v)?);
        }
    }
    let regenerated = [
        (STUDY_INSTANCE_UID, Level::Study),
        (SERIES_INSTANCE_UID, Level::Series),
        (SOP_INSTANCE_UID, Level::Instance),
    ];
    for (t, level) in regenerated {
        if m.level <= level && !m.is_replaced(t) && !m.is_kept(t) {
            let new = uids.map(level, &current(&obj, t));
            obj.put(DataElement::new(t, VR::UI, PrimitiveValue::from(new)));
        }
    }
    if let Some(p) = profile {
        anonymize::visit_top(&mut obj, m, p, uids);
    }
    apply_paths(&mut obj, m)?;
    let (sop, class) = (
        current(&obj, SOP_INSTANCE_UID),
        current(&obj, SOP_CLASS_UID),
    );
    obj.update_meta(|meta| {
        meta.media_storage_sop_instance_uid = sop;
        if !class.is_empty() {
            meta.media_storage_sop_class_uid = class;
        }
    });
    let mut out = Vec::new();
    obj.write_all(&mut out)
        .map_err(|e| ModifyError::Write(e.to_string()))?;
    Ok(out)
}
