//! The storage area: compression, recycling and rejection when full, zip bombs.

use std::io::Write;

use integration_tests::{Fixture, Server};
use serde_json::json;

#[test]
fn compressed_storage_gives_back_the_same_file() {
    let server = Server::start(json!({ "StorageCompression": true }));
    let f = Fixture::new("compressed", 1);
    server.post("/instances", &f.dicom());
    let id = &f.ids()[3];
    assert_eq!(
        server
            .send(
                "GET",
                &format!("/instances/{id}/attachments/dicom/is-compressed"),
                b"",
                &[]
            )
            .1,
        json!(1)
    );
    let file = ureq::get(&server.url(&format!("/instances/{id}/file")))
        .call()
        .unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file.into_reader(), &mut bytes).unwrap();
    assert_eq!(bytes, f.dicom());
    let info = server.get(&format!("/instances/{id}/attachments/dicom/info"));
    assert_eq!(info["UncompressedSize"], f.dicom().len());
    assert!(info["CompressedSize"].as_u64().unwrap() < f.dicom().len() as u64);
}

#[test]
fn oldest_unprotected_patient_is_recycled() {
    let server = Server::start(json!({ "MaximumPatientCount": 2 }));
    let patients: Vec<Fixture> = (0..3)
        .map(|i| Fixture::new(&format!("recycle{i}"), 1))
        .collect();
    server.post("/instances", &patients[0].dicom());
    assert_eq!(
        server
            .send(
                "PUT",
                &format!("/patients/{}/protected", patients[0].ids()[0]),
                b"1",
                &[]
            )
            .0,
        200
    );
    server.post("/instances", &patients[1].dicom());
    server.post("/instances", &patients[2].dicom());
    let left = server.get("/patients");
    assert_eq!(left.as_array().unwrap().len(), 2);
    // The protected one stays, the oldest unprotected one went.
    assert!(left
        .as_array()
        .unwrap()
        .contains(&json!(patients[0].ids()[0])));
    assert!(!left
        .as_array()
        .unwrap()
        .contains(&json!(patients[1].ids()[0])));
}

#[test]
fn full_storage_rejects_new_patients() {
    let server = Server::start(json!({ "MaximumPatientCount": 1, "MaximumStorageMode": "Reject" }));
    assert_eq!(
        server
            .post("/instances", &Fixture::new("reject0", 1).dicom())
            .0,
        200
    );
    let (status, err) = server.post("/instances", &Fixture::new("reject1", 1).dicom());
    assert_eq!(status, 507);
    assert_eq!(err["OrthancStatus"], 19);
    // Same patient is still fine.
    assert_eq!(
        server
            .post("/instances", &Fixture::new("reject0", 2).dicom())
            .0,
        200
    );
    assert_eq!(server.get("/statistics")["CountInstances"], 2);
}

#[test]
fn zip_bombs_are_refused() {
    let server = Server::start(json!({ "PacsnodeMaximumZipUncompressedSize": 10_000_000 }));
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("bomb.dcm", opts).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..50 {
        zip.write_all(&zeros).unwrap();
    }
    let body = zip.finish().unwrap().into_inner();
    assert!(body.len() < 200_000);
    let (status, err) = server.post("/instances", &body);
    assert_eq!(status, 400, "{err}");
    assert_eq!(server.get("/statistics")["CountInstances"], 0);
    assert_eq!(server.status("GET", "/system"), 200);
}

/// Checkpoints run beside a stream of concurrent ingests and still let the WAL start again
/// from its beginning: it stays small (it grew by ~80 kB per group commit, without end, when
/// the commits never found it wholly copied).
#[test]
fn the_wal_stays_small_during_a_long_concurrent_ingest() {
    let server = Server::start(json!({}));
    let url = server.url("/instances");
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let url = url.clone();
            std::thread::spawn(move || {
                for n in 1..=500u32 {
                    let f = Fixture::new(&format!("wal-{w}-{}", n / 2), n);
                    let r = ureq::post(&url).send_bytes(&f.dicom()).unwrap();
                    assert_eq!(r.status(), 200);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(server.get("/statistics")["CountInstances"], 2000);
    let wal = server.dir.path().join("storage").join("index.sqlite-wal");
    let size = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert!(
        size < 24 << 20,
        "the WAL is {size} bytes after 2000 instances"
    );
}
