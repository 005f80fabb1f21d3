//! Attachments added over REST: revisions (`ETag`, `If-Match`, `If-None-Match`), the DICOM
//! file read-only, compression changes, ranges, sizes in the statistics, removal with the
//! resource.

use integration_tests::{Fixture, Server};
use serde_json::json;

/// (status, ETag, Content-Range, body) of a request.
fn call(
    server: &Server,
    method: &str,
    path: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> (u16, String, String, Vec<u8>) {
    let (status, mut got, body) =
        server.send_raw(method, path, body, headers, &["ETag", "Content-Range"]);
    let range = got.pop().unwrap_or_default();
    (status, got.pop().unwrap_or_default(), range, body)
}

fn md5(data: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn user_attachments_with_revisions() {
    let server = Server::start(json!({ "CheckRevisions": true }));
    let f = Fixture::new("attach", 1);
    server.post("/instances", &f.dicom());
    let [patient, _, _, instance] = f.ids();
    let base = format!("/patients/{patient}/attachments");
    let disk = |s: &Server| {
        s.get("/statistics")["TotalDiskSize"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let before: u64 = disk(&server).parse().unwrap();

    // Orthanc's own attachments are read-only; unknown resources are 404.
    let dicom = format!("/instances/{instance}/attachments/dicom");
    assert_eq!(call(&server, "PUT", &dicom, b"x", &[]).0, 403);
    assert_eq!(call(&server, "DELETE", &dicom, b"", &[]).0, 403);
    let unknown = "/instances/11111111-11111111-11111111-11111111-11111111/attachments/1025";
    assert_eq!(call(&server, "PUT", unknown, b"x", &[]).0, 404);

    // Add one: revision 0, its data, its size counted.
    let (status, etag, _, _) = call(&server, "PUT", &format!("{base}/1025"), b"hello", &[]);
    assert_eq!(
        (status, etag.as_str()),
        (200, &*format!("\"0-{}\"", md5(b"hello")))
    );
    assert_eq!(server.get(&base), json!(["1025"]));
    let (status, tag, _, body) = call(&server, "GET", &format!("{base}/1025/data"), b"", &[]);
    assert_eq!(
        (status, body.as_slice(), tag.as_str()),
        (200, &b"hello"[..], etag.as_str())
    );
    let after: u64 = disk(&server).parse().unwrap();
    assert_eq!(after, before + 5);
    let unchanged = call(
        &server,
        "GET",
        &format!("{base}/1025/data"),
        b"",
        &[("If-None-Match", &etag)],
    );
    assert_eq!((unchanged.0, unchanged.3.len()), (304, 0));
    let bad = call(
        &server,
        "GET",
        &format!("{base}/1025/data"),
        b"",
        &[("If-None-Match", "tata")],
    );
    assert_eq!(bad.0, 400);

    // Changing it needs the current revision and MD5.
    assert_eq!(
        call(&server, "PUT", &format!("{base}/1025"), b"world", &[]).0,
        409
    );
    let stale = format!("0-{}", md5(b"other"));
    assert_eq!(
        call(
            &server,
            "PUT",
            &format!("{base}/1025"),
            b"world",
            &[("If-Match", &stale)]
        )
        .0,
        409
    );
    let (status, etag, _, _) = call(
        &server,
        "PUT",
        &format!("{base}/1025"),
        b"world",
        &[("If-Match", &etag)],
    );
    assert_eq!(
        (status, etag.as_str()),
        (200, &*format!("\"1-{}\"", md5(b"world")))
    );

    // Compression changes keep the data and the revision; ranges of it.
    assert_eq!(server.post(&format!("{base}/1025/compress"), b"").0, 200);
    let (_, tag, _, body) = call(
        &server,
        "GET",
        &format!("{base}/1025/is-compressed"),
        b"",
        &[],
    );
    assert_eq!((body.as_slice(), tag.as_str()), (&b"1"[..], etag.as_str()));
    let (status, _, range, body) = call(
        &server,
        "GET",
        &format!("{base}/1025/data"),
        b"",
        &[("Range", "bytes=1-3")],
    );
    assert_eq!(
        (status, range.as_str(), body.as_slice()),
        (206, "bytes 1-3/5", &b"orl"[..])
    );
    assert_eq!(server.post(&format!("{base}/1025/verify-md5"), b"").0, 200);
    assert_eq!(server.post(&format!("{base}/1025/uncompress"), b"").0, 200);
    assert_eq!(
        call(&server, "GET", &format!("{base}/1025/data"), b"", &[]).3,
        b"world"
    );

    // Deleting needs the revision too; then it is gone, its file too.
    assert_eq!(
        call(&server, "DELETE", &format!("{base}/1025"), b"", &[]).0,
        409
    );
    assert_eq!(
        call(
            &server,
            "DELETE",
            &format!("{base}/1025"),
            b"",
            &[("If-Match", &etag)]
        )
        .0,
        200
    );
    assert_eq!(
        call(&server, "GET", &format!("{base}/1025/data"), b"", &[]).0,
        404
    );
    assert_eq!(disk(&server).parse::<u64>().unwrap(), before);

    // An attachment goes away with its resource.
    call(&server, "PUT", &format!("{base}/1026"), b"bye", &[]);
    assert_eq!(
        server.status("DELETE", &format!("/patients/{patient}")),
        200
    );
    assert_eq!(disk(&server), "0");
}

#[test]
fn invalidate_tags_removes_dicom_as_json_summaries() {
    // An index that holds a DICOM-as-JSON summary (content type 2, as Orthanc 1.9.0 wrote
    // them): recorded straight into the index, its file in the storage area.
    let server = Server::start(json!({}));
    let f = Fixture::new("invalidate", 1);
    server.post("/instances", &f.dicom());
    let instance = f.ids()[3].clone();
    let (_, dir) = server.terminate();
    let storage = dir.path().join("storage");
    let uuid = "0123abcd-0000-4000-8000-000000000000";
    let file = storage.join("01").join("23").join(uuid);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"{}").unwrap();
    let db = rusqlite::Connection::open(storage.join("index.sqlite")).unwrap();
    db.execute(
        "INSERT INTO attachments (resource_id, file_type, uuid, compressed_size, \
         uncompressed_size, compression, uncompressed_md5, compressed_md5) \
         SELECT id, 2, ?, 2, 2, 1, 'x', 'x' FROM resources WHERE public_id = ?",
        [uuid, instance.as_str()],
    )
    .unwrap();
    drop(db);

    let server = Server::start_in(dir, json!({}));
    let list = format!("/instances/{instance}/attachments");
    assert_eq!(server.get(&list), json!(["dicom", "dicom-as-json"]));
    assert_eq!(server.post("/tools/invalidate-tags", b"").0, 200);
    assert_eq!(server.get(&list), json!(["dicom"]));
    assert!(!file.exists(), "the summary's file is removed");
    // The tags are still answered (from the dataset kept in the index).
    let tags = server.get(&format!("/instances/{instance}/tags?simplify"));
    assert_eq!(tags["SOPInstanceUID"], f.sop_uid.as_str());
}
