//! Server tools: log levels at run time, default encoding, HTTP compression, reset, shutdown.

use std::io::Read;

use integration_tests::{wait_until, Server};
use serde_json::json;

#[test]
fn log_levels_and_default_encoding() {
    let server = Server::start(json!({}));
    assert_eq!(
        server.send("GET", "/tools/log-level", b"", &[]).1,
        json!("default")
    );
    assert_eq!(
        server
            .send("PUT", "/tools/log-level-http", b"verbose", &[])
            .0,
        200
    );
    assert_eq!(
        server.send("GET", "/tools/log-level-http", b"", &[]).1,
        json!("verbose")
    );
    assert_eq!(
        server.send("GET", "/tools/log-level-sqlite", b"", &[]).1,
        json!("default")
    );
    assert_eq!(server.send("PUT", "/tools/log-level", b"nope", &[]).0, 400);
    assert_eq!(server.send("GET", "/tools/log-level-nope", b"", &[]).0, 404);
    assert_eq!(
        server
            .send("PUT", "/tools/default-encoding", b"Utf8", &[])
            .0,
        200
    );
    assert_eq!(
        server.send("GET", "/tools/default-encoding", b"", &[]).1,
        json!("Utf8")
    );
    assert_eq!(
        server
            .send("PUT", "/tools/default-encoding", b"Klingon", &[])
            .0,
        400
    );
}

#[test]
fn gzip_answers_only_when_enabled_and_asked() {
    let server = Server::start(json!({ "HttpCompressionEnabled": true }));
    let resp = ureq::get(&server.url("/tools"))
        .set("Accept-Encoding", "gzip")
        .call()
        .unwrap();
    assert_eq!(resp.header("content-encoding"), Some("gzip"));
    let mut body = Vec::new();
    flate2::read::GzDecoder::new(resp.into_reader())
        .read_to_end(&mut body)
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(list.as_array().unwrap().contains(&json!("find")));
    let plain = ureq::get(&server.url("/tools")).call().unwrap();
    assert_eq!(plain.header("content-encoding"), None);
}

#[test]
fn reset_restarts_and_shutdown_stops() {
    let mut server = Server::start(json!({}));
    assert_eq!(server.send("POST", "/tools/reset", b"", &[]).0, 200);
    // Restarted, not stopped: the process lives on and answers again.
    assert!(wait_until(std::time::Duration::from_secs(10), || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        server.child.try_wait().ok().flatten().is_none()
            && ureq::get(&server.url("/system"))
                .call()
                .is_ok_and(|r| r.status() == 200)
    }));
    // The old HTTP server may still answer for a moment, then none until the new one
    // listens: the shutdown is sent until the restarted server takes it.
    assert!(wait_until(std::time::Duration::from_secs(10), || {
        ureq::post(&server.url("/tools/shutdown"))
            .call()
            .is_ok_and(|r| r.status() == 200)
    }));
    assert!(wait_until(std::time::Duration::from_secs(5), || server
        .child
        .try_wait()
        .ok()
        .flatten()
        .is_some()));
}
