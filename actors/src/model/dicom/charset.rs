//! DICOM Specific Character Set handling (decoding to UTF-8).

use super::parse::{trim_trailing, DataSet, Tag};

/// Encodings known to Orthanc (names of "DefaultEncoding").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Ascii,
    Utf8,
    Latin1,
    Latin2,
    Latin3,
    Latin4,
    Latin5,
    Cyrillic,
    Windows1251,
    Arabic,
    Greek,
    Hebrew,
    Thai,
    Japanese,
    Chinese,
    JapaneseKanji,
    Korean,
    SimplifiedChinese,
}

const NAMES: [(Encoding, &str); 18] = [
    (Encoding::Ascii, "Ascii"),
    (Encoding::Utf8, "Utf8"),
    (Encoding::Latin1, "Latin1"),
    (Encoding::Latin2, "Latin2"),
    (Encoding::Latin3, "Latin3"),
    (Encoding::Latin4, "Latin4"),
    (Encoding::Latin5, "Latin5"),
    (Encoding::Cyrillic, "Cyrillic"),
    (Encoding::Windows1251, "Windows1251"),
    (Encoding::Arabic, "Arabic"),
    (Encoding::Greek, "Greek"),
    (Encoding::Hebrew, "Hebrew"),
    (Encoding::Thai, "Thai"),
    (Encoding::Japanese, "Japanese"),
    (Encoding::Chinese, "Chinese"),
    (Encoding::JapaneseKanji, "JapaneseKanji"),
    (Encoding::Korean, "Korean"),
    (Encoding::SimplifiedChinese, "SimplifiedChinese"),
];

impl Encoding {
    /// Parses an Orthanc encoding name (case-sensitive as in Orthanc).
    pub fn from_orthanc_name(s: &str) -> Option<Encoding> {
        NAMES.iter().find(|(_, n)| *n == s).map(|(e, _)| *e)
    }

    pub fn to_orthanc_name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(e, _)| *e == self)
            .map(|(_, n)| *n)
            .unwrap_or("Ascii")
    }

    /// Maps one term of Specific Character Set (0008,0005).
    pub fn from_specific_character_set(term: &str) -> Option<Encoding> {
        let s = term.trim().to_ascii_uppercase();
        let s = s
            .replace("ISO_IR_", "ISO_IR ")
            .replace("ISO_2022_IR_", "ISO 2022 IR ");
        let num = s
            .strip_prefix("ISO_IR ")
            .or_else(|| s.strip_prefix("ISO 2022 IR "));
        if let Some(n) = num {
            let iso2022 = s.starts_with("ISO 2022");
            return Some(match n {
                "6" => Encoding::Ascii,
                "192" if !iso2022 => Encoding::Utf8,
                "100" => Encoding::Latin1,
                "101" => Encoding::Latin2,
                "109" => Encoding::Latin3,
                "110" => Encoding::Latin4,
                "148" => Encoding::Latin5,
                "144" => Encoding::Cyrillic,
                "127" => Encoding::Arabic,
                "126" => Encoding::Greek,
                "138" => Encoding::Hebrew,
                "166" => Encoding::Thai,
                "13" => Encoding::Japanese,
                "149" if iso2022 => Encoding::Korean,
                "87" if iso2022 => Encoding::JapaneseKanji,
                "58" if iso2022 => Encoding::SimplifiedChinese,
                _ => return None,
            });
        }
        match s.as_str() {
            "GB18030" | "GBK" => Some(Encoding::Chinese),
            _ => None,
        }
    }

    /// Specific Character Set value Orthanc writes for this encoding.
    pub fn to_specific_character_set(self) -> &'static str {
        match self {
            Encoding::Ascii => "ISO_IR 6",
            Encoding::Utf8 => "ISO_IR 192",
            Encoding::Latin1 => "ISO_IR 100",
            Encoding::Latin2 => "ISO_IR 101",
            Encoding::Latin3 => "ISO_IR 109",
            Encoding::Latin4 => "ISO_IR 110",
            Encoding::Latin5 => "ISO_IR 148",
            Encoding::Cyrillic | Encoding::Windows1251 => "ISO_IR 144",
            Encoding::Arabic => "ISO_IR 127",
            Encoding::Greek => "ISO_IR 126",
            Encoding::Hebrew => "ISO_IR 138",
            Encoding::Thai => "ISO_IR 166",
            Encoding::Japanese => "ISO_IR 13",
            Encoding::Chinese => "GB18030",
            Encoding::JapaneseKanji => "ISO 2022 IR 87",
            Encoding::Korean => "ISO 2022 IR 149",
            Encoding::SimplifiedChinese => "ISO 2022 IR 58",
        }
    }

    fn encoding_rs(self) -> &'static encoding_rs::Encoding {
        match self {
            Encoding::Ascii | Encoding::Utf8 => encoding_rs::UTF_8,
            Encoding::Latin1 => encoding_rs::WINDOWS_1252,
            Encoding::Latin2 => encoding_rs::ISO_8859_2,
            Encoding::Latin3 => encoding_rs::ISO_8859_3,
            Encoding::Latin4 => encoding_rs::ISO_8859_4,
            Encoding::Latin5 => encoding_rs::WINDOWS_1254,
            Encoding::Cyrillic => encoding_rs::ISO_8859_5,
            Encoding::Windows1251 => encoding_rs::WINDOWS_1251,
            Encoding::Arabic => encoding_rs::ISO_8859_6,
            Encoding::Greek => encoding_rs::ISO_8859_7,
            Encoding::Hebrew => encoding_rs::ISO_8859_8,
            Encoding::Thai => encoding_rs::WINDOWS_874,
            Encoding::Japanese => encoding_rs::SHIFT_JIS,
            Encoding::Chinese => encoding_rs::GB18030,
            Encoding::JapaneseKanji => encoding_rs::ISO_2022_JP,
            Encoding::Korean => encoding_rs::EUC_KR,
            Encoding::SimplifiedChinese => encoding_rs::GBK,
        }
    }
}

