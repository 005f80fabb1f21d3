//! DICOMDIR (PS3.10 Basic Directory) of a media archive: PATIENT / STUDY / SERIES / IMAGE
//! records with the attributes Orthanc (through DCMTK) writes, encoded by hand in Explicit VR
//! Little Endian (sequence and items of undefined length) so that the record offsets are
//! known while writing.

use crate::model::dicom::{DicomFile, Tag};

/// The attributes of one instance that its records need, read from its stored dataset.
#[derive(Debug, Clone, Default)]
pub struct Instance {
    /// `IMAGES\IM0`'s components.
    pub file_id: Vec<String>,
    pub transfer_syntax: String,
    pub charset: Option<String>,
    /// (tag, value) per level, in tag order.
    pub patient: Vec<(Tag, String)>,
    pub study: Vec<(Tag, String)>,
    pub series: Vec<(Tag, String)>,
    pub image: Vec<(Tag, String)>,
    /// Identifiers: PatientID, StudyInstanceUID, SeriesInstanceUID.
    pub keys: [String; 3],
}

/// Reduces a value to what a DICOMDIR holds: printable ASCII (Orthanc's conversion).
fn ascii(s: &str) -> String {
    s.chars().filter(|c| (' '..='~').contains(c)).collect()
}

impl Instance {
    /// Reads the record attributes from an instance's dataset, as Orthanc does (types 1, 1C,
    /// 2 and 3 of DCMTK's DicomDirInterface); `extended` adds SeriesDescription.
    pub fn from_file(
        file: &DicomFile,
        file_id: Vec<String>,
        extended: bool,
        now: (&str, &str),
    ) -> Instance {
        let charset = file.charset();
        let ds = &file.dataset;
        let value = |g: u16, e: u16| ds.string(Tag(g, e), charset).map(|v| ascii(v.trim()));
        let present = |g: u16, e: u16| ds.get(Tag(g, e)).is_some();
        // Type 1 and 2: always there (empty if absent); 1C: only with a value; 3: if present.
        let t1 = |out: &mut Vec<(Tag, String)>, g, e| {
            out.push((Tag(g, e), value(g, e).unwrap_or_default()))
        };
        let t1c = |out: &mut Vec<(Tag, String)>, g, e| {
            if let Some(v) = value(g, e).filter(|v| !v.is_empty()) {
                out.push((Tag(g, e), v));
            }
        };
        let t3 = |out: &mut Vec<(Tag, String)>, g, e| {
            if present(g, e) {
                out.push((Tag(g, e), value(g, e).unwrap_or_default()));
            }
        };
        let mut i = Instance {
            file_id,
            transfer_syntax: file.transfer_syntax.clone(),
            charset: value(0x0008, 0x0005).filter(|v| !v.is_empty()),
            ..Default::default()
        };
        t1(&mut i.patient, 0x0010, 0x0010);
        t1c(&mut i.patient, 0x0010, 0x0020);
        let first = |pairs: [(u16, u16); 4], default: &str| {
            pairs
                .iter()
                .find_map(|(g, e)| present(*g, *e).then(|| value(*g, *e).unwrap_or_default()))
                .unwrap_or_else(|| default.to_string())
        };
        i.study.push((
            Tag(0x0008, 0x0020),
            first(
                [
                    (0x0008, 0x0020),
                    (0x0008, 0x0021),
                    (0x0008, 0x0022),
                    (0x0008, 0x0023),
                ],
                now.0,
            ),
        ));
        i.study.push((
            Tag(0x0008, 0x0030),
            first(
                [
                    (0x0008, 0x0030),
                    (0x0008, 0x0031),
                    (0x0008, 0x0032),
                    (0x0008, 0x0033),
                ],
                now.1,
            ),
        ));
        t1(&mut i.study, 0x0008, 0x0050);
        t1(&mut i.study, 0x0008, 0x1030);
        t1(&mut i.study, 0x0020, 0x000d);
        t1c(&mut i.study, 0x0020, 0x0010);
        t1(&mut i.series, 0x0008, 0x0060);
        if extended {
            t3(&mut i.series, 0x0008, 0x103e);
        }
        t1(&mut i.series, 0x0020, 0x000e);
        t1c(&mut i.series, 0x0020, 0x0011);
        i.image.push((
            Tag(0x0004, 0x1510),
            value(0x0008, 0x0016).unwrap_or_default(),
        ));
        i.image.push((
            Tag(0x0004, 0x1511),
            value(0x0008, 0x0018).unwrap_or_default(),
        ));
        t1(&mut i.image, 0x0020, 0x0013);
        i.keys = [
            value(0x0010, 0x0020).unwrap_or_default(),
            value(0x0020, 0x000d).unwrap_or_default(),
            value(0x0020, 0x000e).unwrap_or_default(),
        ];
        i
    }
}

