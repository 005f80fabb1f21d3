//! Browsing, deleting, the change log, stable events, metadata with revisions, find.

use integration_tests::{wait_until, Fixture, Server};
use serde_json::{json, Value};

fn change_types(server: &Server) -> Vec<String> {
    let c = server.get("/changes?limit=1000");
    c["Changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["ChangeType"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn changes_stable_events_and_delete_cascade() {
    let server = Server::start(json!({ "StableAge": 1 }));
    let (a, b) = (Fixture::new("browse", 1), Fixture::new("browse", 2));
    server.post("/instances", &a.dicom());
    assert_eq!(
        change_types(&server),
        ["NewInstance", "NewSeries", "NewStudy", "NewPatient"]
    );
    server.post("/instances", &b.dicom());
    let [patient, study, series, _] = a.ids();
    assert!(
        wait_until(std::time::Duration::from_secs(5), || change_types(&server)
            .contains(&"StableStudy".to_string())),
        "no StableStudy after StableAge"
    );
    assert_eq!(server.get(&format!("/studies/{study}"))["IsStable"], true);
    let last = server.get("/changes?last");
    assert_eq!(last["Changes"].as_array().unwrap().len(), 1);
    assert_eq!(
        server
            .get(&format!("/series/{series}/instances?expand=false"))
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        server
            .get(&format!("/patients/{patient}/instances"))
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        server.get(&format!("/instances/{}/patient", a.ids()[3]))["ID"],
        patient
    );

    let (_, del) = server.send("DELETE", &format!("/instances/{}", a.ids()[3]), b"", &[]);
    assert_eq!(del["RemainingAncestor"]["Type"], "Series");
    assert_eq!(del["RemainingAncestor"]["ID"], series);
    let (_, del) = server.send("DELETE", &format!("/instances/{}", b.ids()[3]), b"", &[]);
    assert_eq!(del["RemainingAncestor"], Value::Null);
    assert_eq!(server.get("/patients"), json!([]));
    // As in Orthanc, the changes of deleted resources go away, but the sequence goes on.
    let changes = server.get("/changes");
    assert_eq!(changes["Changes"], json!([]));
    assert!(changes["Last"].as_i64().unwrap() >= 8);
    assert_eq!(server.get("/statistics")["CountInstances"], 0);
}

#[test]
fn metadata_with_revisions() {
    let server = Server::start(json!({ "CheckRevisions": true }));
    let f = Fixture::new("meta", 1);
    server.post("/instances", &f.dicom());
    let path = format!("/instances/{}/metadata/my-metadata", f.ids()[3]);
    assert_eq!(server.send("PUT", &path, b"hello", &[]).0, 200);
    let resp = ureq::get(&server.url(&path)).call().unwrap();
    let etag = resp.header("etag").unwrap().to_string();
    assert_eq!(resp.into_string().unwrap(), "hello");
    assert_eq!(
        server.send("PUT", &path, b"again", &[]).0,
        409,
        "update without If-Match"
    );
    // The right revision with another value's MD5 is a conflict too.
    let other_md5 = etag.trim_matches('"').replacen('-', "-0", 1);
    assert_eq!(
        server
            .send("PUT", &path, b"again", &[("If-Match", &other_md5)])
            .0,
        409,
        "If-Match with a wrong MD5"
    );
    assert_eq!(
        server
            .send("PUT", &path, b"again", &[("If-Match", &etag)])
            .0,
        200
    );
    assert_eq!(
        server.send("DELETE", &path, b"", &[("If-Match", &etag)]).0,
        409,
        "stale revision"
    );
    let meta = server.get(&format!("/instances/{}/metadata?expand", f.ids()[3]));
    assert_eq!(meta["my-metadata"], "again");
    assert_eq!(meta["Origin"], "RestApi");
    assert_eq!(meta["TransferSyntax"], "1.2.840.10008.1.2.1");
    assert_eq!(
        server
            .send(
                "PUT",
                &format!("/instances/{}/metadata/ReceptionDate", f.ids()[3]),
                b"x",
                &[]
            )
            .0,
        403
    );
    assert!(change_types(&server).contains(&"UpdatedMetadata".to_string()));
    // MainDicomTagsSignature is computed from the level (never stored): every level has it,
    // listed, expanded and read alone, and it is read-only.
    let system = server.get("/system");
    for (i, level) in ["patients", "studies", "series", "instances"]
        .iter()
        .enumerate()
    {
        let key = ["Patient", "Study", "Series", "Instance"][i];
        let expected = &system["MainDicomTags"][key];
        let base = format!("/{level}/{}/metadata", f.ids()[i]);
        let names = server.get(&base);
        assert!(names
            .as_array()
            .unwrap()
            .contains(&json!("MainDicomTagsSignature")));
        assert_eq!(
            &server.get(&format!("{base}?expand"))["MainDicomTagsSignature"],
            expected
        );
        let (status, body) =
            server.send("GET", &format!("{base}/MainDicomTagsSignature"), b"", &[]);
        assert_eq!((status, &body), (200, expected));
        let (status, _) = server.send("PUT", &format!("{base}/MainDicomTagsSignature"), b"x", &[]);
        assert_eq!(status, 403);
    }
    let numeric = server.get(&format!("/studies/{}/metadata?numeric", f.ids()[1]));
    assert!(numeric.as_array().unwrap().contains(&json!(15)));
}

#[test]
fn find_lookup_and_modalities() {
    let server =
        Server::start(json!({ "DicomModalities": { "pacs": ["PACS", "127.0.0.1", 104] } }));
    for (tag, n) in [("findA", 1), ("findB", 1)] {
        server.post("/instances", &Fixture::new(tag, n).dicom());
    }
    let (_, found) = server.post(
        "/tools/find",
        br#"{"Level":"Study","Query":{"PatientName":"doe^finda"}}"#,
    );
    assert_eq!(found, json!([Fixture::new("findA", 1).ids()[1]]));
    let (_, all) = server.post(
        "/tools/find",
        br#"{"Level":"Patient","Query":{"PatientID":"PAT-*"},"Expand":true}"#,
    );
    assert_eq!(all.as_array().unwrap().len(), 2);
    let (status, _) = server.post("/tools/find", br#"{"Level":"Nope"}"#);
    assert_eq!(status, 400);
    let (_, lookup) = server.post(
        "/tools/lookup",
        Fixture::new("findB", 1).study_uid.as_bytes(),
    );
    assert_eq!(lookup[0]["Type"], "Study");
    assert_eq!(server.get("/modalities"), json!(["pacs"]));
    assert_eq!(server.get("/modalities?expand")["pacs"]["AET"], "PACS");
    assert_eq!(
        server
            .send(
                "PUT",
                "/modalities/other",
                br#"{"AET":"O","Host":"h","Port":11112}"#,
                &[]
            )
            .0,
        200
    );
    assert_eq!(server.get("/modalities/other/configuration")["Port"], 11112);
    assert_eq!(server.send("DELETE", "/modalities/other", b"", &[]).0, 200);
    assert_eq!(server.status("GET", "/modalities/other"), 404);
}
