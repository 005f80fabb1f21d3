//! Query/retrieve as an SCU: the identifiers sent to a remote modality (Orthanc's
//! normalization of a query, the key attributes of each level, the keys of a C-MOVE), and
//! the archive of the queries made through `/modalities/{id}/query` (`/queries`): in memory,
//! the `QueryRetrieveSize` most recently used, as Orthanc keeps them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_object::InMemDicomObject;

use crate::dimse::part10::build_part10;
use crate::dimse::RemoteAe;
use crate::model::dicom::{self, dictionary, DataSet, Format, JsonOptions};
use crate::model::Level;

pub const SPECIFIC_CHARACTER_SET: Tag = Tag(0x0008, 0x0005);
pub const QUERY_RETRIEVE_LEVEL: Tag = Tag(0x0008, 0x0052);
const PATIENT_ID: Tag = Tag(0x0010, 0x0020);
const ACCESSION_NUMBER: Tag = Tag(0x0008, 0x0050);
const STUDY_UID: Tag = Tag(0x0020, 0x000d);
const SERIES_UID: Tag = Tag(0x0020, 0x000e);
const SOP_UID: Tag = Tag(0x0008, 0x0018);

/// The level a QueryRetrieveLevel term (or a REST `Level`) names: `PATIENT`, `Study`,
/// `IMAGE`, `instances`...
pub fn level_of(term: &str) -> Option<Level> {
    match term.trim().to_ascii_uppercase().as_str() {
        "PATIENT" | "PATIENTS" => Some(Level::Patient),
        "STUDY" | "STUDIES" => Some(Level::Study),
        "SERIES" => Some(Level::Series),
        "IMAGE" | "IMAGES" | "INSTANCE" | "INSTANCES" => Some(Level::Instance),
        _ => None,
    }
}

/// The QueryRetrieveLevel term of a level.
pub fn level_term(level: Level) -> &'static str {
    match level {
        Level::Patient => "PATIENT",
        Level::Study => "STUDY",
        Level::Series => "SERIES",
        Level::Instance => "IMAGE",
    }
}

/// The unique keys that select the resources of a level in a C-MOVE (or a child query).
pub fn move_keys(level: Level) -> &'static [Tag] {
    match level {
        Level::Patient => &[PATIENT_ID],
        Level::Study => &[STUDY_UID],
        Level::Series => &[STUDY_UID, SERIES_UID],
        Level::Instance => &[STUDY_UID, SERIES_UID, SOP_UID],
    }
}

/// Key attributes a C-FIND of a level always asks for (added empty when missing).
fn find_keys(level: Level) -> &'static [Tag] {
    match level {
        Level::Patient => &[PATIENT_ID],
        Level::Study => &[PATIENT_ID, ACCESSION_NUMBER, STUDY_UID],
        Level::Series => &[PATIENT_ID, ACCESSION_NUMBER, STUDY_UID, SERIES_UID],
        Level::Instance => &[PATIENT_ID, ACCESSION_NUMBER, STUDY_UID, SERIES_UID, SOP_UID],
    }
}

