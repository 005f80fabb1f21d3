//! The dataset kept for each instance (everything before Pixel Data), compressed for the
//! index. `encoding` says how: 0 raw, 1 zlib, 2 zlib with [`dictionary`] (new rows).
//!
//! A header is ~1 kB, too little for zlib to find much to repeat: most of it is the same in
//! every DICOM file (the preamble, the group lengths, the tag and VR codes of the common
//! elements, the well-known UIDs and values). Given beforehand as a preset dictionary, that
//! shared part costs a few bytes instead of being stored again in every row (a fifth of the
//! header on the benchmark's data: 817 → 646 bytes).

use std::sync::LazyLock;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::IndexError;

/// The encoding of the headers written now.
pub const HEADER_ENCODING: i64 = 2;

/// Common elements (tag and VR) of DICOM files, in file order, whose element headers make
/// the dictionary's second part. Never change this list: stored headers were compressed with it.
const ELEMENTS: &str = "\
    0002,0000 UL 0002,0001 OB 0002,0002 UI 0002,0003 UI 0002,0010 UI 0002,0012 UI \
    0002,0013 SH 0002,0016 AE 0008,0005 CS 0008,0008 CS 0008,0012 DA 0008,0013 TM \
    0008,0016 UI 0008,0018 UI 0008,0020 DA 0008,0021 DA 0008,0022 DA 0008,0023 DA \
    0008,0030 TM 0008,0031 TM 0008,0032 TM 0008,0033 TM 0008,0050 SH 0008,0060 CS \
    0008,0064 CS 0008,0070 LO 0008,0080 LO 0008,0090 PN 0008,1010 SH 0008,1030 LO \
    0008,103E LO 0008,1040 LO 0008,1090 LO 0008,1140 SQ 0008,1150 UI 0008,1155 UI \
    0010,0010 PN 0010,0020 LO 0010,0030 DA 0010,0040 CS 0010,1010 AS 0010,1020 DS \
    0010,1030 DS 0018,0015 CS 0018,0050 DS 0018,0060 DS 0018,0088 DS 0018,1000 LO \
    0018,1020 LO 0018,1030 LO 0018,1150 IS 0018,1151 IS 0018,1152 IS 0018,1210 SH \
    0018,5100 CS 0020,000D UI 0020,000E UI 0020,0010 SH 0020,0011 IS 0020,0012 IS \
    0020,0013 IS 0020,0020 CS 0020,0032 DS 0020,0037 DS 0020,0052 UI 0020,1040 LO \
    0020,1041 DS 0028,0002 US 0028,0004 CS 0028,0006 US 0028,0008 IS 0028,0010 US \
    0028,0011 US 0028,0030 DS 0028,0100 US 0028,0101 US 0028,0102 US 0028,0103 US \
    0028,1050 DS 0028,1051 DS 0028,1052 DS 0028,1053 DS 0028,1054 LO 7FE0,0010 OW";

/// Common values: transfer syntaxes, storage classes, implementation UID roots, character
/// sets, image types and modalities. Never change this list either.
const VALUES: &[&str] = &[
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.5.1.4.1.1.1",
    "1.2.840.10008.5.1.4.1.1.1.1",
    "1.2.840.10008.5.1.4.1.1.2",
    "1.2.840.10008.5.1.4.1.1.4",
    "1.2.840.10008.5.1.4.1.1.6.1",
    "1.2.840.10008.5.1.4.1.1.7",
    "1.2.840.10008.5.1.4.1.1.20",
    "1.2.840.10008.5.1.4.1.1.128",
    "1.2.840.10008.5.1.4.1.1.481.",
    "1.2.840.10008.5.1.4.1.1.88.",
    "1.2.276.0.7230010.3.",
    "1.3.6.1.4.1.",
    "2.25.",
    "OFFIS_DCMTK_",
    "ISO_IR 100",
    "ISO_IR 192",
    "ORIGINAL\\PRIMARY\\AXIAL",
    "ORIGINAL\\PRIMARY",
    "DERIVED\\SECONDARY",
    "MONOCHROME1",
    "MONOCHROME2",
    "RGB",
    "YBR_FULL_422",
    "HFS",
    "STANDARD",
    "CT",
    "MR",
    "CR",
    "DX",
    "US",
    "PT",
    "NM",
    "SC",
    "OT",
    "SIEMENS",
    "GE MEDICAL SYSTEMS",
    "Philips",
    "TOSHIBA",
    "HOSPITAL",
    "CHEST",
    "HEAD",
    "ABDOMEN",
];

/// The preset dictionary of encoding 2: the preamble and magic of a DICOM file, the common
/// values (each ended by a NUL, as UIDs are padded), then the element headers (explicit VR
/// little endian; the length of fixed-size VRs included).
pub fn dictionary() -> &'static [u8] {
    static DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
        let mut out = vec![0u8; 128];
        out.extend_from_slice(b"DICM");
        for v in VALUES {
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        let mut words = ELEMENTS.split_whitespace();
        while let (Some(tag), Some(vr)) = (words.next(), words.next()) {
            for half in tag.split(',') {
                let number = u16::from_str_radix(half, 16).expect("a hexadecimal tag");
                out.extend_from_slice(&number.to_le_bytes());
            }
            out.extend_from_slice(vr.as_bytes());
            let length: u16 = match vr {
                "US" | "SS" => 2,
                "UL" | "SL" | "FL" => 4,
                "FD" => 8,
                _ => 0,
            };
            out.extend_from_slice(&length.to_le_bytes());
        }
        out
    });
    &DICTIONARY
}

