//! The DICOM network: C-ECHO / C-STORE between two pacsnode servers through REST, and DCMTK's
//! storescu / echoscu against the SCP (DCMTK is installed by `.ci/run`).

use std::process::Command;

use std::time::Duration;

use integration_tests::{wait_until, Fixture, Server};
use serde_json::json;

#[test]
fn store_to_another_server_and_log_the_export() {
    let b = Server::start(json!({ "DicomAet": "NODEB" }));
    let a = Server::start(json!({
        "DicomAet": "NODEA",
        "LogExportedResources": true,
        "DicomModalities": { "b": ["NODEB", "127.0.0.1", b.dicom_port] },
    }));
    let f = Fixture::new("dicom-store", 1);
    a.post("/instances", &f.dicom());
    assert_eq!(a.send("POST", "/modalities/b/echo", b"{}", &[]).0, 200);
    let (status, answer) = a.send(
        "POST",
        "/modalities/b/store",
        json!([f.ids()[1]]).to_string().as_bytes(),
        &[],
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["InstancesCount"], 1);
    assert_eq!(answer["FailedInstancesCount"], 0);
    assert_eq!(answer["RemoteAet"], "NODEB");
    let id = &f.ids()[3];
    let meta = b.get(&format!("/instances/{id}/metadata?expand"));
    assert_eq!(meta["Origin"], "DicomProtocol");
    assert_eq!(meta["RemoteAET"], "NODEA");
    assert_eq!(meta["CalledAET"], "NODEB");
    let sent = ureq::get(&b.url(&format!("/instances/{id}/file")))
        .call()
        .unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut sent.into_reader(), &mut bytes).unwrap();
    assert_eq!(
        &bytes[bytes.len() - 32..],
        &f.dicom()[f.dicom().len() - 32..],
        "pixel data differs"
    );
    // One export per resource asked for, at its level.
    let exports = a.get("/exports");
    assert_eq!(
        exports["Exports"].as_array().map(Vec::len),
        Some(1),
        "{exports}"
    );
    assert_eq!(exports["Exports"][0]["ID"], f.ids()[1]);
    assert_eq!(exports["Exports"][0]["ResourceType"], "Study");
    assert_eq!(exports["Exports"][0]["StudyInstanceUID"], f.study_uid);
    assert_eq!(exports["Exports"][0]["RemoteModality"], "b");
    // store-straight answers the identity of what it sent; `?last` is the last export only.
    let g = Fixture::new("dicom-store", 2);
    let (status, answer) = a.send("POST", "/modalities/b/store-straight", &g.dicom(), &[]);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["SOPInstanceUID"], g.sop_uid);
    assert!(answer["SOPClassUID"].is_string(), "{answer}");
    assert_eq!(b.get("/statistics")["CountInstances"], 2);
    let (status, _) = a.send("POST", "/modalities/b/store-straight", b"nope", &[]);
    assert_eq!(status, 400);
    assert_eq!(a.post("/instances", &g.dicom()).0, 200);
    let (status, _) = a.send(
        "POST",
        "/modalities/b/store",
        json!([g.ids()[3]]).to_string().as_bytes(),
        &[],
    );
    assert_eq!(status, 200);
    let last = a.get("/exports?last");
    assert_eq!(last["Exports"].as_array().map(Vec::len), Some(1), "{last}");
    assert_eq!(last["Exports"][0]["ID"], g.ids()[3]);
    // Orthanc's manufacturers only.
    let bad = br#"["X", "127.0.0.1", 104, "InvalidManufacturerName"]"#;
    assert_eq!(a.send("PUT", "/modalities/x", bad, &[]).0, 400);
    let old = br#"["X", "127.0.0.1", 104, "SyngoVia"]"#;
    assert_eq!(a.send("PUT", "/modalities/x", old, &[]).0, 200);
    assert_eq!(
        a.get("/modalities/x/configuration")["Manufacturer"],
        "GenericNoWildcardInDates"
    );
    // An unreachable modality fails with an Orthanc error, and the server goes on.
    a.send(
        "PUT",
        "/modalities/down",
        br#"["NOBODY", "127.0.0.1", 1]"#,
        &[],
    );
    let (status, err) = a.send("POST", "/modalities/down/echo", b"", &[]);
    assert_eq!((status, err["OrthancStatus"].as_i64()), (500, Some(9)));
    assert_eq!(a.status("GET", "/system"), 200);
}

fn dcmtk(tool: &str) -> Option<Command> {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then(|| {
        let mut c = Command::new(tool);
        c.env("TCP_NODELAY", "1");
        c
    })
}