/// The attributes of the modules of each level that a normalized query keeps.
const PATIENT_MODULE: &[(u16, u16)] = &[
    (0x0010, 0x0010),
    (0x0010, 0x0020),
    (0x0010, 0x0030),
    (0x0010, 0x0040),
    (0x0008, 0x1120),
    (0x0010, 0x0032),
    (0x0010, 0x1000),
    (0x0010, 0x1002),
    (0x0010, 0x1001),
    (0x0010, 0x2160),
    (0x0010, 0x4000),
    (0x0010, 0x2201),
    (0x0010, 0x2202),
    (0x0010, 0x2292),
    (0x0010, 0x2293),
    (0x0010, 0x2294),
    (0x0010, 0x2297),
    (0x0010, 0x2298),
    (0x0010, 0x2299),
    (0x0012, 0x0062),
    (0x0012, 0x0063),
    (0x0012, 0x0064),
    (0x0010, 0x0021),
    (0x0010, 0x0024),
];
const STUDY_MODULE: &[(u16, u16)] = &[
    (0x0020, 0x000d),
    (0x0008, 0x0020),
    (0x0008, 0x0030),
    (0x0008, 0x0090),
    (0x0008, 0x0096),
    (0x0020, 0x0010),
    (0x0008, 0x0050),
    (0x0008, 0x0051),
    (0x0008, 0x1030),
    (0x0008, 0x1048),
    (0x0008, 0x1049),
    (0x0008, 0x1060),
    (0x0008, 0x1062),
    (0x0032, 0x1034),
    (0x0008, 0x1110),
    (0x0008, 0x1032),
    (0x0040, 0x1012),
];
const SERIES_MODULE: &[(u16, u16)] = &[
    (0x0008, 0x0060),
    (0x0020, 0x000e),
    (0x0020, 0x0011),
    (0x0020, 0x0060),
    (0x0008, 0x0021),
    (0x0008, 0x0031),
    (0x0008, 0x1050),
    (0x0008, 0x1052),
    (0x0018, 0x1030),
    (0x0008, 0x103e),
    (0x0008, 0x103f),
    (0x0008, 0x1070),
    (0x0008, 0x1072),
    (0x0008, 0x1111),
    (0x0008, 0x1250),
    (0x0018, 0x0015),
    (0x0018, 0x5100),
    (0x0028, 0x0108),
    (0x0028, 0x0109),
    (0x0040, 0x0275),
    (0x0010, 0x2210),
    (0x0040, 0x0253),
    (0x0040, 0x0244),
    (0x0040, 0x0245),
    (0x0040, 0x0254),
    (0x0040, 0x0260),
    (0x0040, 0x0280),
];
const INSTANCE_MODULE: &[(u16, u16)] = &[
    (0x0008, 0x0016),
    (0x0008, 0x0018),
    (0x0008, 0x0005),
    (0x0008, 0x0012),
    (0x0008, 0x0013),
    (0x0008, 0x0014),
    (0x0008, 0x001a),
    (0x0008, 0x001b),
    (0x0008, 0x0110),
    (0x0008, 0x0201),
    (0x0018, 0xa001),
    (0x0020, 0x0013),
    (0x0100, 0x0410),
    (0x0100, 0x0420),
    (0x0100, 0x0424),
    (0x0100, 0x0426),
    (0x0400, 0x0500),
    (0x0400, 0x0561),
    (0x0040, 0xa390),
    (0x0028, 0x0303),
    (0x4ffe, 0x0001),
    (0xfffa, 0xfffa),
];

/// The computed attributes a query of a level may ask for (that level only).
fn computed(level: Level) -> &'static [(u16, u16)] {
    match level {
        Level::Patient => &[(0x0020, 0x1200), (0x0020, 0x1202), (0x0020, 0x1204)],
        Level::Study => &[
            (0x0008, 0x0061),
            (0x0020, 0x1206),
            (0x0020, 0x1208),
            (0x0008, 0x0062),
        ],
        Level::Series => &[(0x0020, 0x1209)],
        Level::Instance => &[],
    }
}

/// Whether a normalized query of `level` keeps `tag`.
fn allowed(level: Level, tag: Tag) -> bool {
    let t = (tag.0, tag.1);
    t == (0x0008, 0x0005)
        || computed(level).contains(&t)
        || PATIENT_MODULE.contains(&t)
        || (level >= Level::Study && STUDY_MODULE.contains(&t))
        || (level >= Level::Series && SERIES_MODULE.contains(&t))
        || (level >= Level::Instance && INSTANCE_MODULE.contains(&t))
}

/// Whether `text` can be the value of `tag` in a query: the binary numeric VRs (US, UL, SS,
/// SL, FL, FD) hold numbers only (`\\`-separated), so `*` or a word cannot be sent for them,
/// and wildcard matching does not apply to UIDs (PS3.4 C.2.2.2.4).
pub fn valid_value(tag: Tag, text: &str) -> bool {
    match dictionary::implicit_vr(tag) {
        vr if is_binary_number(vr) => {
            text.is_empty() || text.split('\\').all(|p| p.trim().parse::<f64>().is_ok())
        }
        VR::UI => !text.contains(['*', '?']),
        _ => true,
    }
}

/// The VRs whose values are binary numbers: US, UL, SS, SL, FL, FD.
pub fn is_binary_number(vr: VR) -> bool {
    matches!(vr, VR::US | VR::UL | VR::SS | VR::SL | VR::FL | VR::FD)
}

