//! The find engine over HTTP: /tools/find (matching rules, levels, paging, ordering, parents,
//! metadata, labels, ResponseContent, RequestedTags), /tools/count-resources, labels routes,
//! ?requested-tags on resources, and bad queries.

use integration_tests::{Fixture, Server};
use serde_json::{json, Value};

fn find(server: &Server, body: Value) -> (u16, Value) {
    server.post("/tools/find", body.to_string().as_bytes())
}

fn ids(server: &Server, body: Value) -> Vec<String> {
    let (status, v) = find(server, body.clone());
    assert_eq!(status, 200, "{body}: {v}");
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn count(server: &Server, body: Value) -> (u16, Value) {
    server.post("/tools/count-resources", body.to_string().as_bytes())
}

/// Three patients (alpha, beta, gamma), one study each, alpha with two instances.
fn loaded() -> (Server, [Fixture; 4]) {
    let server = Server::start(json!({}));
    let f = [
        Fixture::new("alpha", 1),
        Fixture::new("alpha", 2),
        Fixture::new("beta", 1),
        Fixture::new("gamma", 1),
    ];
    for x in &f {
        assert_eq!(server.post("/instances", &x.dicom()).0, 200);
    }
    (server, f)
}

#[test]
fn matching_rules_levels_and_counts() {
    let (server, f) = loaded();
    let alpha_study = f[0].ids()[1].clone();
    // Exact match: case-insensitive unless CaseSensitive, as Orthanc's REST API.
    let q = |cs: bool| json!({"Level": "Study", "CaseSensitive": cs, "Query": {"PatientID": "pat-alpha"}});
    assert_eq!(ids(&server, q(false)), std::slice::from_ref(&alpha_study));
    assert!(ids(&server, q(true)).is_empty());
    // Patient tags at the instance level, wildcards, lists.
    let q = json!({"Level": "Instance", "Query": {"PatientName": "DOE^AL*"}});
    assert_eq!(ids(&server, q).len(), 2);
    let q = json!({"Level": "Patient", "Query": {"PatientName": "doe^beta\\DOE^GAMMA\\nope"}});
    assert_eq!(ids(&server, q).len(), 2);
    // Ranges on dates, and a series tag at the study level (ModalitiesInStudy).
    let q = json!({"Level": "Study", "Query": {"StudyDate": "20240101-20240131", "ModalitiesInStudy": "MR\\CT"}});
    assert_eq!(ids(&server, q).len(), 3);
    let q = json!({"Level": "Study", "Query": {"ModalitiesInStudy": "MR"}});
    assert!(ids(&server, q).is_empty());
    let q = json!({"Level": "Patient", "Query": {"Modality": "CT", "PatientID": "PAT-beta"}});
    assert_eq!(ids(&server, q).len(), 1);
    let q = json!({"Level": "Study", "Query": {"StudyDate": "-20231231"}});
    assert!(ids(&server, q).is_empty());
    // A tag outside the main tags is read from the stored dataset.
    let q = json!({"Level": "Series", "Query": {"Rows": "4"}});
    assert_eq!(ids(&server, q).len(), 3);
    let q = json!({"Level": "Series", "Query": {"Rows": "5"}});
    assert!(ids(&server, q).is_empty());
    // Since and Limit page through the same order.
    let all = ids(&server, json!({"Level": "Instance", "Query": {}}));
    assert_eq!(all.len(), 4);
    let mut paged = Vec::new();
    for since in 0..4 {
        paged.extend(ids(
            &server,
            json!({"Level": "Instance", "Query": {}, "Since": since, "Limit": 1}),
        ));
    }
    assert_eq!(paged, all);
    // count-resources: same body, a count; CaseSensitive true is refused as Orthanc does.
    let (status, n) = count(
        &server,
        json!({"Level": "Instance", "Query": {"PatientName": "*a*"}}),
    );
    assert_eq!((status, n), (200, json!({"Count": 4})));
    let (status, _) = count(
        &server,
        json!({"Level": "Study", "CaseSensitive": true, "Query": {}}),
    );
    assert_eq!(status, 400);
}

#[test]
fn order_parents_metadata_and_response_content() {
    let (server, f) = loaded();
    let [alpha_patient, _, alpha_series, _] = f[0].ids();
    let q = json!({"Level": "Patient", "Query": {},
        "OrderBy": [{"Type": "DicomTag", "Key": "PatientName", "Direction": "DESC"}], "Expand": true});
    let (_, v) = find(&server, q);
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["MainDicomTags"]["PatientName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["DOE^gamma", "DOE^beta", "DOE^alpha"]);
    let q = json!({"Level": "Instance", "Query": {}, "ParentPatient": alpha_patient});
    assert_eq!(ids(&server, q).len(), 2);
    server.send(
        "PUT",
        &format!("/series/{alpha_series}/metadata/1024"),
        b"tagged-alpha",
        &[],
    );
    let q = json!({"Level": "Series", "Query": {}, "MetadataQuery": {"1024": "*alpha"}});
    assert_eq!(ids(&server, q), std::slice::from_ref(&alpha_series));
    let q = json!({"Level": "Series", "Query": {"PatientID": "PAT-alpha"},
        "ResponseContent": ["Parent", "Metadata"], "RequestedTags": ["PatientName", "NumberOfSeriesRelatedInstances", "Rows"]});
    let (_, v) = find(&server, q);
    let s = &v[0];
    assert_eq!(s["ID"], alpha_series.as_str());
    assert_eq!(s["Type"], "Series");
    assert!(s.get("ParentStudy").is_some() && s.get("MainDicomTags").is_none());
    assert_eq!(s["Metadata"]["1024"], "tagged-alpha");
    assert_eq!(
        s["RequestedTags"],
        json!({"PatientName": "DOE^alpha", "NumberOfSeriesRelatedInstances": "2", "Rows": "4"})
    );
    // The same requested tags on a resource and a list.
    let one = server.get(&format!(
        "/series/{alpha_series}?requested-tags=PatientName;ModalitiesInStudy"
    ));
    assert_eq!(one["RequestedTags"], json!({"PatientName": "DOE^alpha"}));
    let studies =
        server.get("/studies?expand&requestedTags=ModalitiesInStudy;NumberOfStudyRelatedInstances");
    assert_eq!(studies[0]["RequestedTags"]["ModalitiesInStudy"], "CT");
    let one = server.get(&format!(
        "/studies/{}?requested-tags=SOPClassesInStudy;NumberOfStudyRelatedSeries",
        f[0].ids()[1]
    ));
    assert_eq!(
        one["RequestedTags"],
        json!({"SOPClassesInStudy": "1.2.840.10008.5.1.4.1.1.2", "NumberOfStudyRelatedSeries": "1"})
    );
}

#[test]
fn labels_routes_and_label_queries() {
    let (server, f) = loaded();
    let instance = f[0].ids()[3].clone();
    let base = format!("/instances/{instance}");
    assert_eq!(server.get("/tools/labels"), json!([]));
    assert_eq!(server.status("GET", &format!("{base}/labels/hello")), 404);
    assert_eq!(
        server
            .send("PUT", &format!("{base}/labels/hello"), b"", &[])
            .0,
        200
    );
    assert_eq!(
        server
            .send("PUT", &format!("{base}/labels/bad@label"), b"", &[])
            .0,
        400
    );
    assert_eq!(server.status("GET", &format!("{base}/labels/hello")), 200);
    assert_eq!(server.get(&format!("{base}/labels")), json!(["hello"]));
    assert_eq!(server.get(&base)["Labels"], json!(["hello"]));
    assert_eq!(server.get("/tools/labels"), json!(["hello"]));
    let q = |labels: Value, c: &str| json!({"Level": "Instance", "Query": {}, "Labels": labels, "LabelsConstraint": c});
    assert_eq!(
        ids(&server, q(json!(["hello"]), "All")),
        std::slice::from_ref(&instance)
    );
    assert_eq!(
        ids(&server, q(json!(["hello", "x"]), "Any")),
        std::slice::from_ref(&instance)
    );
    assert!(ids(&server, q(json!(["hello", "x"]), "All")).is_empty());
    assert_eq!(ids(&server, q(json!(["hello"]), "None")).len(), 3);
    assert_eq!(ids(&server, q(json!([]), "None")).len(), 3);
    assert_eq!(
        server
            .send("DELETE", &format!("{base}/labels/hello"), b"", &[])
            .0,
        200
    );
    assert_eq!(server.get("/tools/labels"), json!([]));
}

#[test]
fn bad_queries_are_400() {
    let (server, _) = loaded();
    for body in [
        json!({"Level": "Nope", "Query": {}}),
        json!({"Query": {}}),
        json!({"Level": "Study", "Query": {"NotATag": "x"}}),
        json!({"Level": "Study", "Query": {"PatientID": 3}}),
        json!({"Level": "Study", "Query": [], }),
        json!({"Level": "Study", "Query": {}, "Limit": -1}),
        json!({"Level": "Study", "Query": {}, "LabelsConstraint": "Some"}),
        json!({"Level": "Study", "Query": {}, "OrderBy": [{"Type": "Nope", "Key": "PatientID"}]}),
        json!({"Level": "Study", "CaseSensitive": true, "Query": {}, "Since": 1}),
        json!({"Level": "Study", "Query": {"StudyDate": "2020-2021-2022"}}),
    ] {
        let (status, v) = find(&server, body.clone());
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(v["HttpStatus"], 400, "{body}: {v}");
    }
    assert_eq!(server.post("/tools/find", b"{not json").0, 400);
    // The server still answers.
    assert_eq!(
        ids(&server, json!({"Level": "Patient", "Query": {}})).len(),
        3
    );
}

#[test]
fn modified_instance_found_by_bracketed_name() {
    let (server, f) = loaded();
    let instance = f[2].ids()[3].clone();
    let path = format!("/instances/{instance}/modify");
    let body = json!({"Replace": {"PatientName": "MyName[*]", "PatientID": "brackets"}});
    assert_eq!(
        server.post(&path, body.to_string().as_bytes()).0,
        400,
        "Force is needed for PatientID"
    );
    let mut forced = body.clone();
    forced["Force"] = json!(true);
    let resp = ureq::post(&server.url(&path))
        .send_bytes(forced.to_string().as_bytes())
        .unwrap();
    assert_eq!(resp.content_type(), "application/dicom");
    let mut file = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut file).unwrap();
    let (status, stored) = server.post("/instances", &file);
    assert_eq!(status, 200, "{stored}");
    assert_ne!(stored["ID"], instance.as_str(), "a new SOPInstanceUID");
    let q = |level: &str, name: &str| json!({"Level": level, "Query": {"PatientName": name}});
    assert_eq!(ids(&server, q("Series", "MyName[*]")).len(), 1);
    assert_eq!(ids(&server, q("Study", "myname*")).len(), 1);
    let tags = server.get(&format!(
        "/instances/{}/simplified-tags",
        stored["ID"].as_str().unwrap()
    ));
    assert_eq!(tags["PatientID"], "brackets");
    assert_eq!(tags["StudyDescription"], "Chest CT");
}

/// `Expand` answers exactly what `GET /{level}/{id}` answers for each resource, in every tag
/// format, labels and metadata included (the find serializes its own, without a JSON tree).
#[test]
fn expand_matches_each_resource_in_every_format() {
    let (server, f) = loaded();
    let study = f[0].ids()[1].clone();
    assert_eq!(
        server.status("PUT", &format!("/studies/{study}/labels/urgent")),
        200
    );
    for (level, plural) in [
        ("Patient", "patients"),
        ("Study", "studies"),
        ("Series", "series"),
        ("Instance", "instances"),
    ] {
        for (flag, query) in [("Simplify", ""), ("Short", "?short"), ("Full", "?full")] {
            let body = json!({"Level": level, "Query": {}, "Expand": true, flag: true});
            let (status, found) = find(&server, body);
            assert_eq!(status, 200);
            let found = found.as_array().unwrap();
            assert!(!found.is_empty());
            for item in found {
                let id = item["ID"].as_str().unwrap();
                let one = server.get(&format!("/{plural}/{id}{query}"));
                assert_eq!(item, &one, "{level} {flag}");
            }
            // The lists with `expand` answer the same, in creation order.
            let sep = if query.is_empty() { "?" } else { "&" };
            let listed = server.get(&format!("/{plural}{query}{sep}expand"));
            let mut listed = listed.as_array().unwrap().clone();
            let mut found = found.clone();
            let by_id = |v: &Value| v["ID"].as_str().unwrap().to_string();
            listed.sort_by_key(by_id);
            found.sort_by_key(by_id);
            assert_eq!(listed, found, "/{plural}{query}{sep}expand");
        }
    }
    // The one labelled study shows its label.
    let body = json!({"Level": "Study", "Query": {}, "Expand": true, "Labels": ["urgent"]});
    let (_, found) = find(&server, body);
    assert_eq!(found[0]["Labels"], json!(["urgent"]));
    assert_eq!(found[0]["ID"], study);
}

/// A large Expand is read and expanded a page (500) at a time: the whole answer equals its
/// pieces asked one page or less at a time, in order.
#[test]
fn expand_of_many_pages_equals_its_pieces() {
    use std::io::Write;
    let server = Server::start(json!({}));
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for n in 1..=1100 {
        zip.start_file(format!("{n}.dcm"), zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(&Fixture::new("pages", n).dicom()).unwrap();
    }
    let body = zip.finish().unwrap().into_inner();
    assert_eq!(server.post("/instances", &body).0, 200);
    let whole = server.get("/instances?expand");
    assert_eq!(whole.as_array().unwrap().len(), 1100);
    let mut pieces = Vec::new();
    for since in [0, 400, 800] {
        let part = server.get(&format!("/instances?expand&since={since}&limit=400"));
        pieces.extend(part.as_array().unwrap().clone());
    }
    assert_eq!(whole, Value::Array(pieces));
    let (status, found) = find(
        &server,
        json!({"Level": "Instance", "Query": {}, "Expand": true}),
    );
    assert_eq!(status, 200);
    assert_eq!(found, whole);
}