#[test]
fn dcmtk_storescu_and_echoscu() {
    let (Some(mut echo), Some(mut store)) = (dcmtk("echoscu"), dcmtk("storescu")) else {
        eprintln!("DCMTK is not installed: skipped (CI installs it)");
        return;
    };
    let server = Server::start(json!({}));
    let port = server.dicom_port.to_string();
    assert!(echo
        .args(["-aec", "ORTHANC", "127.0.0.1", &port])
        .status()
        .unwrap()
        .success());
    let f = Fixture::new("storescu", 1);
    let path = server.dir.path().join("in.dcm");
    std::fs::write(&path, f.dicom()).unwrap();
    let status = store
        .args(["-aec", "ORTHANC", "-aet", "STORESCU", "127.0.0.1", &port])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    let meta = server.get(&format!("/instances/{}/metadata?expand", f.ids()[3]));
    assert_eq!(meta["RemoteAET"], "STORESCU");
    // A file the server cannot parse is refused, and nothing is stored.
    std::fs::write(&path, b"not dicom at all").unwrap();
    let mut bad = dcmtk("storescu").unwrap();
    let _ = bad
        .args(["-aec", "ORTHANC", "127.0.0.1", &port, "--no-halt"])
        .arg(&path)
        .output();
    assert_eq!(server.get("/statistics")["CountInstances"], 1);
}

#[test]
fn accepted_transfer_syntaxes_apply_to_new_associations() {
    let Some(mut refused) = dcmtk("storescu") else {
        eprintln!("DCMTK is not installed: skipped (CI installs it)");
        return;
    };
    let server = Server::start(json!({}));
    let port = server.dicom_port.to_string();
    let f = Fixture::new("syntaxes", 1);
    let path = server.dir.path().join("explicit.dcm");
    std::fs::write(&path, f.dicom()).unwrap();
    let jpeg = br#"["1.2.840.10008.1.2.4.50"]"#;
    let (status, list) = server.send("PUT", "/tools/accepted-transfer-syntaxes", jpeg, &[]);
    assert_eq!((status, list), (200, json!(["1.2.840.10008.1.2.4.50"])));
    // Only JPEG Baseline is accepted now: an uncompressed file has no presentation context.
    let _ = refused
        .args(["-R", "-aec", "ORTHANC", "127.0.0.1", &port])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(server.get("/statistics")["CountInstances"], 0);
    let (_, all) = server.send(
        "PUT",
        "/tools/accepted-transfer-syntaxes",
        br#"["1.2.840.10008.1.*"]"#,
        &[],
    );
    // Every transfer syntax Orthanc mainline knows (45, retired JPEG processes included).
    assert_eq!(all.as_array().map(Vec::len), Some(45), "{all}");
    let ok = dcmtk("storescu")
        .unwrap()
        .args(["-R", "-aec", "ORTHANC", "127.0.0.1", &port])
        .arg(&path)
        .status()
        .unwrap();
    assert!(ok.success());
    assert_eq!(server.get("/statistics")["CountInstances"], 1);
}

/// The keys of every answer of a `findscu` run (`--extract` writes them as files: dumped
/// back with dcmdump, one map per answer).
fn findscu(port: u16, root: &str, keys: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = dcmtk("findscu").expect("DCMTK");
    cmd.current_dir(dir.path())
        .args([root, "-aec", "ORTHANC", "--extract", "127.0.0.1"])
        .arg(port.to_string());
    for k in keys {
        cmd.args(["-k", k]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let dump = Command::new("dcmdump").arg(f).output().unwrap();
            String::from_utf8_lossy(&dump.stdout).into_owned()
        })
        .collect()
}