/// A data element of `tag` holding `text` (numbers for the binary numeric VRs).
fn element(tag: Tag, text: &str) -> DataElement<InMemDicomObject> {
    let vr = dictionary::implicit_vr(tag);
    let numbers = |t: &str| -> Vec<f64> {
        t.split('\\')
            .filter_map(|p| p.trim().parse().ok())
            .collect()
    };
    let value = match vr {
        VR::US => PrimitiveValue::U16(numbers(text).iter().map(|v| *v as u16).collect()),
        VR::UL => PrimitiveValue::U32(numbers(text).iter().map(|v| *v as u32).collect()),
        VR::SS => PrimitiveValue::I16(numbers(text).iter().map(|v| *v as i16).collect()),
        VR::SL => PrimitiveValue::I32(numbers(text).iter().map(|v| *v as i32).collect()),
        VR::FL => PrimitiveValue::F32(numbers(text).iter().map(|v| *v as f32).collect()),
        VR::FD => PrimitiveValue::F64(numbers(text).iter().copied().collect()),
        VR::SQ | VR::OB | VR::OW | VR::UN => PrimitiveValue::Empty,
        _ if text.is_empty() => PrimitiveValue::Empty,
        _ => PrimitiveValue::from(text),
    };
    let vr = if vr == VR::UN { VR::LO } else { vr };
    DataElement::new(tag, vr, value)
}

/// A data set of string attributes.
pub fn dataset(pairs: &[(Tag, String)]) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    for (tag, text) in pairs {
        obj.put(element(*tag, text));
    }
    obj
}

/// A data set from Orthanc's JSON of tags (names or `gggg,eeee`): strings, `null` (empty),
/// and arrays of objects (sequences), as worklist queries hold them. `Err`: the bad key.
pub fn dataset_from_json(
    map: &serde_json::Map<String, serde_json::Value>,
    depth: usize,
) -> Result<InMemDicomObject, String> {
    use dicom_core::value::DataSetSequence;
    use serde_json::Value;
    let mut obj = InMemDicomObject::new_empty();
    for (key, value) in map {
        let tag = dictionary::parse_tag(key).ok_or_else(|| key.clone())?;
        match value {
            Value::String(text) => {
                obj.put(element(tag, text));
            }
            Value::Null => {
                obj.put(element(tag, ""));
            }
            Value::Array(items) if depth < 16 => {
                let items = items
                    .iter()
                    .map(|i| match i {
                        Value::Object(m) => dataset_from_json(m, depth + 1),
                        _ => Err(key.clone()),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                obj.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
            }
            _ => return Err(key.clone()),
        }
    }
    Ok(obj)
}

/// What makes the identifier of a C-FIND from a user's query.
pub struct FindOptions<'a> {
    pub normalize: bool,
    /// The modality's `Manufacturer` (wildcard fix-ups).
    pub manufacturer: &'a str,
    /// The `SpecificCharacterSet` term of `DefaultEncoding`.
    pub charset_term: &'a str,
}

/// The C-FIND identifier of a query as Orthanc builds it: the query (normalized: only the
/// attributes of the level's modules), the specific character set, the level, and the key
/// attributes of the level.
pub fn find_identifier(level: Level, query: &[(Tag, String)], o: &FindOptions) -> InMemDicomObject {
    let mut pairs: Vec<(Tag, String)> = Vec::new();
    for (tag, value) in query {
        if o.normalize && !allowed(level, *tag) {
            tracing::info!(
                "C-FIND SCU: tag {tag} ignored at the {} level",
                level.name()
            );
            continue;
        }
        let mut value = value.clone();
        if o.normalize && value == "*" {
            let is_date = dictionary::implicit_vr(*tag) == VR::DA;
            if o.manufacturer == "GenericNoUniversalWildcard"
                || (o.manufacturer == "GenericNoWildcardInDates" && is_date)
            {
                value.clear();
            }
        }
        pairs.push((*tag, value));
    }
    if !pairs.iter().any(|(t, _)| *t == SPECIFIC_CHARACTER_SET) {
        pairs.push((SPECIFIC_CHARACTER_SET, o.charset_term.to_string()));
    }
    pairs.retain(|(t, _)| *t != QUERY_RETRIEVE_LEVEL);
    pairs.push((QUERY_RETRIEVE_LEVEL, level_term(level).to_string()));
    let empty = if o.manufacturer == "GE" { "*" } else { "" };
    for key in find_keys(level) {
        if !pairs.iter().any(|(t, _)| t == key) {
            pairs.push((*key, empty.to_string()));
        }
    }
    dataset(&pairs)
}

/// An answer as Orthanc keeps it: no sequences, the level set, and the text re-encoded in
/// `DefaultEncoding` (whose term replaces the remote's `SpecificCharacterSet`).
pub fn fix_answer(mut obj: InMemDicomObject, level: Level, charset_term: &str) -> InMemDicomObject {
    let sequences: Vec<Tag> = obj
        .iter()
        .filter(|e| e.vr() == VR::SQ)
        .map(|e| e.header().tag)
        .collect();
    for tag in sequences {
        obj.remove_element(tag);
    }
    if obj.element(QUERY_RETRIEVE_LEVEL).is_err() {
        obj.put(element(QUERY_RETRIEVE_LEVEL, level_term(level)));
    }
    obj.put(element(SPECIFIC_CHARACTER_SET, charset_term));
    obj
}

/// Renders a data set as Orthanc's JSON (`/tags` formats).
pub fn to_json(obj: &InMemDicomObject, format: Format, opts: &JsonOptions) -> serde_json::Value {
    parsed(obj)
        .map(|ds| dicom::to_orthanc_json(&ds, format, opts))
        .unwrap_or_else(|| serde_json::json!({}))
}

/// Our parser's view of a data set.
pub fn parsed(obj: &InMemDicomObject) -> Option<DataSet> {
    let ts = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
    let mut bytes = Vec::new();
    obj.write_dataset_with_ts(&mut bytes, &ts).ok()?;
    let file = build_part10("1.2.3", "1.2.3", "1.2.840.10008.1.2.1", &bytes);
    dicom::parse(&file, &Default::default())
        .ok()
        .map(|f| f.dataset)
}

/// The text of an attribute of an answer (trailing padding removed).
pub fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let e = obj.element(tag).ok()?;
    let s = e.to_str().ok()?;
    Some(s.trim_end_matches(['\0', ' ']).trim_start().to_string())
}

