//! Orthanc peers between two pacsnode servers: store (synchronous, job, compressed), what
//! arrives is byte-identical, store-straight, system, exports, and a peer that is down.

use std::time::Duration;

use integration_tests::{wait_until, Fixture, Server};
use serde_json::{json, Value};

fn file(server: &Server, instance: &str) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(
        &mut ureq::get(&server.url(&format!("/instances/{instance}/file")))
            .call()
            .unwrap()
            .into_reader(),
        &mut out,
    )
    .unwrap();
    out
}

#[test]
fn store_to_a_peer_and_back() {
    let b = Server::start(json!({}));
    let a = Server::start(json!({
        "LogExportedResources": true,
        "OrthancPeers": {
            "b": [format!("http://127.0.0.1:{}/", b.port)],
            // Nothing listens on port 1.
            "down": { "Url": "http://127.0.0.1:1/", "Username": "u", "Password": "secret" },
        }
    }));
    let (f1, f2) = (Fixture::new("peer", 1), Fixture::new("peer", 2));
    for f in [&f1, &f2] {
        a.post("/instances", &f.dicom());
    }
    let [_, study, _, i1] = f1.ids();

    // /system of the peer is b's.
    assert_eq!(
        a.get("/peers/b/system")["HttpPort"],
        b.get("/system")["HttpPort"]
    );

    // Synchronous store of a study (body: the id as text): the answer is the job's content.
    let (status, answer) = a.send("POST", "/peers/b/store", study.as_bytes(), &[]);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["InstancesCount"], 2);
    assert_eq!(answer["FailedInstancesCount"], 0);
    assert_eq!(
        answer["Peer"],
        json!([format!("http://127.0.0.1:{}/", b.port), "", ""])
    );
    assert_eq!(b.get("/instances").as_array().unwrap().len(), 2);
    assert_eq!(file(&b, &i1), file(&a, &i1), "byte-identical");
    // One export per resource asked for, at its level (as Orthanc logs them).
    let exports = a.get("/exports")["Exports"].clone();
    assert_eq!(exports.as_array().unwrap().len(), 1, "{exports}");
    assert_eq!(exports[0]["ResourceType"], "Study");
    assert_eq!(exports[0]["ID"], study.as_str());

    // As a compressed job.
    b.send("DELETE", &format!("/studies/{study}"), b"", &[]);
    let body = json!({"Resources": [i1], "Compress": true, "Asynchronous": true});
    let (_, job) = a.post("/peers/b/store", body.to_string().as_bytes());
    let id = job["ID"].as_str().unwrap().to_string();
    let mut info = Value::Null;
    assert!(wait_until(Duration::from_secs(20), || {
        info = a.get(&format!("/jobs/{id}"));
        info["State"] == "Success"
    }));
    assert_eq!(info["Type"], "OrthancPeerStore");
    assert_eq!(info["Content"]["Compress"], true);
    assert_eq!(file(&b, &i1), f1.dicom());

    // store-straight forwards the body and answers the peer's answer.
    let (status, answer) = a.send("POST", "/peers/b/store-straight", &f2.dicom(), &[]);
    assert_eq!(
        (status, answer["ID"].as_str()),
        (200, Some(f2.ids()[3].as_str()))
    );

    // A peer that is down: a clear error, a failed job whose details say why (no password).
    let (status, err) = a.send("POST", "/peers/down/store", i1.as_bytes(), &[]);
    assert_eq!(status, 500);
    assert!(
        err["Details"].as_str().unwrap().contains("cannot reach"),
        "{err}"
    );
    let body = json!({"Resources": [i1], "Asynchronous": true});
    let (_, job) = a.post("/peers/down/store", body.to_string().as_bytes());
    let id = job["ID"].as_str().unwrap().to_string();
    assert!(wait_until(Duration::from_secs(20), || {
        info = a.get(&format!("/jobs/{id}"));
        info["State"] == "Failure"
    }));
    assert!(info["ErrorDetails"]
        .as_str()
        .unwrap()
        .contains("cannot reach"));
    assert!(!info.to_string().contains("secret"));
    assert_eq!(a.status("POST", &format!("/jobs/{id}/resubmit")), 200);

    // RemoteSelf is shown, the password never.
    let config = json!({"Url": "http://h/", "Username": "u", "Password": "p", "RemoteSelf": "me"});
    assert_eq!(
        a.send("PUT", "/peers/t", config.to_string().as_bytes(), &[])
            .0,
        200
    );
    let shown = a.get("/peers/t/configuration");
    assert_eq!(
        (shown["RemoteSelf"].as_str(), &shown["Password"]),
        (Some("me"), &Value::Null)
    );

    // Bad input.
    for bad in [
        json!(["http://h/", "a"]),
        json!(["http://h/", "a", "b", "c"]),
        json!([]),
    ] {
        assert_eq!(
            a.send("PUT", "/peers/t", bad.to_string().as_bytes(), &[]).0,
            400
        );
    }
    assert_eq!(a.status("POST", "/peers/nope/store"), 404);
    assert_eq!(a.send("POST", "/peers/b/store", b"unknown-id", &[]).0, 404);
    assert_eq!(a.status("GET", "/system"), 200);
}
