//! Transcoding: `/instances/{id}/file?transcode=`, and the `Transcode` option of a peer
//! store. What is written is checked with DCMTK (dcmdump, dcmdjpeg) and decoded pixels are
//! compared with the original's.

use std::process::Command;

use integration_tests::{Fixture, Server};
use serde_json::json;

fn get(server: &Server, path: &str) -> (u16, Vec<u8>) {
    let resp = match ureq::get(&server.url(path)).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    let status = resp.status();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).unwrap();
    (status, body)
}

/// The transfer syntax of a file, as DCMTK reads it.
fn syntax_of(path: &std::path::Path) -> String {
    let out = Command::new("dcmdump")
        .args(["-Un", "-s", "+P", "0002,0010"])
        .arg(path)
        .output()
        .expect("dcmdump (DCMTK) is needed");
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text.find('[').expect("a transfer syntax") + 1;
    let end = text[start..].find(']').unwrap() + start;
    text[start..end].trim_end_matches('\0').to_string()
}

#[test]
fn files_are_transcoded_losslessly_and_dcmtk_decodes_them() {
    let a = Server::start(json!({}));
    let f = Fixture::new("transcode", 1);
    assert_eq!(a.post("/instances", &f.dicom()).0, 200);
    let id = &f.ids()[3];
    let (_, raw) = get(&a, &format!("/instances/{id}/frames/0/raw"));
    let dir = tempfile::tempdir().unwrap();
    for ts in [
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.2",
        "1.2.840.10008.1.2.1.99",
    ] {
        let (status, file) = get(&a, &format!("/instances/{id}/file?transcode={ts}"));
        assert_eq!(status, 200, "{ts}");
        let path = dir.path().join(format!("{ts}.dcm"));
        std::fs::write(&path, &file).unwrap();
        assert_eq!(syntax_of(&path), ts);
        // Decoded by DCMTK to explicit little endian, stored in another server: the same
        // pixels as the original.
        let decoded = dir.path().join(format!("{ts}-decoded.dcm"));
        let tool = if ts.starts_with("1.2.840.10008.1.2.4.") {
            "dcmdjpeg"
        } else {
            "dcmconv"
        };
        let mut cmd = Command::new(tool);
        if tool == "dcmconv" {
            cmd.arg("+te");
        }
        let ok = cmd.arg(&path).arg(&decoded).status().unwrap().success();
        assert!(ok, "{tool} cannot read what was written in {ts}");
        let b = Server::start(json!({}));
        assert_eq!(
            b.post("/instances", &std::fs::read(&decoded).unwrap()).0,
            200
        );
        assert_eq!(
            get(&b, &format!("/instances/{id}/frames/0/raw")).1,
            raw,
            "{ts}"
        );
    }
    // Unknown syntaxes: 400, as Orthanc.
    assert_eq!(
        get(&a, &format!("/instances/{id}/file?transcode=nope")).0,
        400
    );
    let (status, _) = get(
        &a,
        &format!("/instances/{id}/file?transcode=1.2.840.10008.1.2.4.50&lossy-quality=0"),
    );
    assert_eq!(status, 400);
}

#[test]
fn peer_store_with_transcode() {
    let b = Server::start(json!({}));
    let a = Server::start(json!({
        "OrthancPeers": { "b": [format!("http://127.0.0.1:{}/", b.port)] }
    }));
    let f = Fixture::new("transcode-peer", 1);
    assert_eq!(a.post("/instances", &f.dicom()).0, 200);
    let id = &f.ids()[3];
    let body = json!({ "Resources": [id], "Transcode": "1.2.840.10008.1.2.4.70" });
    let resp = ureq::post(&a.url("/peers/b/store"))
        .send_json(body)
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (_, ts) = get(&b, &format!("/instances/{id}/metadata/TransferSyntax"));
    assert_eq!(String::from_utf8_lossy(&ts), "1.2.840.10008.1.2.4.70");
    // The frame as stored: a lossless JPEG stream (SOI, SOF3).
    let (_, frame) = get(&b, &format!("/instances/{id}/frames/0/raw"));
    assert_eq!(&frame[..4], &[0xFF, 0xD8, 0xFF, 0xC3]);
    let bad = json!({ "Resources": [id], "Transcode": "nope" });
    match ureq::post(&a.url("/peers/b/store")).send_json(bad) {
        Err(ureq::Error::Status(400, _)) => {}
        other => panic!("unexpected answer: {other:?}"),
    }
}

#[test]
fn media_transcoded_and_its_dicomdir_says_so() {
    let a = Server::start(json!({}));
    let f = Fixture::new("transcode-media", 1);
    assert_eq!(a.post("/instances", &f.dicom()).0, 200);
    let study = &f.ids()[1];
    let ts = "1.2.840.10008.1.2.4.70";
    let (status, zip) = get(&a, &format!("/studies/{study}/media?transcode={ts}"));
    assert_eq!(status, 200);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for name in ["IMAGES/IM0", "DICOMDIR"] {
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut zip.by_name(name).unwrap(), &mut data).unwrap();
        std::fs::write(dir.path().join(name.replace('/', "-")), data).unwrap();
    }
    assert_eq!(syntax_of(&dir.path().join("IMAGES-IM0")), ts);
    let dump = Command::new("dcmdump")
        .args(["-Un", "+P", "0004,1512"])
        .arg(dir.path().join("DICOMDIR"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(
        text.contains(ts),
        "the DICOMDIR names another syntax: {text}"
    );
    assert_eq!(
        get(&a, &format!("/studies/{study}/media?transcode=nope")).0,
        400
    );
}