/// Compresses the dataset kept for an instance: encoding [`HEADER_ENCODING`].
pub fn encode_header(raw: &[u8]) -> Vec<u8> {
    thread_local! {
        // One compressor per thread, reset between uses: a new one allocates and zeroes a few
        // hundred kB, which was a visible part of an ingest's CPU (perf: memset).
        static ZLIB: std::cell::RefCell<Compress> =
            std::cell::RefCell::new(Compress::new(Compression::fast(), true));
    }
    ZLIB.with(|z| {
        let mut z = z.borrow_mut();
        z.reset();
        if z.set_dictionary(dictionary()).is_err() {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(raw.len() / 2 + 64);
        loop {
            let done = z.total_in() as usize;
            match z.compress_vec(&raw[done..], &mut out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => return out,
                Ok(_) => out.reserve(out.capacity().max(64)),
                Err(_) => return Vec::new(),
            }
        }
    })
}

/// The dataset kept for an instance, as stored with `encoding` (0 raw, 1 zlib, 2 zlib with
/// the dictionary).
pub fn decode_header(blob: Vec<u8>, encoding: i64) -> Result<Vec<u8>, IndexError> {
    let corrupted = |e: &dyn std::fmt::Display| {
        IndexError::BadRequest(format!("corrupted dataset in the index: {e}"))
    };
    if encoding == 0 {
        return Ok(blob);
    }
    let mut z = Decompress::new(true);
    let mut out = Vec::with_capacity(blob.len() * 3 + 64);
    loop {
        let (read, written) = (z.total_in(), z.total_out());
        match z.decompress_vec(&blob[read as usize..], &mut out, FlushDecompress::Finish) {
            Ok(Status::StreamEnd) => return Ok(out),
            Ok(_) if out.len() == out.capacity() => out.reserve(out.capacity()),
            Ok(_) if z.total_in() == read && z.total_out() == written => {
                return Err(corrupted(&"truncated"))
            }
            Ok(_) => {}
            Err(e) if e.needs_dictionary().is_some() && encoding == 2 => {
                z.set_dictionary(dictionary()).map_err(|e| corrupted(&e))?;
            }
            Err(e) => return Err(corrupted(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_through_the_reused_compressor() {
        for raw in [
            Vec::new(),
            b"DICM".repeat(3),
            (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect(),
        ] {
            for _ in 0..2 {
                let blob = encode_header(&raw);
                assert_eq!(decode_header(blob, HEADER_ENCODING).unwrap(), raw);
            }
        }
    }

    #[test]
    fn the_dictionary_makes_a_dicom_header_smaller() {
        // A small header as files have them: preamble, meta group, common elements.
        let mut raw = vec![0u8; 128];
        raw.extend_from_slice(b"DICM");
        let mut element = |tag: (u16, u16), vr: &[u8], value: &[u8]| {
            raw.extend_from_slice(&tag.0.to_le_bytes());
            raw.extend_from_slice(&tag.1.to_le_bytes());
            raw.extend_from_slice(vr);
            raw.extend_from_slice(&(value.len() as u16).to_le_bytes());
            raw.extend_from_slice(value);
        };
        element((0x0002, 0x0010), b"UI", b"1.2.840.10008.1.2.1\0");
        element((0x0008, 0x0016), b"UI", b"1.2.840.10008.5.1.4.1.1.2\0");
        element((0x0008, 0x0060), b"CS", b"CT");
        element((0x0010, 0x0010), b"PN", b"DOE^JOHN");
        element((0x0028, 0x0004), b"CS", b"MONOCHROME2 ");
        element((0x0028, 0x0010), b"US", &512u16.to_le_bytes());
        let plain = {
            use std::io::Write;
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), Compression::fast());
            z.write_all(&raw).unwrap();
            z.finish().unwrap().len()
        };
        let with_dictionary = encode_header(&raw).len();
        assert!(with_dictionary < plain, "{with_dictionary} >= {plain}");
    }

    #[test]
    fn reads_the_older_encodings_and_refuses_garbage() {
        use std::io::Write;
        let raw = b"\0\0\0\0DICM some dataset".to_vec();
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), Compression::fast());
        z.write_all(&raw).unwrap();
        assert_eq!(decode_header(z.finish().unwrap(), 1).unwrap(), raw);
        assert_eq!(decode_header(raw.clone(), 0).unwrap(), raw);
        assert!(decode_header(b"garbage".to_vec(), 2).is_err());
        let mut cut = encode_header(&raw);
        cut.truncate(cut.len() / 2);
        assert!(decode_header(cut, 2).is_err());
    }

    #[test]
    fn the_dictionary_never_changes() {
        // Headers stored with encoding 2 can only be read with this very dictionary.
        let d = dictionary();
        let (mut a, mut b) = (1u32, 0u32);
        for &x in d {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((d.len(), (b << 16) | a), (1531, ADLER32));
    }

    const ADLER32: u32 = 3_902_530_427;
}