/// Orthanc's notion of an ASCII character (printable or newline).
pub fn is_ascii_char(c: u8) -> bool {
    c != 0 && c <= 127 && (c == b'\n' || !(c < 32 || c == 127))
}

/// Keeps only ASCII characters, as Orthanc does for the Ascii encoding.
pub fn to_ascii(b: &[u8]) -> String {
    b.iter()
        .filter(|c| is_ascii_char(**c))
        .map(|c| *c as char)
        .collect()
}

/// Decodes `bytes` to UTF-8. `code_extensions` is true when Specific
/// Character Set is multi-valued (ISO 2022 escape sequences are removed).
pub fn decode(bytes: &[u8], enc: Encoding, code_extensions: bool) -> String {
    let s = match enc {
        Encoding::Ascii => return to_ascii(bytes),
        Encoding::Latin1 => bytes.iter().map(|&c| c as char).collect(),
        Encoding::Thai => decode_thai(bytes),
        // Orthanc mainline (1.12.10) keeps 0x5c as the DICOM value separator under ISO_IR 13.
        _ => {
            let (cow, _) = enc.encoding_rs().decode_without_bom_handling(bytes);
            cow.replace('\u{FFFD}', "")
        }
    };
    if code_extensions {
        remove_escape_sequences(&s)
    } else {
        s
    }
}

/// Encodes UTF-8 text in `enc`, dropping the characters it cannot represent (as Orthanc
/// does when it writes answers in `DefaultEncoding`).
pub fn encode(text: &str, enc: Encoding) -> Vec<u8> {
    match enc {
        Encoding::Utf8 => text.as_bytes().to_vec(),
        Encoding::Ascii => text.bytes().filter(|c| is_ascii_char(*c)).collect(),
        Encoding::Latin1 => text
            .chars()
            .filter_map(|c| u8::try_from(u32::from(c)).ok())
            .collect(),
        Encoding::Thai => text
            .chars()
            .filter_map(|c| match u32::from(c) {
                v @ 0..=0x7f => Some(v as u8),
                v @ 0x0e01..=0x0e5b => Some((v - 0x0e01 + 0xa1) as u8),
                _ => None,
            })
            .collect(),
        _ => {
            let codec = enc.encoding_rs();
            let mut out = Vec::with_capacity(text.len());
            let mut buf = [0u8; 4];
            for c in text.chars() {
                let (bytes, _, unmappable) = codec.encode(c.encode_utf8(&mut buf));
                if !unmappable {
                    out.extend_from_slice(&bytes);
                }
            }
            out
        }
    }
}

