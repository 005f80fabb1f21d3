//! Query/retrieve as an SCU, from REST: `/modalities/{id}/query`, `/queries/...`,
//! `/modalities/{id}/move`, C-ECHO with `CheckFind` — between two pacsnode servers (A asks,
//! B answers and sends back to A).

use integration_tests::{Fixture, Server};
use serde_json::{json, Value};

/// A and B, each declared in the other's `DicomModalities`; B holds two studies.
fn two_nodes() -> (Server, Server, Fixture, Fixture) {
    // B lets DCMTK's getscu (an AE it does not know) C-GET from it.
    let b = Server::start(json!({ "DicomAet": "NODEB", "DicomAlwaysAllowGet": true }));
    let a = Server::start(json!({
        "DicomAet": "NODEA",
        "DicomModalities": { "b": ["NODEB", "127.0.0.1", b.dicom_port] },
    }));
    let declared = json!(["NODEA", "127.0.0.1", a.dicom_port]).to_string();
    assert_eq!(
        b.send("PUT", "/modalities/a", declared.as_bytes(), &[]).0,
        200
    );
    let (f, g) = (Fixture::new("qr-one", 1), Fixture::new("qr-two", 1));
    assert_eq!(b.post("/instances", &f.dicom()).0, 200);
    assert_eq!(b.post("/instances", &g.dicom()).0, 200);
    (a, b, f, g)
}

fn post(s: &Server, path: &str, body: Value) -> Value {
    let (status, answer) = s.send("POST", path, body.to_string().as_bytes(), &[]);
    assert_eq!(status, 200, "{path}: {answer}");
    answer
}

#[test]
fn query_then_retrieve_one_answer_and_move_by_uids() {
    let (a, _b, f, g) = two_nodes();
    let q = post(
        &a,
        "/modalities/b/query",
        json!({
            "Level": "Study",
            "Query": { "PatientID": "PAT-qr-*", "StudyDescription": "" },
        }),
    );
    let id = q["ID"].as_str().unwrap().to_string();
    assert_eq!(q["Path"], format!("/queries/{id}"));
    assert_eq!(a.get("/queries"), json!([id]));
    assert_eq!(a.get(&format!("/queries/{id}/answers")), json!(["0", "1"]));
    let answers = a.get(&format!("/queries/{id}/answers?expand&simplify"));
    let mut uids: Vec<&str> = answers
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["StudyInstanceUID"].as_str().unwrap())
        .collect();
    uids.sort();
    let mut expected = vec![f.study_uid.as_str(), g.study_uid.as_str()];
    expected.sort();
    assert_eq!(uids, expected);
    assert_eq!(answers[0]["QueryRetrieveLevel"], "STUDY");
    assert_eq!(answers[0]["StudyDescription"], "Chest CT");
    // The answer is kept in the default encoding, whose term replaces the remote's.
    assert_eq!(answers[0]["SpecificCharacterSet"], "ISO_IR 100");
    let full = a.get(&format!("/queries/{id}/answers/0/content"));
    assert_eq!(full["0008,0052"]["Name"], "QueryRetrieveLevel");
    assert_eq!(
        a.get(&format!("/queries/{id}/query?simplify"))["PatientID"],
        "PAT-qr-*"
    );
    assert_eq!(
        a.get(&format!("/queries/{id}/answers/0"))[2],
        "query-series"
    );
    assert_eq!(
        a.status("GET", &format!("/queries/{id}/answers/7/content")),
        400
    );
    assert_eq!(a.status("GET", "/queries/nope/answers"), 404);

    // Retrieve the first answer to A itself (raw body = target AET): a C-MOVE job.
    let first = answers[0]["StudyInstanceUID"].as_str().unwrap().to_string();
    let job = post(
        &a,
        &format!("/queries/{id}/answers/0/retrieve"),
        json!({"TargetAet": "NODEA"}),
    );
    assert_eq!(job["RemoteAet"], "NODEB");
    assert_eq!(job["Query"][0]["0020,000d"], first.as_str());
    let studies = a.get("/studies?expand");
    assert_eq!(studies.as_array().map(Vec::len), Some(1), "{studies}");
    assert_eq!(
        studies[0]["MainDicomTags"]["StudyInstanceUID"],
        first.as_str()
    );

    // A child query below the answer, then `/move` by UIDs for the other study.
    let child = post(
        &a,
        &format!("/queries/{id}/answers/0/query-series"),
        json!({}),
    );
    let series = a.get(&format!(
        "/queries/{}/answers?expand&short",
        child["ID"].as_str().unwrap()
    ));
    assert_eq!(series[0]["0020,000d"], first.as_str());
    let other = if first == f.study_uid { &g } else { &f };
    let moved = post(
        &a,
        "/modalities/b/move",
        json!({
            "Level": "Series",
            "Resources": [{ "StudyInstanceUID": other.study_uid, "SeriesInstanceUID": other.series_uid }],
            "TargetAet": "NODEA",
        }),
    );
    assert_eq!(moved["Query"][0]["0008,0052"], "SERIES");
    assert_eq!(a.get("/statistics")["CountInstances"], 2);

    // Asynchronous: the job is answered at once and succeeds.
    let job = post(
        &a,
        &format!("/queries/{id}/retrieve"),
        json!({"TargetAet": "NODEA", "Asynchronous": true}),
    );
    let path = job["Path"].as_str().unwrap().to_string();
    assert!(integration_tests::wait_until(
        std::time::Duration::from_secs(20),
        || { a.get(&path)["State"] == "Success" }
    ));
    assert_eq!(a.send("DELETE", &format!("/queries/{id}"), b"", &[]).0, 200);
    assert_eq!(a.status("GET", &format!("/queries/{id}"),), 404);
}

