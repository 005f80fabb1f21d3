//! The DICOM network: C-ECHO / C-STORE between two pacsnode servers through REST, and DCMTK's
//! storescu / echoscu against the SCP (DCMTK is installed by `.ci/run`).

use std::process::Command;

use integration_tests::{Fixture, Server};
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
    let exports = a.get("/exports");
    assert_eq!(exports["Exports"][0]["ID"], *id);
    assert_eq!(exports["Exports"][0]["RemoteModality"], "b");
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
    server.send(
        "PUT",
        "/tools/accepted-transfer-syntaxes",
        br#"["1.2.840.10008.1.*"]"#,
        &[],
    );
    let ok = dcmtk("storescu")
        .unwrap()
        .args(["-R", "-aec", "ORTHANC", "127.0.0.1", &port])
        .arg(&path)
        .status()
        .unwrap();
    assert!(ok.success());
    assert_eq!(server.get("/statistics")["CountInstances"], 1);
}