/// TIS-620 (no windows-874 extensions in 0x80-0x9f).
fn decode_thai(b: &[u8]) -> String {
    b.iter()
        .filter_map(|&c| match c {
            0x00..=0x7f => Some(c as char),
            0xa1..=0xfb => char::from_u32(0x0e01 + (c as u32 - 0xa1)),
            _ => None,
        })
        .collect()
}

/// Removes ISO 2022 escape sequences (ESC, intermediates 0x20-0x2f, final byte).
pub fn remove_escape_sequences(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            while let Some(&n) = it.peek() {
                if ('\u{20}'..='\u{2f}').contains(&n) {
                    it.next();
                } else {
                    break;
                }
            }
            if let Some(&n) = it.peek() {
                if ('\u{30}'..='\u{7e}').contains(&n) {
                    it.next();
                }
            }
        } else if c != '\u{0e}' && c != '\u{0f}' {
            out.push(c);
        }
    }
    out
}

/// Encoding of a dataset as Orthanc detects it: first non-empty term of
/// (0008,0005), or `default` if absent; unsupported -> Ascii.
/// Returns (encoding, has_code_extensions).
pub fn detect(ds: &DataSet, default: Encoding) -> (Encoding, bool) {
    let Some(e) = ds.get(Tag(0x0008, 0x0005)) else {
        return (default, false);
    };
    let Some(b) = e.bytes() else {
        return (default, false);
    };
    let s = String::from_utf8_lossy(trim_trailing(b)).into_owned();
    let terms: Vec<&str> = s.split('\\').collect();
    let ext = terms.len() > 1;
    for t in &terms {
        let t = t.trim();
        if !t.is_empty() {
            return (
                Encoding::from_specific_character_set(t).unwrap_or(Encoding::Ascii),
                ext,
            );
        }
    }
    (default, ext)
}

#[cfg(test)]
mod tests {
    #[test]
    fn encode_drops_what_cannot_be_represented() {
        let text = "Test-éДﾈİ";
        assert_eq!(encode(text, Encoding::Latin1), b"Test-\xe9".to_vec());
        assert_eq!(encode(text, Encoding::Ascii), b"Test-".to_vec());
        assert_eq!(encode(text, Encoding::Cyrillic), b"Test-\xb4".to_vec());
        assert_eq!(encode(text, Encoding::Latin5), b"Test-\xe9\xdd".to_vec());
        assert_eq!(encode("ﾈ", Encoding::Japanese), vec![0xc8]);
        assert_eq!(encode(text, Encoding::Utf8), text.as_bytes());
        assert_eq!(
            decode(&encode("ก", Encoding::Thai), Encoding::Thai, false),
            "ก"
        );
    }

    use super::*;

    #[test]
    fn names_roundtrip() {
        for (e, n) in NAMES {
            assert_eq!(Encoding::from_orthanc_name(n), Some(e));
            assert_eq!(e.to_orthanc_name(), n);
        }
        assert_eq!(
            Encoding::from_specific_character_set("ISO_IR_100"),
            Some(Encoding::Latin1)
        );
        assert_eq!(Encoding::from_specific_character_set("ISO_IR 999"), None);
    }

    #[test]
    fn decoding() {
        assert_eq!(decode(b"J\xe9r\xf4me", Encoding::Latin1, false), "Jérôme");
        assert_eq!(decode(b"a\x01\xe9b", Encoding::Ascii, false), "ab");
        assert_eq!(
            decode(b"\xd4\xcf\xc0\xde\xc0\xdb\xb3", Encoding::Japanese, false),
            "ﾔﾏﾀﾞﾀﾛｳ"
        );
        // Mainline keeps the value separator under ISO_IR 13 (test_encodings_iso_ir13).
        assert_eq!(decode(b"A\\B", Encoding::Japanese, false), "A\\B");
        let jis = b"\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B";
        assert_eq!(decode(jis, Encoding::JapaneseKanji, true), "山田^太郎");
    }
}