/// One directory record before encoding.
struct Record {
    kind: &'static str,
    attrs: Vec<(Tag, &'static str, String)>,
    next: Option<usize>,
    child: Option<usize>,
}

fn vr_of(tag: Tag) -> &'static str {
    match (tag.0, tag.1) {
        (0x0010, 0x0010) => "PN",
        (0x0010, 0x0020) | (0x0008, 0x1030) | (0x0008, 0x103e) => "LO",
        (0x0008, 0x0020) => "DA",
        (0x0008, 0x0030) => "TM",
        (0x0008, 0x0050) | (0x0020, 0x0010) => "SH",
        (0x0020, 0x000d) | (0x0020, 0x000e) | (0x0004, 0x1510..=0x1512) => "UI",
        (0x0020, 0x0011) | (0x0020, 0x0013) => "IS",
        _ => "CS",
    }
}

/// Explicit VR Little Endian element with a short length (every VR used here).
fn element(out: &mut Vec<u8>, tag: Tag, vr: &str, value: &[u8]) {
    let pad = value.len() % 2;
    out.extend_from_slice(&tag.0.to_le_bytes());
    out.extend_from_slice(&tag.1.to_le_bytes());
    out.extend_from_slice(vr.as_bytes());
    out.extend_from_slice(&((value.len() + pad) as u16).to_le_bytes());
    out.extend_from_slice(value);
    if pad == 1 {
        out.push(if vr == "UI" { 0 } else { b' ' });
    }
}

fn text(out: &mut Vec<u8>, tag: Tag, vr: &str, value: &str) {
    element(out, tag, vr, value.as_bytes());
}

fn ul(out: &mut Vec<u8>, tag: Tag, v: u32) {
    element(out, tag, "UL", &v.to_le_bytes());
}

fn encode_record(r: &Record, offsets: &[u32]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&[0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff]);
    ul(
        &mut out,
        Tag(0x0004, 0x1400),
        r.next.map_or(0, |n| offsets[n]),
    );
    element(
        &mut out,
        Tag(0x0004, 0x1410),
        "US",
        &0xffffu16.to_le_bytes(),
    );
    ul(
        &mut out,
        Tag(0x0004, 0x1420),
        r.child.map_or(0, |c| offsets[c]),
    );
    text(&mut out, Tag(0x0004, 0x1430), "CS", r.kind);
    for (tag, vr, v) in &r.attrs {
        text(&mut out, *tag, vr, v);
    }
    out.extend_from_slice(&[0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0]);
    out
}

