//! Durability: every instance acknowledged before a `kill -9` is there after a restart, and
//! the index matches the files.

use std::sync::{Arc, Mutex};

use integration_tests::{Fixture, Server};
use serde_json::json;

#[test]
fn kill9_during_concurrent_ingest_loses_no_acknowledged_instance() {
    let server = Server::start(json!({}));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let url = server.url("/instances");
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (acks, url) = (acknowledged.clone(), url.clone());
            std::thread::spawn(move || {
                for n in 1..=10_000u32 {
                    let f = Fixture::new(&format!("crash-{w}"), n);
                    match ureq::post(&url).send_bytes(&f.dicom()) {
                        Ok(r) if r.status() == 200 => acks.lock().unwrap().push(f),
                        _ => return,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let dir = server.kill9();
    for w in workers {
        w.join().unwrap();
    }
    let acked = acknowledged.lock().unwrap().clone();
    assert!(
        acked.len() > 10,
        "too few instances were stored before the kill: {}",
        acked.len()
    );

    let server = Server::start_in(dir, json!({}));
    let stats = server.get("/statistics");
    let count = stats["CountInstances"].as_u64().unwrap() as usize;
    assert!(
        count >= acked.len(),
        "{count} instances after restart, {} acknowledged",
        acked.len()
    );
    for f in &acked {
        let id = &f.ids()[3];
        assert_eq!(
            server.status("GET", &format!("/instances/{id}/file")),
            200,
            "acknowledged instance {id} is missing after kill -9"
        );
        assert_eq!(
            server.get(&format!("/instances/{id}/simplified-tags"))["SOPInstanceUID"],
            f.sop_uid
        );
    }
    // The server still takes new instances after the restart.
    assert_eq!(
        server
            .post("/instances", &Fixture::new("after-crash", 1).dicom())
            .0,
        200
    );
}

#[test]
fn sigterm_stops_quickly_and_data_survives() {
    let server = Server::start(json!({}));
    let f = Fixture::new("sigterm", 1);
    assert_eq!(server.post("/instances", &f.dicom()).0, 200);
    let (took, dir) = server.terminate();
    assert!(took.as_millis() < 1000, "SIGTERM took {took:?}");
    let server = Server::start_in(dir, json!({}));
    assert_eq!(
        server.get(&format!("/instances/{}", f.ids()[3]))["ID"],
        f.ids()[3]
    );
}
