//! Archives and the job queue: ZIPs streamed or built by a job, `/jobs` states and outputs,
//! jobs kept across a restart, bad input.

use std::io::Read;
use std::time::Duration;

use integration_tests::{wait_until, Fixture, Server};
use serde_json::{json, Value};

fn bytes(server: &Server, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>, Option<String>) {
    let resp = match ureq::request(method, &server.url(path)).send_bytes(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{path}: {e}"),
    };
    let status = resp.status();
    let disposition = resp.header("content-disposition").map(str::to_string);
    let mut out = Vec::new();
    resp.into_reader().read_to_end(&mut out).unwrap();
    (status, out, disposition)
}

/// The entries of a ZIP, name → content, in order.
fn unzip(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(data)).expect("a valid ZIP");
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut content = Vec::new();
            f.read_to_end(&mut content).unwrap();
            (f.name().unwrap().to_string(), content)
        })
        .collect()
}

fn wait_job(server: &Server, id: &str) -> Value {
    let mut info = Value::Null;
    assert!(wait_until(Duration::from_secs(20), || {
        info = server.get(&format!("/jobs/{id}"));
        matches!(info["State"].as_str(), Some("Success" | "Failure"))
    }));
    info
}

#[test]
fn archives_streamed_and_as_jobs() {
    let server = Server::start(json!({}));
    let (a1, a2, b) = (
        Fixture::new("arch", 1),
        Fixture::new("arch", 2),
        Fixture::new("other", 7),
    );
    for f in [&a1, &a2, &b] {
        assert_eq!(server.post("/instances", &f.dicom()).0, 200);
    }
    let [patient, study, series, _] = a1.ids();

    // Streamed: Orthanc mainline's layout, each file byte for byte.
    let (status, zip, disposition) = bytes(
        &server,
        "GET",
        &format!("/studies/{study}/archive?filename=\"my\".zip"),
        b"",
    );
    assert_eq!(status, 200);
    assert_eq!(disposition.as_deref(), Some("filename=\"my.zip\""));
    let entries = unzip(&zip);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "PAT-arch - DOE^arch/ACC1 - Chest CT/CT/CT000001.dcm",
            "PAT-arch - DOE^arch/ACC1 - Chest CT/CT/CT000002.dcm"
        ]
    );
    assert_eq!(entries[0].1, a1.dicom());
    assert_eq!(entries[1].1, a2.dicom());
    for path in [
        format!("/patients/{patient}/archive"),
        format!("/series/{series}/archive"),
    ] {
        assert_eq!(
            unzip(&bytes(&server, "GET", &path, b"").1).len(),
            2,
            "{path}"
        );
    }
    // Several resources, duplicates counted once; as a list or with options; GET form.
    let both = json!([patient, study, b.ids()[3]]).to_string();
    let (status, zip, _) = bytes(&server, "POST", "/tools/create-archive", both.as_bytes());
    assert_eq!(status, 200);
    assert_eq!(unzip(&zip).len(), 3);
    let get = format!("/tools/create-archive?resources={patient},{}", b.ids()[1]);
    assert_eq!(unzip(&bytes(&server, "GET", &get, b"").1).len(), 3);
    assert_eq!(
        unzip(&bytes(&server, "POST", "/tools/create-archive", b"[]").1).len(),
        0
    );

    // As a job: /jobs lists it, its output is the same archive until deleted.
    let body = json!({"Resources": [study], "Asynchronous": true, "UserData": {"who": "me"},
                      "Priority": 3, "Filename": "study.zip"});
    let (status, answer) = server.post("/tools/create-archive", body.to_string().as_bytes());
    assert_eq!(status, 200);
    let id = answer["ID"].as_str().unwrap().to_string();
    assert_eq!(answer["Path"], format!("/jobs/{id}"));
    assert!(server.get("/jobs").as_array().unwrap().contains(&json!(id)));
    let info = wait_job(&server, &id);
    assert_eq!(info["State"], "Success", "{info}");
    assert_eq!(info["Type"], "Archive");
    assert_eq!(info["Progress"], 100);
    assert_eq!(info["Priority"], 3);
    assert_eq!(info["ErrorCode"], 0);
    assert_eq!(info["ErrorDescription"], "Success");
    assert_eq!(info["UserData"], json!({"who": "me"}));
    assert_eq!(info["Content"]["InstancesCount"], 2);
    assert_eq!(info["Content"]["UncompressedSizeMB"], 0);
    assert!(info["CompletionTime"].is_string() && info["CreationTime"].is_string());
    let (status, zip, disposition) = bytes(&server, "GET", &format!("/jobs/{id}/archive"), b"");
    assert_eq!(status, 200);
    assert_eq!(disposition.as_deref(), Some("filename=\"study.zip\""));
    assert_eq!(unzip(&zip).len(), 2);
    assert_eq!(info["Content"]["ArchiveSize"], zip.len().to_string());
    let expanded = server.get("/jobs?expand");
    assert_eq!(expanded[0]["ID"], id);
    assert_eq!(server.status("DELETE", &format!("/jobs/{id}/archive")), 200);
    assert_eq!(server.status("GET", &format!("/jobs/{id}/archive")), 404);
    assert_eq!(
        server.status("POST", &format!("/jobs/{id}/resubmit")),
        400,
        "not failed"
    );

    // MediaArchiveSize (1): a second output replaces the first.
    let async_body = json!({"Synchronous": false}).to_string();
    let (_, j1) = server.post(&format!("/series/{series}/archive"), async_body.as_bytes());
    let j1 = j1["ID"].as_str().unwrap().to_string();
    assert_eq!(wait_job(&server, &j1)["State"], "Success");
    let (_, j2) = server.post(
        &format!("/patients/{}/archive", b.ids()[0]),
        async_body.as_bytes(),
    );
    let j2 = j2["ID"].as_str().unwrap().to_string();
    assert_eq!(wait_job(&server, &j2)["State"], "Success");
    assert_eq!(server.status("GET", &format!("/jobs/{j1}/archive")), 404);
    assert_eq!(
        unzip(&bytes(&server, "GET", &format!("/jobs/{j2}/archive"), b"").1).len(),
        1
    );

    // Finished jobs stay in the history across a restart; DELETE removes one.
    let (_, dir) = server.terminate();
    let server = Server::start_in(dir, json!({}));
    assert_eq!(server.get(&format!("/jobs/{id}"))["State"], "Success");
    assert_eq!(server.status("DELETE", &format!("/jobs/{id}")), 200);
    assert_eq!(server.status("GET", &format!("/jobs/{id}")), 404);
    assert!(!server.get("/jobs").as_array().unwrap().contains(&json!(id)));
}

