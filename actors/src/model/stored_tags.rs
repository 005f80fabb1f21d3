//! The main tags the index keeps for a resource, read back without a `serde_json::Value`
//! tree: a large find with Expand reads thousands of them, and a map of `String` keys and
//! `Value`s per resource cost more than the rest of the answer.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::main_tags::{parse_tag_key, TagNum};

/// A resource's stored main tags (`{"gggg,eeee": "value", ...}` in the index), in stored
/// order. Keys that are not tags and values that are not strings are skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredTags(Vec<(TagNum, Box<str>)>);

impl StoredTags {
    /// Parses the stored JSON object; anything else gives no tags.
    pub fn parse(json: &str) -> StoredTags {
        serde_json::from_str(json).unwrap_or_default()
    }

    /// Reads the object as the index stores it (SQLite's JSONB); anything else gives no tags.
    pub fn from_jsonb(blob: &[u8]) -> StoredTags {
        let mut out = Vec::with_capacity(16);
        let read = super::jsonb::for_each_member(blob, |key, value| {
            if let (Some(tag), Some(v)) = (parse_tag_key(key), value) {
                out.push((tag, v.into()));
            }
        });
        match read {
            Some(()) => StoredTags(out),
            None => StoredTags::default(),
        }
    }

    pub fn get(&self, tag: TagNum) -> Option<&str> {
        self.0.iter().find(|(t, _)| *t == tag).map(|(_, v)| &**v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (TagNum, &str)> {
        self.0.iter().map(|(t, v)| (*t, &**v))
    }
}

impl<'de> Deserialize<'de> for StoredTags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(TagsVisitor)
    }
}

struct TagsVisitor;

impl<'de> Visitor<'de> for TagsVisitor {
    type Value = StoredTags;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of main tags")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StoredTags, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(12));
        while let Some(tag) = map.next_key::<Key>()? {
            let value = map.next_value::<Text>()?;
            if let (Key(Some(tag)), Text(Some(v))) = (tag, value) {
                out.push((tag, v));
            }
        }
        Ok(StoredTags(out))
    }
}

/// A key, parsed as a tag straight from the input (no `String` per key).
struct Key(Option<TagNum>);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a tag key")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
                Ok(Key(parse_tag_key(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A string value; any other JSON value is read and dropped.
struct Text(Option<Box<str>>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text, E> {
                Ok(Text(Some(s.into())))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut s: A) -> Result<Text, A::Error> {
                while s.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Text, A::Error> {
                while m.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_as_tags_and_keeps_string_values() {
        let t = StoredTags::parse(
            r#"{"0010,0010":"DOE^J\u00e9r\"o","0020,000d":"1.2","bad":"x","0028,0008":3,"0008,0050":""}"#,
        );
        assert_eq!(t.get((0x0010, 0x0010)), Some("DOE^Jér\"o"));
        assert_eq!(t.get((0x0020, 0x000d)), Some("1.2"));
        assert_eq!(t.get((0x0008, 0x0050)), Some(""));
        assert_eq!(t.get((0x0028, 0x0008)), None);
        assert_eq!(t.iter().count(), 3);
        assert_eq!(StoredTags::parse("[1]"), StoredTags::default());
    }

    #[test]
    fn reads_the_binary_form_as_the_text_form() {
        let json = r#"{"0010,0010":"DOE^J\u00e9r\"o","0020,000d":"1.2","bad":"x","0028,0008":3,"0008,0050":""}"#;
        let c = rusqlite::Connection::open_in_memory().unwrap();
        let blob: Vec<u8> = c
            .query_row("SELECT jsonb(?)", [json], |r| r.get(0))
            .unwrap();
        assert_eq!(StoredTags::from_jsonb(&blob), StoredTags::parse(json));
        assert_eq!(StoredTags::from_jsonb(b"\x0c"), StoredTags::default());
    }
}