#[test]
fn dcmtk_findscu_at_every_level() {
    if dcmtk("findscu").is_none() {
        eprintln!("DCMTK is not installed: skipped (CI installs it)");
        return;
    }
    let server = Server::start(json!({ "DicomAlwaysAllowFind": true }));
    let port = server.dicom_port;
    let (a, b) = (Fixture::new("cfind-a", 1), Fixture::new("cfind-b", 1));
    for f in [&a, &b, &Fixture::new("cfind-b", 2)] {
        assert_eq!(server.post("/instances", &f.dicom()).0, 200);
    }
    // Study root, study level: a PatientName wildcard, case-insensitive as CaseSensitivePN
    // is false; the computed count is answered.
    let answers = findscu(
        port,
        "-S",
        &[
            "QueryRetrieveLevel=STUDY",
            "PatientName=doe^CFIND-B*",
            "StudyInstanceUID",
            "NumberOfStudyRelatedInstances",
        ],
    );
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert!(answers[0].contains(&b.study_uid), "{}", answers[0]);
    let count = answers[0]
        .lines()
        .find(|l| l.contains("NumberOfStudyRelatedInstances"))
        .unwrap_or_default();
    assert!(count.contains("[2]") || count.contains("[2 ]"), "{count}");
    // Every study when no key constrains.
    assert_eq!(
        findscu(
            port,
            "-S",
            &["QueryRetrieveLevel=STUDY", "StudyInstanceUID"]
        )
        .len(),
        2
    );
    // Patient root, patient level, by PatientID.
    let answers = findscu(
        port,
        "-P",
        &[
            "QueryRetrieveLevel=PATIENT",
            &format!("PatientID={}", a.patient_id),
            "PatientName",
        ],
    );
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert!(answers[0].contains(&a.patient_name), "{}", answers[0]);
    // Instance level under a series, and a list of UIDs.
    let answers = findscu(
        port,
        "-S",
        &[
            "QueryRetrieveLevel=IMAGE",
            &format!("SeriesInstanceUID={}", b.series_uid),
            "SOPInstanceUID",
        ],
    );
    assert_eq!(answers.len(), 2, "{answers:?}");
    let list = format!("StudyInstanceUID={}\\{}", a.study_uid, b.study_uid);
    assert_eq!(
        findscu(port, "-S", &["QueryRetrieveLevel=STUDY", &list]).len(),
        2
    );
    // Binary values (Rows, US) are answered; `*` matches only where the tag is set (as
    // `/tools/find`: the fixtures have no PatientSex).
    let answers = findscu(
        port,
        "-S",
        &[
            "QueryRetrieveLevel=IMAGES",
            &format!("SOPInstanceUID={}", a.sop_uid),
            "Rows",
        ],
    );
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert!(answers[0].contains("(0028,0010) US 4 "), "{}", answers[0]);
    assert!(findscu(port, "-S", &["QueryRetrieveLevel=STUDY", "PatientSex=*"]).is_empty());
    // No match; then an unknown level: a failure status, and the server goes on.
    assert!(findscu(
        port,
        "-S",
        &["QueryRetrieveLevel=STUDY", "PatientName=NOBODY"]
    )
    .is_empty());
    let mut bad = dcmtk("findscu").unwrap();
    let out = bad
        .args([
            "-v",
            "-S",
            "-aec",
            "ORTHANC",
            "127.0.0.1",
            &port.to_string(),
        ])
        .args(["-k", "QueryRetrieveLevel=NOPE"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("DataSetDoesNotMatchSOPClass"), "{text}");
    assert_eq!(server.status("GET", "/system"), 200);
}

#[test]
fn dcmtk_movescu_to_a_declared_modality() {
    let Some(mut movescu) = dcmtk("movescu") else {
        eprintln!("DCMTK is not installed: skipped (CI installs it)");
        return;
    };
    let b = Server::start(json!({ "DicomAet": "NODEB" }));
    let a = Server::start(json!({
        "DicomAlwaysAllowMove": true,
        "DicomModalities": {
            "b": { "AET": "NODEB", "Host": "127.0.0.1", "Port": b.dicom_port, "LocalAet": "A-FOR-B" },
        },
    }));
    let (f1, f2) = (Fixture::new("cmove", 1), Fixture::new("cmove", 2));
    for f in [&f1, &f2] {
        assert_eq!(a.post("/instances", &f.dicom()).0, 200);
    }
    let port = a.dicom_port.to_string();
    let out = movescu
        .args([
            "-v", "-S", "-aec", "ORTHANC", "-aet", "MOVER", "-aem", "NODEB",
        ])
        // No QueryRetrieveLevel: the study level, guessed from the AccessionNumber.
        .args(["-k", "AccessionNumber=ACC1"])
        .args(["127.0.0.1", &port])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Received Final Move Response (Success)"),
        "{text}"
    );
    // Both instances arrived at B, sent by the AET B's configuration gives A, and A ran a
    // DicomModalityStore job.
    assert_eq!(b.get("/statistics")["CountInstances"], 2);
    let meta = b.get(&format!("/instances/{}/metadata?expand", f1.ids()[3]));
    assert_eq!(meta["RemoteAET"], "A-FOR-B");
    let jobs = a.get("/jobs?expand");
    let job = &jobs.as_array().unwrap()[0];
    assert_eq!(job["Type"], "DicomModalityStore", "{jobs}");
    assert_eq!(job["State"], "Success", "{jobs}");
    assert_eq!(job["Content"]["InstancesCount"], 2, "{jobs}");
    // An AE title no modality has: refused (A801), nothing sent.
    let out = dcmtk("movescu")
        .unwrap()
        .args(["-v", "-S", "-aec", "ORTHANC", "-aem", "NOWHERE"])
        .args(["-k", "QueryRetrieveLevel=STUDY"])
        .args(["-k", &format!("StudyInstanceUID={}", f1.study_uid)])
        .args(["127.0.0.1", &port])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("MoveDestinationUnknown") || text.contains("a801"),
        "{text}"
    );
    assert_eq!(a.get("/jobs").as_array().unwrap().len(), 1);
    // The REST store as an asynchronous job of the same type.
    let body = json!({ "Resources": [f2.ids()[3]], "Asynchronous": true });
    let (status, job) = a.send(
        "POST",
        "/modalities/b/store",
        body.to_string().as_bytes(),
        &[],
    );
    assert_eq!(status, 200, "{job}");
    let path = format!("/jobs/{}", job["ID"].as_str().unwrap());
    assert!(wait_until(Duration::from_secs(10), || a.get(&path)
        ["State"]
        == "Success"));
    assert_eq!(a.get(&path)["Type"], "DicomModalityStore");
}