#[test]
fn archive_bad_input() {
    let server = Server::start(json!({}));
    let f = Fixture::new("bad", 1);
    server.post("/instances", &f.dicom());
    assert_eq!(server.status("GET", "/studies/nope/archive"), 404);
    assert_eq!(
        server.status("GET", &format!("/studies/{}/archive", f.ids()[2])),
        404,
        "a series id"
    );
    let (status, _, _) = bytes(&server, "POST", "/tools/create-archive", b"[\"nope\"]");
    assert_eq!(status, 404);
    let (status, _, _) = bytes(
        &server,
        "POST",
        "/tools/create-archive",
        b"{\"Resources\": 3}",
    );
    assert_eq!(status, 400);
    let (status, _, _) = bytes(&server, "POST", "/tools/create-archive", b"{not json");
    assert_eq!(status, 400);
    let async_unknown = json!({"Resources": ["nope"], "Asynchronous": true}).to_string();
    let (status, _, _) = bytes(
        &server,
        "POST",
        "/tools/create-archive",
        async_unknown.as_bytes(),
    );
    assert_eq!(status, 404);
    let study = &f.ids()[1];
    assert_eq!(
        server.status("GET", &format!("/studies/{study}/archive?transcode=nope")),
        400
    );
    assert_eq!(server.status("GET", "/jobs/nope"), 404);
    assert_eq!(server.status("POST", "/jobs/nope/cancel"), 404);
    assert_eq!(server.status("PUT", "/jobs"), 405);
    // The server is still there.
    assert_eq!(server.status("GET", "/system"), 200);
}

