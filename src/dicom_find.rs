//! The C-FIND SCP (Patient Root and Study Root): the identifier becomes a query of the find
//! engine (the one `/tools/find` uses: same matching rules — wildcards, ranges, lists,
//! `CaseSensitivePN`), and each match is answered with the keys asked, read from the index
//! as `RequestedTags` are (main tags, computed tags, the stored dataset). Runs on the
//! association's thread.

use std::sync::Arc;

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use pacsnode_actors::dimse::{FindHandler, StoreContext};
use pacsnode_actors::find::{self, FindQuery};
use pacsnode_actors::index::{read, IndexError, IndexReader};
use pacsnode_actors::model::dicom::orthanc_json::is_string_vr as is_text;
use pacsnode_actors::model::dicom::parse::is_text_vr;
use pacsnode_actors::model::dicom::{charset, Encoding, PrivateDictionary};
use pacsnode_actors::model::main_tags::{self, TagNum};
use serde_json::Value;

use crate::rest::requested::requested_tags_sync;
use crate::rest::resource_json::TagFormat;
use crate::settings::Settings;

/// DIMSE statuses of a C-FIND failure (PS3.4 C.4.1.1.4).
const UNABLE_TO_PROCESS: u16 = 0xC000;
const IDENTIFIER_DOES_NOT_MATCH: u16 = 0xA900;
const SPECIFIC_CHARACTER_SET: Tag = Tag(0x0008, 0x0005);
const QUERY_RETRIEVE_LEVEL: Tag = Tag(0x0008, 0x0052);
const RETRIEVE_AE_TITLE: Tag = Tag(0x0008, 0x0054);

/// Answers C-FIND requests from the index.
pub struct CFind {
    pub reader: IndexReader,
    pub dictionary: Arc<PrivateDictionary>,
    pub settings: Arc<Settings>,
    /// `DefaultEncoding` (changed at run time by `/tools/default-encoding`): answers use it.
    pub default_encoding: Arc<std::sync::RwLock<Encoding>>,
}

/// A key of the identifier: its tag and VR.
struct Key {
    tag: Tag,
    vr: VR,
}

/// A value of a binary numeric VR from its text (`512`, `1\\2`).
fn number(vr: VR, text: &str) -> Option<PrimitiveValue> {
    let parts: Vec<&str> = text.split('\\').map(str::trim).collect();
    fn all<T: std::str::FromStr>(parts: &[&str]) -> Option<Vec<T>> {
        parts.iter().map(|p| p.parse().ok()).collect()
    }
    Some(match vr {
        VR::US => PrimitiveValue::U16(all(&parts)?.into()),
        VR::UL => PrimitiveValue::U32(all(&parts)?.into()),
        VR::SS => PrimitiveValue::I16(all(&parts)?.into()),
        VR::SL => PrimitiveValue::I32(all(&parts)?.into()),
        VR::FL => PrimitiveValue::F32(all(&parts)?.into()),
        VR::FD => PrimitiveValue::F64(all(&parts)?.into()),
        _ => return None,
    })
}

impl CFind {
    fn case_sensitive(&self, vr: VR) -> bool {
        vr != VR::PN
            || self
                .settings
                .raw
                .get("CaseSensitivePN")
                .and_then(Value::as_bool)
                .unwrap_or(false)
    }