#[test]
fn findscu_answers_in_the_default_encoding() {
    if dcmtk("findscu").is_none() {
        eprintln!("DCMTK is not installed: skipped (CI installs it)");
        return;
    }
    let server = Server::start(json!({ "DicomAlwaysAllowFind": true }));
    let f = Fixture::new("cfind-charset", 1);
    assert_eq!(server.post("/instances", &f.dicom()).0, 200);
    let keys = [
        "QueryRetrieveLevel=STUDY",
        "SpecificCharacterSet",
        "PatientName",
    ];
    let answer = &findscu(server.dicom_port, "-S", &keys)[0];
    assert!(answer.contains("[ISO_IR 100]"), "{answer}"); // Latin1, the default
    assert!(answer.contains("DOE^cfind-charset"), "{answer}");
    let (status, _) = server.send("PUT", "/tools/default-encoding", b"Cyrillic", &[]);
    assert_eq!(status, 200);
    let answer = &findscu(server.dicom_port, "-S", &keys)[0];
    assert!(answer.contains("[ISO_IR 144]"), "{answer}");
}

/// `findscu` with a calling AET; true if its C-FIND was answered (findscu exits with 0 even
/// when the association was aborted, so its output tells).
fn findscu_as(port: u16, aet: &str) -> bool {
    let out = dcmtk("findscu")
        .unwrap()
        .args([
            "-S",
            "-aet",
            aet,
            "-aec",
            "ORTHANC",
            "-k",
            "QueryRetrieveLevel=STUDY",
        ])
        .args(["-k", "PatientID", "127.0.0.1", &port.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    out.status.success() && !text.contains("Find Failed") && !text.contains("borted")
}

#[test]
fn access_rules_of_dicom_modalities() {
    if dcmtk("findscu").is_none() {
        eprintln!("DCMTK is not installed: skipped (CI installs it)");
        return;
    }
    // Defaults (Orthanc's): C-FIND only from declared modalities that allow it.
    let server = Server::start(json!({}));
    let port = server.dicom_port;
    assert!(!findscu_as(port, "STRANGER"));
    let declared = json!(["STRANGER", "127.0.0.1", 104]).to_string();
    assert_eq!(
        server
            .send("PUT", "/modalities/s", declared.as_bytes(), &[])
            .0,
        200
    );
    assert!(findscu_as(port, "STRANGER"));
    let no_find = json!({"AET": "STRANGER", "Host": "127.0.0.1", "Port": 104, "AllowFind": false});
    let body = no_find.to_string();
    assert_eq!(
        server.send("PUT", "/modalities/s", body.as_bytes(), &[]).0,
        200
    );
    assert!(!findscu_as(port, "STRANGER"));
    // C-ECHO stays allowed for anyone (DicomAlwaysAllowEcho).
    let echo = |port: u16, aet: &str| {
        dcmtk("echoscu")
            .unwrap()
            .args([
                "-aet",
                aet,
                "-aec",
                "ORTHANC",
                "127.0.0.1",
                &port.to_string(),
            ])
            .status()
            .unwrap()
            .success()
    };
    assert!(echo(port, "ANYONE"));
    // Nothing always allowed: an unknown AET cannot even associate; a declared one can.
    let closed = Server::start(json!({
        "DicomAlwaysAllowEcho": false,
        "DicomAlwaysAllowStore": false,
        "DicomModalities": { "k": ["KNOWN", "127.0.0.1", 104] },
    }));
    assert!(!echo(closed.dicom_port, "ANYONE"));
    assert!(echo(closed.dicom_port, "KNOWN"));
    assert_eq!(closed.status("GET", "/system"), 200);
}
