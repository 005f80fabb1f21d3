//! Uploading instances over REST: ids, answers, hierarchy, and bad input.

use std::io::Write;

use integration_tests::{Fixture, Server};
use serde_json::{json, Value};

#[test]
fn upload_gives_orthanc_ids_and_hierarchy() {
    let server = Server::start(json!({}));
    let f = Fixture::new("upload", 1);
    let [patient, study, series, instance] = f.ids();
    let (status, answer) = server.post("/instances", &f.dicom());
    assert_eq!(status, 200);
    assert_eq!(answer["ID"], instance);
    assert_eq!(answer["ParentPatient"], patient);
    assert_eq!(answer["ParentStudy"], study);
    assert_eq!(answer["ParentSeries"], series);
    assert_eq!(answer["Path"], format!("/instances/{instance}"));
    assert_eq!(answer["Status"], "Success");

    let (_, again) = server.post("/instances", &f.dicom());
    assert_eq!(again["Status"], "AlreadyStored");

    let p = server.get(&format!("/patients/{patient}"));
    assert_eq!(p["MainDicomTags"]["PatientID"], f.patient_id);
    assert_eq!(p["MainDicomTags"]["PatientName"], f.patient_name);
    assert_eq!(p["Studies"], json!([study]));
    let s = server.get(&format!("/studies/{study}"));
    assert_eq!(s["ParentPatient"], patient);
    assert_eq!(s["PatientMainDicomTags"]["PatientID"], f.patient_id);
    assert_eq!(s["MainDicomTags"]["StudyDescription"], "Chest CT");
    let i = server.get(&format!("/instances/{instance}"));
    assert_eq!(i["ParentSeries"], series);
    assert_eq!(i["IndexInSeries"], 1);
    assert_eq!(i["FileSize"], f.dicom().len());
    let stats = server.get("/statistics");
    assert_eq!(stats["CountInstances"], 1);
    assert_eq!(stats["TotalDiskSize"], f.dicom().len().to_string());
    let file = ureq::get(&server.url(&format!("/instances/{instance}/file")))
        .call()
        .unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file.into_reader(), &mut bytes).unwrap();
    assert_eq!(bytes, f.dicom());
    let tags = server.get(&format!("/instances/{instance}/simplified-tags"));
    assert_eq!(tags["PatientName"], f.patient_name);
    assert_eq!(tags["SOPInstanceUID"], f.sop_uid);
}

#[test]
fn zip_gzip_and_multipart_bodies() {
    let server = Server::start(json!({}));
    let (a, b) = (Fixture::new("zip", 1), Fixture::new("zip", 2));
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for (name, data) in [
        ("a.dcm", a.dicom()),
        ("junk.txt", b"not dicom".to_vec()),
        ("b.dcm", b.dicom()),
    ] {
        zip.start_file(name, opts).unwrap();
        zip.write_all(&data).unwrap();
    }
    let body = zip.finish().unwrap().into_inner();
    let (status, answer) = server.post("/instances", &body);
    assert_eq!(status, 200);
    let ids: Vec<&Value> = answer
        .as_array()
        .unwrap()
        .iter()
        .map(|x| &x["ID"])
        .collect();
    assert_eq!(ids, vec![&json!(a.ids()[3]), &json!(b.ids()[3])]);

    let c = Fixture::new("gzip", 1);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&c.dicom()).unwrap();
    let (status, answer) = server.send(
        "POST",
        "/instances",
        &gz.finish().unwrap(),
        &[("Content-Encoding", "gzip")],
    );
    assert_eq!((status, &answer["ID"]), (200, &json!(c.ids()[3])));

    let d = Fixture::new("multipart", 1);
    let mut body =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"files[]\"; filename=\"d.dcm\"\r\n\r\n"
            .to_vec();
    body.extend(d.dicom());
    body.extend(b"\r\n--XyZ--\r\n");
    let (status, _) = server.send(
        "POST",
        "/instances",
        &body,
        &[("Content-Type", "multipart/form-data; boundary=XyZ")],
    );
    assert_eq!(status, 200);
    assert_eq!(
        server.status("GET", &format!("/instances/{}", d.ids()[3])),
        200
    );
    assert_eq!(server.get("/instances").as_array().unwrap().len(), 4);
}

#[test]
fn bad_bodies_are_refused_and_store_nothing() {
    let server = Server::start(json!({ "PacsnodeMaximumRequestBodySize": 100000 }));
    let good = Fixture::new("bad", 1).dicom();
    let mut deep = good[..132].to_vec(); // preamble + DICM, then a dataset of nested sequences
    deep.truncate(128);
    deep.extend(b"DICM");
    for _ in 0..20000 {
        deep.extend([
            0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 0xff, 0xff, 0xff, 0xff,
        ]);
        deep.extend([0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff]);
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("garbage", b"hello, this is not DICOM".to_vec()),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("deeply nested", deep),
        ("bad zip", b"PK\x03\x04garbage".to_vec()),
    ];
    for (what, body) in cases {
        let (status, err) = server.post("/instances", &body);
        assert_eq!(status, 400, "{what}: {err}");
        assert_eq!(err["HttpStatus"], 400, "{what}");
        assert!(err["OrthancStatus"].is_number(), "{what}");
        assert_eq!(err["Uri"], "/instances");
    }
    let (status, _) = server.post("/instances", &vec![0u8; 200_000]);
    assert_eq!(status, 400, "too large");
    let (status, _) = server.send("POST", "/instances", b"x", &[("Content-Encoding", "gzip")]);
    assert_eq!(status, 400);
    assert_eq!(server.get("/statistics")["CountInstances"], 0);
    let files = walk(&server.dir.path().join("storage"));
    assert!(
        files
            .iter()
            .all(|f| f.ends_with("index.sqlite") || f.contains("index.sqlite-")),
        "{files:?}"
    );
    // The server is still alive and stores good files.
    assert_eq!(server.post("/instances", &good).0, 200);
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn raw_frames_and_content() {
    let server = Server::start(json!({}));
    let f = Fixture::new("frames", 1);
    server.post("/instances", &f.dicom());
    let id = &f.ids()[3];
    let resp = ureq::get(&server.url(&format!("/instances/{id}/frames/0/raw")))
        .call()
        .unwrap();
    assert_eq!(
        resp.header("content-type"),
        Some("application/octet-stream")
    );
    let mut frame = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut frame).unwrap();
    assert_eq!(frame, vec![7u8; 32]);
    assert_eq!(
        server.status("GET", &format!("/instances/{id}/frames/1/raw")),
        404
    );
    assert_eq!(
        server
            .send(
                "GET",
                &format!("/instances/{id}/content/0010-0010"),
                b"",
                &[]
            )
            .1,
        json!(f.patient_name)
    );
    assert_eq!(
        server
            .send(
                "GET",
                &format!("/instances/{id}/content/0010,0020"),
                b"",
                &[]
            )
            .1,
        json!(f.patient_id)
    );
    let tags = server.get(&format!("/instances/{id}/tags"));
    assert_eq!(tags["7fe0,0010"]["Name"], "PixelData");
    assert_eq!(tags["0010,0010"]["Value"], f.patient_name);
}