/// The DICOMDIR file of these instances (in the order of their `IMAGES\IMn` files).
pub fn write(instances: &[Instance], sop_instance_uid: &str) -> Vec<u8> {
    // The tree, children in order of appearance.
    let mut records: Vec<Record> = Vec::new();
    let mut roots: Vec<usize> = Vec::new();
    let mut children: Vec<Vec<usize>> = Vec::new();
    let mut index: std::collections::HashMap<(usize, String), usize> = Default::default();
    let add = |records: &mut Vec<Record>, children: &mut Vec<Vec<usize>>, kind, attrs| {
        records.push(Record {
            kind,
            attrs,
            next: None,
            child: None,
        });
        children.push(Vec::new());
        records.len() - 1
    };
    let with_charset = |mut attrs: Vec<(Tag, &'static str, String)>, i: &Instance| {
        if let Some(c) = &i.charset {
            attrs.push((Tag(0x0008, 0x0005), "CS", c.clone()));
        }
        attrs.sort_by_key(|(t, _, _)| *t);
        attrs
    };
    let typed = |v: &[(Tag, String)]| -> Vec<(Tag, &'static str, String)> {
        v.iter().map(|(t, s)| (*t, vr_of(*t), s.clone())).collect()
    };
    for i in instances {
        let mut parent: Option<usize> = None;
        for (level, kind, attrs) in [
            (0, "PATIENT", &i.patient),
            (1, "STUDY", &i.study),
            (2, "SERIES", &i.series),
        ] {
            let key = (level, i.keys[..=level].join("|"));
            let id = match index.get(&key) {
                Some(id) => *id,
                None => {
                    let id = add(
                        &mut records,
                        &mut children,
                        kind,
                        with_charset(typed(attrs), i),
                    );
                    index.insert(key, id);
                    match parent {
                        Some(p) => children[p].push(id),
                        None => roots.push(id),
                    }
                    id
                }
            };
            parent = Some(id);
        }
        let mut attrs = typed(&i.image);
        attrs.push((Tag(0x0004, 0x1500), "CS", i.file_id.join("\\")));
        attrs.push((Tag(0x0004, 0x1512), "UI", i.transfer_syntax.clone()));
        let id = add(&mut records, &mut children, "IMAGE", with_charset(attrs, i));
        if let Some(p) = parent {
            children[p].push(id);
        }
    }
    // Sibling and child links.
    for list in children.iter().chain(std::iter::once(&roots)) {
        for w in list.windows(2) {
            records[w[0]].next = Some(w[1]);
        }
    }
    for (i, list) in children.iter().enumerate() {
        records[i].child = list.first().copied();
    }
    // Depth-first order, as DCMTK writes them.
    let mut order = Vec::with_capacity(records.len());
    let mut stack: Vec<usize> = roots.iter().rev().copied().collect();
    while let Some(r) = stack.pop() {
        order.push(r);
        stack.extend(children[r].iter().rev());
    }

    let mut meta = Vec::new();
    // (0002,0001) OB has the long length form.
    meta.extend_from_slice(&[0x02, 0x00, 0x01, 0x00, b'O', b'B', 0, 0, 2, 0, 0, 0, 0, 1]);
    text(&mut meta, Tag(0x0002, 0x0002), "UI", "1.2.840.10008.1.3.10");
    text(&mut meta, Tag(0x0002, 0x0003), "UI", sop_instance_uid);
    text(&mut meta, Tag(0x0002, 0x0010), "UI", "1.2.840.10008.1.2.1");
    text(
        &mut meta,
        Tag(0x0002, 0x0012),
        "UI",
        crate::dimse::part10::IMPLEMENTATION_CLASS_UID,
    );
    text(&mut meta, Tag(0x0002, 0x0013), "SH", "PACSNODE");
    let mut head = vec![0u8; 128];
    head.extend_from_slice(b"DICM");
    ul(&mut head, Tag(0x0002, 0x0000), meta.len() as u32);
    head.extend_from_slice(&meta);
    text(&mut head, Tag(0x0004, 0x1130), "CS", "ORTHANC_MEDIA");
    // Offsets: the records' sizes do not depend on the offsets they hold.
    let fixed = head.len() + 12 + 12 + 10 + 12;
    let zeros = vec![0; records.len()];
    let sizes: Vec<usize> = records
        .iter()
        .map(|r| encode_record(r, &zeros).len())
        .collect();
    let mut offsets = vec![0u32; records.len()];
    let mut at = fixed;
    for &r in &order {
        offsets[r] = at as u32;
        at += sizes[r];
    }
    let mut out = head;
    ul(
        &mut out,
        Tag(0x0004, 0x1200),
        roots.first().map_or(0, |r| offsets[*r]),
    );
    ul(
        &mut out,
        Tag(0x0004, 0x1202),
        roots.last().map_or(0, |r| offsets[*r]),
    );
    element(&mut out, Tag(0x0004, 0x1212), "US", &0u16.to_le_bytes());
    out.extend_from_slice(&[
        0x04, 0x00, 0x20, 0x12, b'S', b'Q', 0, 0, 0xff, 0xff, 0xff, 0xff,
    ]);
    debug_assert_eq!(out.len(), fixed);
    for &r in &order {
        out.extend_from_slice(&encode_record(&records[r], &offsets));
    }
    out.extend_from_slice(&[0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
    out
}