#[test]
fn numbers_are_matched_when_the_query_is_not_normalized() {
    let (a, _b, _f, _g) = two_nodes();
    let count = |rows: &str| {
        let q = post(
            &a,
            "/modalities/b/query",
            json!({"Level": "Instance", "Query": {"Rows": rows}, "Normalize": false}),
        );
        let answers = a.get(&format!(
            "/queries/{}/answers?expand&simplify",
            q["ID"].as_str().unwrap()
        ));
        answers.as_array().unwrap().len()
    };
    // Both fixtures have 4 rows.
    assert_eq!((count("4"), count("42"), count("")), (2, 0, 2));
}

#[test]
fn bad_queries_and_moves_fail_cleanly() {
    let (a, _b, _f, _g) = two_nodes();
    let bad = |path: &str, body: &str| a.send("POST", path, body.as_bytes(), &[]).0;
    assert_eq!(bad("/modalities/b/query", "[1]"), 400);
    assert_eq!(bad("/modalities/b/query", r#"{"Level": "Nope"}"#), 400);
    assert_eq!(
        bad(
            "/modalities/b/query",
            r#"{"Level": "Study", "Query": {"PatientID": 3}}"#
        ),
        400
    );
    assert_eq!(
        bad(
            "/modalities/b/query",
            r#"{"Level": "Study", "Query": {"NoSuchTag": ""}}"#
        ),
        400
    );
    // Values a C-FIND cannot carry: a word for a number, a wildcard in a UID.
    for query in [r#"{"Rows": "*"}"#, r#"{"StudyInstanceUID": "1.2.*"}"#] {
        let body = format!(r#"{{"Level": "Instance", "Query": {query}, "Normalize": false}}"#);
        assert_eq!(bad("/modalities/b/query", &body), 400, "{query}");
    }
    assert_eq!(bad("/modalities/nope/query", r#"{"Level": "Study"}"#), 404);
    assert_eq!(bad("/modalities/b/move", r#"{"Level": "Study"}"#), 400);
    // A C-MOVE to an unknown destination fails the job: a network error.
    let (status, err) = a.send(
        "POST",
        "/modalities/b/move",
        br#"{"Level": "Study", "Resources": [{"StudyInstanceUID": "1.2.3"}], "TargetAet": "UNKNOWN"}"#,
        &[],
    );
    assert_eq!(
        (status, err["OrthancStatus"].as_i64()),
        (500, Some(9)),
        "{err}"
    );
    // An unreachable modality: 500 NetworkProtocol, and the server goes on.
    a.send(
        "PUT",
        "/modalities/down",
        br#"["NOBODY", "127.0.0.1", 1]"#,
        &[],
    );
    let (status, err) = a.send(
        "POST",
        "/modalities/down/query",
        br#"{"Level": "Patient"}"#,
        &[],
    );
    assert_eq!((status, err["OrthancStatus"].as_i64()), (500, Some(9)));
    assert_eq!(a.get("/queries"), json!([]));
}

#[test]
fn echo_checks_find_and_accepts_a_description() {
    let (a, b, _f, _g) = two_nodes();
    post(&a, "/modalities/b/echo", json!({ "CheckFind": true }));
    post(
        &a,
        "/tools/dicom-echo",
        json!(["NODEB", "127.0.0.1", b.dicom_port]),
    );
    post(
        &a,
        "/tools/dicom-echo",
        json!({ "AET": "NODEB", "Host": "127.0.0.1", "Port": b.dicom_port, "CheckFind": true }),
    );
    assert_eq!(a.send("POST", "/tools/dicom-echo", b"[1]", &[]).0, 400);
    // CheckFind really runs a C-FIND: B answers C-ECHO from anyone, C-FIND only from the
    // modalities it knows (Orthanc's defaults), so an unknown calling AET fails it.
    let stranger = |check: bool| {
        let body = json!({"AET": "NODEB", "Host": "127.0.0.1", "Port": b.dicom_port,
                          "LocalAet": "STRANGER", "CheckFind": check});
        a.send(
            "POST",
            "/tools/dicom-echo",
            body.to_string().as_bytes(),
            &[],
        )
        .0
    };
    assert_eq!(stranger(false), 200);
    assert_eq!(stranger(true), 500);
}

#[test]
fn c_get_between_two_nodes_and_from_dcmtk_getscu() {
    let (a, b, f, _g) = two_nodes();
    // pacsnode's C-GET SCU against pacsnode's C-GET SCP: what arrives is stored in A.
    let answer = post(
        &a,
        "/modalities/b/get",
        json!({
            "Level": "Study",
            "Resources": [{ "StudyInstanceUID": f.study_uid }],
        }),
    );
    assert_eq!(
        answer["Details"][0]["ReceivedInstancesIds"],
        json!([f.ids()[3]]),
        "{answer}"
    );
    assert_eq!(a.get("/statistics")["CountInstances"], 1);
    let meta = a.get(&format!("/instances/{}/metadata?expand", f.ids()[3]));
    assert_eq!(meta["RemoteAET"], "NODEB");
    // An unknown study: nothing received, success.
    let none = post(
        &a,
        "/modalities/b/get",
        json!({
            "Level": "Study", "Resources": [{ "StudyInstanceUID": "1.2.3.4" }],
        }),
    );
    assert_eq!(none["Details"][0]["ReceivedInstancesIds"], json!([]));
    assert_eq!(
        a.send("POST", "/modalities/b/get", br#"{"Level": "Study"}"#, &[])
            .0,
        400
    );

    // DCMTK's getscu against B.
    let Ok(out_dir) = tempfile::tempdir() else {
        return;
    };
    let run = std::process::Command::new("getscu")
        .args(["-aec", "NODEB", "-aet", "GETTER", "-S"])
        .args(["-k", "QueryRetrieveLevel=STUDY"])
        .args(["-k", &format!("StudyInstanceUID={}", f.study_uid)])
        .args(["--output-directory", out_dir.path().to_str().unwrap()])
        .args(["127.0.0.1", &b.dicom_port.to_string()])
        .output();
    let Ok(out) = run else {
        eprintln!("DCMTK is not installed: getscu part skipped (CI installs it)");
        return;
    };
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{text}");
    let files: Vec<_> = std::fs::read_dir(out_dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1, "{text}");
}

/// Polls a storage commitment report until the remote's answer came.
fn committed(a: &Server, id: &str) -> Value {
    let mut report = Value::Null;
    integration_tests::wait_until(std::time::Duration::from_secs(10), || {
        report = a.get(&format!("/storage-commitment/{id}"));
        report["Status"] != "Pending"
    });
    report
}

#[test]
fn storage_commitment_both_ways() {
    let (a, b, f, _g) = two_nodes();
    let class = "1.2.840.10008.5.1.4.1.1.2";
    // A asks B, which holds f but not "nope": B answers with an event report of its own.
    let asked = post(
        &a,
        "/modalities/b/storage-commitment",
        json!({
            "DicomInstances": [[class, f.sop_uid], {"SOPClassUID": class, "SOPInstanceUID": "1.2.3.nope"}],
        }),
    );
    let id = asked["ID"].as_str().unwrap().to_string();
    assert!(id.starts_with("2.25."), "{asked}");
    let report = committed(&a, &id);
    assert_eq!(report["Status"], "Failure", "{report}");
    assert_eq!(report["RemoteAET"], "NODEB");
    assert_eq!(report["Success"][0]["SOPInstanceUID"], f.sop_uid.as_str());
    assert_eq!(report["Failures"][0]["SOPInstanceUID"], "1.2.3.nope");
    assert_eq!(report["Failures"][0]["FailureReason"], 274);
    assert_eq!(
        a.send(
            "POST",
            &format!("/storage-commitment/{id}/remove"),
            b"",
            &[]
        )
        .0,
        400
    );

    // A store with StorageCommitment: B commits what it received; A may then remove its copy.
    assert_eq!(a.post("/instances", &f.dicom()).0, 200);
    let stored = post(
        &a,
        "/modalities/b/store",
        json!({
            "Resources": [f.ids()[0]], "StorageCommitment": true,
        }),
    );
    let uid = stored["StorageCommitmentTransactionUID"]
        .as_str()
        .unwrap()
        .to_string();
    let report = committed(&a, &uid);
    assert_eq!(report["Status"], "Success", "{report}");
    assert_eq!(report["Success"][0]["SOPClassUID"], class);
    post(&a, &format!("/storage-commitment/{uid}/remove"), json!({}));
    assert_eq!(a.get("/statistics")["CountInstances"], 0);
    assert_eq!(b.get("/statistics")["CountInstances"], 2);
    assert_eq!(a.status("GET", "/storage-commitment/2.25.1"), 404);
    assert_eq!(
        a.send("POST", "/modalities/b/storage-commitment", b"{}", &[])
            .0,
        400
    );
}

#[test]
fn deprecated_find_routes_of_the_seed() {
    let (a, _b, f, _g) = two_nodes();
    let patients = post(
        &a,
        "/modalities/b/find-patient",
        json!({"PatientName": "DOE*", "PatientSex": ""}),
    );
    assert_eq!(patients.as_array().map(Vec::len), Some(2), "{patients}");
    assert_eq!(patients[0]["QueryRetrieveLevel"], "PATIENT");
    let studies = post(
        &a,
        "/modalities/b/find-study",
        json!({"PatientID": f.patient_id}),
    );
    assert_eq!(
        studies[0]["StudyInstanceUID"],
        f.study_uid.as_str(),
        "{studies}"
    );
    assert_eq!(studies[0]["StudyDescription"], "Chest CT");
    let series = post(
        &a,
        "/modalities/b/find-series",
        json!({
            "PatientID": f.patient_id, "StudyInstanceUID": f.study_uid,
        }),
    );
    assert_eq!(
        series[0]["SeriesInstanceUID"],
        f.series_uid.as_str(),
        "{series}"
    );
    assert_eq!(series[0]["Modality"], "CT");
    let instances = post(
        &a,
        "/modalities/b/find-instance",
        json!({
            "PatientID": f.patient_id, "StudyInstanceUID": f.study_uid, "SeriesInstanceUID": f.series_uid,
        }),
    );
    assert_eq!(
        instances[0]["SOPInstanceUID"],
        f.sop_uid.as_str(),
        "{instances}"
    );
    // As Orthanc: a study query needs a PatientID or an AccessionNumber.
    assert_eq!(
        a.send("POST", "/modalities/b/find-study", b"{}", &[]).0,
        400
    );
    let all = post(&a, "/modalities/b/find", json!({"PatientID": f.patient_id}));
    assert_eq!(
        all[0]["Studies"][0]["Series"][0]["SeriesInstanceUID"],
        f.series_uid.as_str(),
        "{all}"
    );
}

#[test]
fn find_worklist_against_dcmtk_wlmscpfs() {
    // A worklist SCP of DCMTK, serving one worklist made from a text dump.
    let dir = tempfile::tempdir().unwrap();
    let ae_dir = dir.path().join("WLM");
    std::fs::create_dir_all(&ae_dir).unwrap();
    std::fs::write(ae_dir.join("lockfile"), b"").unwrap();
    let dump = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/worklist.txt");
    let made = std::process::Command::new("dump2dcm")
        .arg(dump)
        .arg(ae_dir.join("one.wl"))
        .output();
    if !made.is_ok_and(|o| o.status.success()) {
        eprintln!("DCMTK is not installed: skipped (CI installs it)");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut scp = std::process::Command::new("wlmscpfs")
        .args(["-dfp", dir.path().to_str().unwrap(), &port.to_string()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let a = Server::start(json!({ "DicomModalities": { "wl": ["WLM", "127.0.0.1", port] } }));
    let mut answers = Value::Null;
    let query = json!({"Query": {
        "PatientID": "", "PatientName": "",
        "ScheduledProcedureStepSequence": [{"Modality": "MR", "ScheduledStationAETitle": ""}],
    }});
    integration_tests::wait_until(std::time::Duration::from_secs(10), || {
        let (status, v) = a.send(
            "POST",
            "/modalities/wl/find-worklist",
            query.to_string().as_bytes(),
            &[],
        );
        answers = v;
        status == 200
    });
    assert_eq!(answers[0]["PatientID"], "WL1", "{answers}");
    let step = &answers[0]["ScheduledProcedureStepSequence"][0];
    assert_eq!(step["ScheduledStationAETitle"], "SCANNER", "{answers}");
    // The older form (the body is the query), and a query that matches nothing.
    let old = post(
        &a,
        "/modalities/wl/find-worklist",
        json!({"PatientName": "DOE*", "PatientID": null}),
    );
    assert_eq!(old[0]["PatientName"], "DOE^WORK", "{old}");
    let none = post(
        &a,
        "/modalities/wl/find-worklist",
        json!({"Query": {"PatientID": "NOPE"}}),
    );
    assert_eq!(none, json!([]));
    let bad = br#"{"Query": {"NoSuchTag": ""}}"#;
    assert_eq!(
        a.send("POST", "/modalities/wl/find-worklist", bad, &[]).0,
        400
    );
    let _ = scp.kill();
    let _ = scp.wait();
}