/// A query made through `/modalities/{id}/query`, and its answers.
pub struct StoredQuery {
    /// The modality's symbolic name.
    pub modality: String,
    pub remote: RemoteAe,
    pub local_aet: String,
    pub level: Level,
    pub normalize: bool,
    /// The user's query (tag, value), as given.
    pub query: Vec<(Tag, String)>,
    /// The answers, in the order received.
    pub answers: Vec<InMemDicomObject>,
}

/// The archive of queries: the `capacity` most recently used ones.
pub struct QueryArchive {
    capacity: usize,
    inner: Mutex<Archive>,
}

#[derive(Default)]
struct Archive {
    clock: u64,
    entries: HashMap<String, (u64, Arc<StoredQuery>)>,
}

impl QueryArchive {
    pub fn new(capacity: usize) -> Self {
        QueryArchive {
            capacity: capacity.max(1),
            inner: Mutex::new(Archive::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Archive> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a query; the least recently used one goes when the archive is full.
    pub fn add(&self, query: StoredQuery) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let mut a = self.lock();
        while a.entries.len() >= self.capacity {
            let oldest = a
                .entries
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => a.entries.remove(&k),
                None => break,
            };
        }
        a.clock += 1;
        let clock = a.clock;
        a.entries.insert(id.clone(), (clock, Arc::new(query)));
        id
    }

    /// A query (and marks it as used).
    pub fn get(&self, id: &str) -> Option<Arc<StoredQuery>> {
        let mut a = self.lock();
        a.clock += 1;
        let clock = a.clock;
        let entry = a.entries.get_mut(id)?;
        entry.0 = clock;
        Some(entry.1.clone())
    }

    pub fn remove(&self, id: &str) {
        self.lock().entries.remove(id);
    }

    /// The ids, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.lock().entries.keys().cloned().collect();
        ids.sort();
        ids
    }
}
