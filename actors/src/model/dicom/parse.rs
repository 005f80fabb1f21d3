//! Iterative DICOM Part-10 / raw dataset parser.

use std::io::Read;

pub use dicom_core::{Tag, VR};

use super::charset::Encoding;
use super::dictionary;

/// Tag of the pixel data element.
pub const PIXEL_DATA: Tag = Tag(0x7fe0, 0x0010);
const ITEM: Tag = Tag(0xfffe, 0xe000);
const ITEM_END: Tag = Tag(0xfffe, 0xe00d);
const SEQ_END: Tag = Tag(0xfffe, 0xe0dd);
const UNDEFINED: u32 = 0xffff_ffff;
/// Upper bound of the size of an inflated (deflate transfer syntax) dataset.
pub const MAX_INFLATED_SIZE: u64 = 1 << 30;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("truncated DICOM data")]
    Truncated,
    #[error("DICOM sequences are nested too deeply")]
    TooDeep,
    #[error("malformed DICOM data: {0}")]
    Malformed(String),
    #[error("cannot inflate deflated DICOM data: {0}")]
    Deflate(String),
}

#[derive(Debug, Clone)]
pub struct ParseOptions {
    pub stop_at_pixel_data: bool,
    pub max_depth: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            stop_at_pixel_data: false,
            max_depth: 64,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Raw value, numeric VRs always little endian.
    Bytes(Vec<u8>),
    Sequence(Vec<DataSet>),
    Fragments {
        offset_table: Vec<u8>,
        fragments: Vec<Vec<u8>>,
    },
    /// Pixel data not loaded (`stop_at_pixel_data`); raw length field.
    Skipped {
        length: u32,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub tag: Tag,
    pub vr: VR,
    pub value: Value,
}

impl Element {
    pub fn bytes(&self) -> Option<&[u8]> {
        match &self.value {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DataSet {
    pub elements: Vec<Element>,
}

impl DataSet {
    pub fn get(&self, tag: Tag) -> Option<&Element> {
        self.elements
            .binary_search_by(|e| e.tag.cmp(&tag))
            .ok()
            .map(|i| &self.elements[i])
    }

    /// Decoded string value, trailing spaces and NULs removed.
    pub fn string(&self, tag: Tag, charset: Encoding) -> Option<String> {
        let e = self.get(tag)?;
        let b = e.bytes()?;
        let b = trim_trailing(b);
        Some(if is_text_vr(e.vr) {
            super::charset::decode(b, charset, false)
        } else {
            String::from_utf8_lossy(b).into_owned()
        })
    }

    fn sort(&mut self) {
        self.elements.sort_by_key(|a| a.tag);
    }
}

/// VRs whose content is decoded with the specific character set.
pub fn is_text_vr(vr: VR) -> bool {
    matches!(
        vr,
        VR::SH | VR::LO | VR::ST | VR::PN | VR::LT | VR::UT | VR::UC
    )
}

/// Removes trailing spaces and NULs.
pub fn trim_trailing(b: &[u8]) -> &[u8] {
    let mut n = b.len();
    while n > 0 && (b[n - 1] == b' ' || b[n - 1] == 0) {
        n -= 1;
    }
    &b[..n]
}

#[derive(Debug, Clone, PartialEq)]
pub struct DicomFile {
    pub meta: DataSet,
    pub dataset: DataSet,
    pub transfer_syntax: String,
    pub pixel_data_offset: Option<u64>,
    pub pixel_data_vr: Option<String>,
    pub has_pixel_data: bool,
    pub header_end: usize,
}

impl DicomFile {
    pub fn charset(&self) -> Encoding {
        self.charset_or(Encoding::Latin1)
    }

    /// Character set of the dataset, `default` if (0008,0005) is absent.
    pub fn charset_or(&self, default: Encoding) -> Encoding {
        super::charset::detect(&self.dataset, default).0
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Syntax {
    ImplicitLE,
    ExplicitLE,
    ExplicitBE,
}

pub fn parse(bytes: &[u8], opts: &ParseOptions) -> Result<DicomFile, ParseError> {
    let (meta, start) = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        let mut p = Parser::new(bytes, 132, Syntax::ExplicitLE, opts, true);
        (p.run()?, p.pos)
    } else if bytes.len() >= 6 && bytes[0] == 2 && bytes[1] == 0 && is_vr_chars(&bytes[4..6]) {
        let mut p = Parser::new(bytes, 0, Syntax::ExplicitLE, opts, true);
        (p.run()?, p.pos)
    } else {
        (DataSet::default(), 0)
    };
    let part10 = start >= 132;
    let ts = meta
        .get(Tag(0x0002, 0x0010))
        .and_then(|e| e.bytes())
        .map(|b| String::from_utf8_lossy(trim_trailing(b)).trim().to_string());
    let ts = match ts {
        Some(t) => t,
        None => guess_syntax(&bytes[start..]).to_string(),
    };
    let syntax = match ts.as_str() {
        "1.2.840.10008.1.2" => Syntax::ImplicitLE,
        "1.2.840.10008.1.2.2" => Syntax::ExplicitBE,
        _ => Syntax::ExplicitLE,
    };
    let mut file = DicomFile {
        meta,
        dataset: DataSet::default(),
        transfer_syntax: ts.clone(),
        pixel_data_offset: None,
        pixel_data_vr: None,
        has_pixel_data: false,
        header_end: bytes.len(),
    };
    let (ds, pix) = if ts == "1.2.840.10008.1.2.1.99" {
        let inflated = inflate(&bytes[start..])?;
        let mut p = Parser::new(&inflated, 0, syntax, opts, false);
        let ds = p.run()?;
        // Offsets in the inflated stream are meaningless for the file.
        (ds, p.pixel.map(|(_, vr)| (None, vr)))
    } else {
        let mut p = Parser::new(bytes, start, syntax, opts, false);
        let ds = p.run()?;
        (ds, p.pixel.map(|(off, vr)| (Some(off), vr)))
    };
    file.dataset = ds;
    if let Some((off, vr)) = pix {
        file.has_pixel_data = true;
        file.pixel_data_vr = Some(vr.to_string().to_string());
        if let Some(off) = off {
            file.header_end = off;
            if part10 {
                file.pixel_data_offset = Some(off as u64);
            }
        }
    }
    Ok(file)
}

fn inflate(data: &[u8]) -> Result<Vec<u8>, ParseError> {
    let mut out = Vec::new();
    let dec = flate2::read::DeflateDecoder::new(data);
    dec.take(MAX_INFLATED_SIZE + 1)
        .read_to_end(&mut out)
        .map_err(|e| ParseError::Deflate(e.to_string()))?;
    if out.len() as u64 > MAX_INFLATED_SIZE {
        return Err(ParseError::Deflate("inflated data is too large".into()));
    }
    Ok(out)
}

fn is_vr_chars(b: &[u8]) -> bool {
    b.len() >= 2 && VR::from_binary([b[0], b[1]]).is_some()
}

/// Guess the transfer syntax of a raw dataset without meta header.
fn guess_syntax(b: &[u8]) -> &'static str {
    if b.len() >= 6 && is_vr_chars(&b[4..6]) {
        "1.2.840.10008.1.2.1"
    } else {
        "1.2.840.10008.1.2"
    }
}

enum Frame {
    Item {
        elements: Vec<Element>,
        end: Option<usize>,
        syntax: Syntax,
    },
    Seq {
        tag: Tag,
        vr: VR,
        items: Vec<DataSet>,
        end: Option<usize>,
        syntax: Syntax,
    },
}

struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
    syntax: Syntax,
    opts: &'a ParseOptions,
    meta: bool,
    /// End of the meta header according to (0002,0000).
    meta_end: Option<usize>,
    /// Offset of the tag of the top-level pixel data, and its VR.
    pixel: Option<(usize, VR)>,
}

impl<'a> Parser<'a> {
    fn new(b: &'a [u8], pos: usize, syntax: Syntax, opts: &'a ParseOptions, meta: bool) -> Self {
        Parser {
            b,
            pos,
            syntax,
            opts,
            meta,
            meta_end: None,
            pixel: None,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        let end = self.pos.checked_add(n).ok_or(ParseError::Truncated)?;
        if end > self.b.len() {
            return Err(ParseError::Truncated);
        }
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self, s: Syntax) -> Result<u16, ParseError> {
        let v = self.take(2)?;
        Ok(if s == Syntax::ExplicitBE {
            u16::from_be_bytes([v[0], v[1]])
        } else {
            u16::from_le_bytes([v[0], v[1]])
        })
    }

    fn u32(&mut self, s: Syntax) -> Result<u32, ParseError> {
        let v = self.take(4)?;
        let a = [v[0], v[1], v[2], v[3]];
        Ok(if s == Syntax::ExplicitBE {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        })
    }

    fn tag(&mut self, s: Syntax) -> Result<Tag, ParseError> {
        let g = self.u16(s)?;
        let e = self.u16(s)?;
        Ok(Tag(g, e))
    }

    fn end_of(&self, len: u32) -> Result<Option<usize>, ParseError> {
        if len == UNDEFINED {
            return Ok(None);
        }
        let end = self.pos + len as usize;
        if end > self.b.len() {
            return Err(ParseError::Truncated);
        }
        Ok(Some(end))
    }

    fn run(&mut self) -> Result<DataSet, ParseError> {
        let mut stack = vec![Frame::Item {
            elements: Vec::new(),
            end: Some(self.b.len()),
            syntax: self.syntax,
        }];
        let mut depth = 0usize;
        loop {
            let top = stack.len() - 1;
            match &mut stack[top] {
                Frame::Item {
                    elements,
                    end,
                    syntax,
                } => {
                    let syntax = *syntax;
                    let done = match end {
                        Some(e) => self.pos >= *e,
                        None => self.pos >= self.b.len(),
                    };
                    if done {
                        if end.is_none() {
                            return Err(ParseError::Truncated);
                        }
                        if top == 0 {
                            let mut ds = DataSet {
                                elements: std::mem::take(elements),
                            };
                            ds.sort();
                            return Ok(ds);
                        }
                        self.finish_item(&mut stack);
                        continue;
                    }
                    if self.meta && top == 0 {
                        let by_length = self.meta_end.is_some_and(|e| self.pos >= e);
                        let group2 = self.b.len() >= self.pos + 2
                            && self.b[self.pos] == 2
                            && self.b[self.pos + 1] == 0;
                        if by_length || (self.meta_end.is_none() && !group2) {
                            let mut ds = DataSet {
                                elements: std::mem::take(elements),
                            };
                            ds.sort();
                            return Ok(ds);
                        }
                    }
                    let tag_pos = self.pos;
                    let tag = self.tag(syntax)?;
                    if tag == ITEM_END || tag == SEQ_END {
                        self.u32(syntax)?;
                        if tag == ITEM_END && top > 0 && end.is_none() {
                            self.finish_item(&mut stack);
                        }
                        continue;
                    }
                    let (vr, len) = self.header(tag, syntax)?;
                    if self.meta && top == 0 && tag == Tag(0x0002, 0x0000) && len == 4 {
                        let gl = self
                            .b
                            .get(self.pos..self.pos + 4)
                            .ok_or(ParseError::Truncated)?;
                        let gl = u32::from_le_bytes([gl[0], gl[1], gl[2], gl[3]]) as usize;
                        self.meta_end = Some(self.pos + 4 + gl);
                    }
                    if top == 0 && tag == PIXEL_DATA && !self.meta {
                        self.pixel = Some((tag_pos, vr));
                        if self.opts.stop_at_pixel_data {
                            let Frame::Item { elements, .. } = &mut stack[0] else {
                                unreachable!()
                            };
                            elements.push(Element {
                                tag,
                                vr,
                                value: Value::Skipped { length: len },
                            });
                            let mut ds = DataSet {
                                elements: std::mem::take(elements),
                            };
                            ds.sort();
                            return Ok(ds);
                        }
                    }
                    if len == UNDEFINED && tag == PIXEL_DATA {
                        let value = self.fragments(syntax)?;
                        push_elem(&mut stack[top], Element { tag, vr, value });
                    } else if vr == VR::SQ || len == UNDEFINED {
                        depth += 1;
                        if depth > self.opts.max_depth {
                            return Err(ParseError::TooDeep);
                        }
                        let end = self.end_of(len)?;
                        // CP-246: undefined-length UN is implicit VR LE
                        let inner = if vr != VR::SQ {
                            Syntax::ImplicitLE
                        } else {
                            syntax
                        };
                        stack.push(Frame::Seq {
                            tag,
                            vr: VR::SQ,
                            items: Vec::new(),
                            end,
                            syntax: inner,
                        });
                    } else {
                        let raw = self.take(len as usize)?;
                        let value = if syntax == Syntax::ExplicitBE {
                            swap_to_le(vr, raw)
                        } else {
                            raw.to_vec()
                        };
                        push_elem(
                            &mut stack[top],
                            Element {
                                tag,
                                vr,
                                value: Value::Bytes(value),
                            },
                        );
                    }
                }
                Frame::Seq {
                    tag,
                    vr,
                    items,
                    end,
                    syntax,
                } => {
                    let syntax = *syntax;
                    let finished = match end {
                        Some(e) => self.pos >= *e,
                        None => false,
                    };
                    let mut close = finished;
                    if !finished {
                        let t = self.tag(syntax)?;
                        let len = self.u32(syntax)?;
                        if t == ITEM {
                            let iend = self.end_of(len)?;
                            stack.push(Frame::Item {
                                elements: Vec::new(),
                                end: iend,
                                syntax,
                            });
                            continue;
                        } else if t == SEQ_END {
                            close = true;
                        } else {
                            return Err(ParseError::Malformed(format!(
                                "unexpected tag ({:04x},{:04x}) in sequence",
                                t.0, t.1
                            )));
                        }
                    }
                    if close {
                        let el = Element {
                            tag: *tag,
                            vr: *vr,
                            value: Value::Sequence(std::mem::take(items)),
                        };
                        stack.pop();
                        depth -= 1;
                        let parent = stack.len() - 1;
                        push_elem(&mut stack[parent], el);
                    }
                }
            }
        }
    }

    fn finish_item(&mut self, stack: &mut Vec<Frame>) {
        if let Some(Frame::Item { elements, .. }) = stack.pop() {
            let mut ds = DataSet { elements };
            ds.sort();
            if let Some(Frame::Seq { items, .. }) = stack.last_mut() {
                items.push(ds);
            }
        }
    }

    /// Reads VR (explicit) or looks it up (implicit), then the length.
    fn header(&mut self, tag: Tag, syntax: Syntax) -> Result<(VR, u32), ParseError> {
        if syntax == Syntax::ImplicitLE {
            let len = self.u32(syntax)?;
            return Ok((dictionary::implicit_vr(tag), len));
        }
        let c = self.take(2)?;
        match VR::from_binary([c[0], c[1]]) {
            Some(vr) if has_long_length(vr) => {
                self.take(2)?;
                Ok((vr, self.u32(syntax)?))
            }
            Some(vr) => Ok((vr, self.u16(syntax)? as u32)),
            None => Ok((VR::UN, self.u16(syntax)? as u32)),
        }
    }

    fn fragments(&mut self, syntax: Syntax) -> Result<Value, ParseError> {
        let mut offset_table = None;
        let mut fragments = Vec::new();
        loop {
            let t = self.tag(syntax)?;
            let len = self.u32(syntax)?;
            if t == SEQ_END {
                break;
            }
            if t != ITEM || len == UNDEFINED {
                return Err(ParseError::Malformed("bad pixel data fragment".into()));
            }
            let data = self.take(len as usize)?.to_vec();
            if offset_table.is_none() {
                offset_table = Some(data);
            } else {
                fragments.push(data);
            }
        }
        Ok(Value::Fragments {
            offset_table: offset_table.unwrap_or_default(),
            fragments,
        })
    }
}

fn push_elem(frame: &mut Frame, el: Element) {
    if let Frame::Item { elements, .. } = frame {
        elements.push(el);
    }
}

fn has_long_length(vr: VR) -> bool {
    matches!(
        vr,
        VR::OB
            | VR::OD
            | VR::OF
            | VR::OL
            | VR::OV
            | VR::OW
            | VR::SQ
            | VR::SV
            | VR::UC
            | VR::UN
            | VR::UR
            | VR::UT
            | VR::UV
    )
}

/// Converts a big endian value to little endian.
fn swap_to_le(vr: VR, raw: &[u8]) -> Vec<u8> {
    let width = match vr {
        VR::US | VR::SS | VR::OW | VR::AT => 2,
        VR::UL | VR::SL | VR::FL | VR::OF | VR::OL => 4,
        VR::FD | VR::OD | VR::SV | VR::UV | VR::OV => 8,
        _ => 1,
    };
    let mut v = raw.to_vec();
    if width > 1 {
        for c in v.chunks_exact_mut(width) {
            c.reverse();
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn implicit_elem(g: u16, e: u16, val: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&g.to_le_bytes());
        v.extend_from_slice(&e.to_le_bytes());
        v.extend_from_slice(&(val.len() as u32).to_le_bytes());
        v.extend_from_slice(val);
        v
    }

    #[test]
    fn raw_implicit() {
        let mut b = implicit_elem(0x0010, 0x0010, b"DOE^JOHN");
        b.extend(implicit_elem(0x0008, 0x0060, b"CT"));
        let f = parse(&b, &ParseOptions::default()).unwrap();
        assert_eq!(f.transfer_syntax, "1.2.840.10008.1.2");
        assert_eq!(f.dataset.elements[0].tag, Tag(0x0008, 0x0060));
        assert_eq!(f.dataset.elements[1].vr, VR::PN);
        assert_eq!(
            f.dataset
                .string(Tag(0x0010, 0x0010), Encoding::Ascii)
                .as_deref(),
            Some("DOE^JOHN")
        );
    }

    #[test]
    fn truncated() {
        let mut b = implicit_elem(0x0010, 0x0010, b"DOE^JOHN");
        b.truncate(b.len() - 2);
        assert_eq!(
            parse(&b, &ParseOptions::default()),
            Err(ParseError::Truncated)
        );
        let b = [0x10, 0, 0x10, 0, 0xff, 0xff, 0xff, 0x7f];
        assert_eq!(
            parse(&b, &ParseOptions::default()),
            Err(ParseError::Truncated)
        );
    }

    #[test]
    fn deep_nesting() {
        let mut b = Vec::new();
        for _ in 0..100_000 {
            b.extend_from_slice(&[0x08, 0, 0x15, 0x11, 0xff, 0xff, 0xff, 0xff]);
            b.extend_from_slice(&[0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff]);
        }
        assert_eq!(
            parse(&b, &ParseOptions::default()),
            Err(ParseError::TooDeep)
        );
    }

    #[test]
    fn nested_ok() {
        let mut b = Vec::new();
        b.extend_from_slice(&[0x08, 0, 0x15, 0x11, 0xff, 0xff, 0xff, 0xff]);
        b.extend_from_slice(&[0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff]);
        b.extend(implicit_elem(0x0008, 0x1150, b"1.2\0"));
        b.extend_from_slice(&[0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0]);
        b.extend_from_slice(&[0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
        b.extend(implicit_elem(0x0010, 0x0020, b"ID"));
        let f = parse(&b, &ParseOptions::default()).unwrap();
        let Value::Sequence(items) = &f.dataset.elements[0].value else {
            panic!()
        };
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].elements[0].tag, Tag(0x0008, 0x1150));
        assert_eq!(f.dataset.elements.len(), 2);
    }
}