/// Runs a checking tool on a file; `None` when it is not installed (CI installs it).
fn tool(name: &str, args: &[&str], file: &std::path::Path) -> Option<String> {
    let out = std::process::Command::new(name)
        .args(args)
        .arg(file)
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn media_with_a_valid_dicomdir() {
    let server = Server::start(json!({}));
    let (a, b, c) = (
        Fixture::new("media", 1),
        Fixture::new("media", 2),
        Fixture::new("media2", 1),
    );
    for f in [&a, &b, &c] {
        server.post("/instances", &f.dicom());
    }
    let [patient, ..] = a.ids();
    let (status, zip, _) = bytes(&server, "GET", &format!("/patients/{patient}/media"), b"");
    assert_eq!(status, 200);
    let entries = unzip(&zip);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["IMAGES/IM0", "IMAGES/IM1", "DICOMDIR"]);
    assert_eq!(entries[0].1, a.dicom());
    let list = json!([a.ids()[3], c.ids()[1]]).to_string();
    let (_, zip, _) = bytes(
        &server,
        "POST",
        "/tools/create-media-extended",
        list.as_bytes(),
    );
    let entries = unzip(&zip);
    assert_eq!(entries.len(), 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("DICOMDIR");
    std::fs::write(&path, &entries[2].1).unwrap();

    // The records and their offsets, as DCMTK reads them.
    let Some(dump) = tool("dcmdump", &[], &path) else {
        eprintln!("DCMTK is not installed: DICOMDIR checks skipped (CI installs it)");
        return;
    };
    for kind in ["PATIENT", "STUDY", "SERIES", "IMAGE"] {
        assert_eq!(
            dump.matches(&format!("CS [{kind}]")).count(),
            2,
            "{kind} records:\n{dump}"
        );
    }
    assert!(
        dump.contains("refFileID=\"IMAGES\\IM0\"") && dump.contains("refFileID=\"IMAGES\\IM1\"")
    );
    assert!(
        dump.contains(&format!("[{}]", a.sop_uid)) && dump.contains(&format!("[{}]", c.sop_uid))
    );
    let offsets: Vec<u64> = dump
        .split("offset=$")
        .skip(1)
        .filter_map(|s| s.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(offsets.len(), 8);
    for line in dump.lines().filter(|l| l.contains(" up ")) {
        let v: u64 = line
            .split(" up ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            v == 0 || offsets.contains(&v),
            "{line} points to no record:\n{dump}"
        );
    }
    if let Some(check) = tool("dciodvfy", &[], &path) {
        assert!(check.contains("BasicDirectory"), "{check}");
        // The fixture has no StudyID nor SeriesNumber: like Orthanc, the records leave them out.
        let unexpected = check.lines().filter(|l| {
            l.starts_with("Error") && !l.contains("<StudyID>") && !l.contains("<SeriesNumber>")
        });
        assert_eq!(unexpected.count(), 0, "{check}");
    }
}

/// Pause, resume, cancel and resubmit, with one job slot held by a peer store whose peer
/// accepts the connection and never answers.
#[test]
fn job_controls() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let server = Server::start(json!({
        "ConcurrentJobs": 1,
        "OrthancPeers": { "silent": { "Url": format!("http://127.0.0.1:{port}/"), "Timeout": 3 } },
    }));
    let f = Fixture::new("controls", 1);
    server.post("/instances", &f.dicom());
    let state = |id: &str| {
        server.get(&format!("/jobs/{id}"))["State"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let submit = |path: &str, body: Value| {
        let (status, v) = server.post(path, body.to_string().as_bytes());
        assert_eq!(status, 200, "{v}");
        v["ID"].as_str().unwrap().to_string()
    };
    let blocker = submit(
        "/peers/silent/store",
        json!({"Resources": [f.ids()[3]], "Asynchronous": true}),
    );
    assert!(wait_until(Duration::from_secs(5), || state(&blocker) == "Running"));
    let queued = submit(
        "/tools/create-archive",
        json!({"Resources": [f.ids()[1]], "Asynchronous": true}),
    );
    assert_eq!(state(&queued), "Pending", "one slot, held by the blocker");

    assert_eq!(server.status("POST", &format!("/jobs/{queued}/pause")), 200);
    assert_eq!(state(&queued), "Paused");
    assert_eq!(
        server.status("POST", &format!("/jobs/{queued}/resume")),
        200
    );
    assert_eq!(state(&queued), "Pending");
    assert_eq!(
        server.status("DELETE", &format!("/jobs/{queued}")),
        400,
        "not finished"
    );
    assert_eq!(
        server.status("POST", &format!("/jobs/{queued}/cancel")),
        200
    );
    let info = server.get(&format!("/jobs/{queued}"));
    assert_eq!(
        (info["State"].as_str(), &info["ErrorCode"]),
        (Some("Failure"), &json!(37))
    );
    assert_eq!(info["ErrorDescription"], "Canceled job");
    assert_eq!(
        server.status("POST", &format!("/jobs/{queued}/resubmit")),
        200
    );
    assert_eq!(state(&queued), "Pending");

    // The blocker fails at its peer's timeout, then the resubmitted job runs.
    assert_eq!(wait_job(&server, &blocker)["State"], "Failure");
    assert_eq!(wait_job(&server, &queued)["State"], "Success");
    assert_eq!(server.get(&format!("/jobs/{queued}"))["ErrorCode"], 0);
}