    fn answer(
        &self,
        level_text: &str,
        keys: &[Key],
        found: &serde_json::Map<String, Value>,
    ) -> InMemDicomObject {
        let encoding = *self
            .default_encoding
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let mut out = InMemDicomObject::new_empty();
        out.put(DataElement::new(
            SPECIFIC_CHARACTER_SET,
            VR::CS,
            encoding.to_specific_character_set(),
        ));
        out.put(DataElement::new(QUERY_RETRIEVE_LEVEL, VR::CS, level_text));
        out.put(DataElement::new(
            RETRIEVE_AE_TITLE,
            VR::AE,
            self.settings.dicom_aet.as_str(),
        ));
        for key in keys {
            let value = match found.get(&main_tags::tag_key((key.tag.0, key.tag.1))) {
                // Text in the answer's character set, padded as DICOM wants.
                Some(Value::String(s)) if is_text_vr(key.vr) => {
                    let mut bytes = charset::encode(s, encoding);
                    if bytes.len() % 2 == 1 {
                        bytes.push(b' ');
                    }
                    PrimitiveValue::U8(bytes.into())
                }
                Some(Value::String(s)) if is_text(key.vr) => PrimitiveValue::from(s.as_str()),
                Some(Value::String(s)) => number(key.vr, s).unwrap_or(PrimitiveValue::Empty),
                _ => PrimitiveValue::Empty,
            };
            out.put(DataElement::new(key.tag, key.vr, value));
        }
        out
    }
}

impl FindHandler for CFind {
    fn find(
        &self,
        _sop_class: &str,
        identifier: &[u8],
        transfer_syntax: &str,
        ctx: &StoreContext,
    ) -> Result<Vec<Vec<u8>>, u16> {
        let ts = TransferSyntaxRegistry
            .get(transfer_syntax)
            .ok_or(UNABLE_TO_PROCESS)?;
        let query = InMemDicomObject::read_dataset_with_ts(identifier, ts).map_err(|e| {
            tracing::warn!(
                "C-FIND from {}: unreadable identifier: {e}",
                ctx.calling_aet
            );
            UNABLE_TO_PROCESS
        })?;
        let level_text = query
            .element(QUERY_RETRIEVE_LEVEL)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let level =
            pacsnode_actors::queries::level_of(&level_text).ok_or(IDENTIFIER_DOES_NOT_MATCH)?;
        let mut keys = Vec::new();
        let mut q = FindQuery::new(level);
        for elem in query.iter() {
            let tag = elem.header().tag;
            if tag == SPECIFIC_CHARACTER_SET || tag == QUERY_RETRIEVE_LEVEL || tag.0 == 0x0002 {
                continue;
            }
            let vr = elem.vr();
            // Numbers (US, UL, FL...) are matched as their text, as Orthanc does.
            let value = if is_text(vr) || pacsnode_actors::queries::is_binary_number(vr) {
                elem.to_str()
                    .map(|v| v.trim_end_matches(['\0', ' ']).trim_start().to_string())
                    .unwrap_or_default()
            } else {
                String::new()
            };
            // As `/tools/find` (and Orthanc): `*` matches the resources where the tag is set.
            if !value.is_empty() {
                let num: TagNum = (tag.0, tag.1);
                q.constraints.push(find::constraint(
                    level,
                    num,
                    &value,
                    self.case_sensitive(vr),
                ));
            }
            keys.push(Key { tag, vr });
        }
        q.limit = self.settings.limit_find_results(level);
        let requested: Vec<TagNum> = keys.iter().map(|k| (k.tag.0, k.tag.1)).collect();
        let dict = self.dictionary.clone();
        let found = self
            .reader
            .with_blocking(|c| {
                let rows =
                    find::execute(c, &q).map_err(|e| IndexError::BadRequest(e.to_string()))?;
                let mut out = Vec::with_capacity(rows.len());
                for (id, _) in rows {
                    let row = read::resource_by_id(c, id)?;
                    match requested_tags_sync(c, &row, &requested, TagFormat::Short, &dict)? {
                        Value::Object(map) => out.push(map),
                        _ => out.push(Default::default()),
                    }
                }
                Ok(out)
            })
            .map_err(|e| {
                tracing::warn!("C-FIND from {}: {e}", ctx.calling_aet);
                UNABLE_TO_PROCESS
            })?;
        found
            .iter()
            .map(|map| {
                let mut bytes = Vec::new();
                self.answer(&level_text, &keys, map)
                    .write_dataset_with_ts(&mut bytes, ts)
                    .map_err(|_| UNABLE_TO_PROCESS)?;
                Ok(bytes)
            })
            .collect()
    }
}
