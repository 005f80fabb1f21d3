//! HTTP conventions: Orthanc errors, 404/405, method override, XML, authentication, and
//! hostile clients (request smuggling, slow clients).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use integration_tests::{Fixture, Server};
use serde_json::json;

#[test]
fn errors_have_orthanc_bodies_and_statuses() {
    let server = Server::start(json!({}));
    let (status, err) = server.send("GET", "/nope/nope.html", b"", &[]);
    assert_eq!(status, 404);
    assert_eq!(err["OrthancStatus"], 17);
    assert_eq!(err["Message"], "Unknown resource");
    assert_eq!(err["Method"], "GET");
    assert_eq!(err["Uri"], "/nope/nope.html");
    let resp = ureq::put(&server.url("/system"))
        .send_string("x")
        .unwrap_err();
    let ureq::Error::Status(405, resp) = resp else {
        panic!("expected 405")
    };
    assert_eq!(resp.header("allow"), Some("GET"));
    assert_eq!(server.status("GET", "/patients/unknown"), 404);
    let (status, err) = server.send("POST", "/tools/bulk-delete", b"{not json", &[]);
    assert_eq!((status, err["HttpStatus"].as_u64()), (400, Some(400)));
    let nested = "[".repeat(100_000);
    assert_eq!(
        server
            .send("POST", "/tools/bulk-delete", nested.as_bytes(), &[])
            .0,
        400
    );
    let (status, _) = server.send("GET", "/patients?since=1", b"", &[]);
    assert_eq!(status, 400);
}

#[test]
fn method_override_xml_and_protection() {
    let server = Server::start(json!({}));
    let f = Fixture::new("plumbing", 1);
    server.post("/instances", &f.dicom());
    let patient = &f.ids()[0];
    let path = format!("/patients/{patient}/protected");
    assert_eq!(
        server
            .send("GET", &format!("{path}?_method=PUT"), b"1", &[])
            .0,
        200
    );
    assert_eq!(server.send("GET", &path, b"", &[]).1, json!(1));
    assert_eq!(
        server
            .send("POST", &path, b"0", &[("X-HTTP-Method-Override", "PUT")])
            .0,
        200
    );
    assert_eq!(server.send("GET", &path, b"", &[]).1, json!(0));
    let (_, xml) = server.send("GET", "/tools", b"", &[("Accept", "application/xml")]);
    let xml = xml.as_str().unwrap().to_string();
    assert!(
        xml.starts_with("<?xml") && xml.contains("<item>dicom-conformance</item>"),
        "{xml}"
    );
    let deleted = server.send(
        "POST",
        &format!("/instances/{}", f.ids()[3]),
        b"",
        &[("X-HTTP-Method-Override", "DELETE")],
    );
    assert_eq!(deleted.1, json!({"RemainingAncestor": null}));
    assert_eq!(server.get("/patients"), json!([]));
}

#[test]
fn basic_authentication() {
    let server = Server::start(
        json!({"AuthenticationEnabled": true, "RegisteredUsers": {"alice": "secret"}}),
    );
    let resp = ureq::get(&server.url("/system")).call().unwrap_err();
    let ureq::Error::Status(401, resp) = resp else {
        panic!("expected 401")
    };
    assert!(resp
        .header("www-authenticate")
        .unwrap()
        .starts_with("Basic"));
    // "alice:secret" in base64
    let ok = ureq::get(&server.url("/system"))
        .set("Authorization", "Basic YWxpY2U6c2VjcmV0")
        .call()
        .unwrap();
    assert_eq!(ok.status(), 200);
}

fn raw(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn conflicting_length_headers_are_refused() {
    let server = Server::start(json!({}));
    let smuggled = b"POST /tools/lookup HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /system HTTP/1.1\r\nHost: x\r\n\r\n";
    let answer = raw(server.port, smuggled);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(
        answer.matches("HTTP/1.1").count(),
        1,
        "the smuggled request was served: {answer}"
    );
    // A declared length far larger than what is sent reserves nothing and times out cleanly.
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.write_all(b"POST /instances HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000000\r\n\r\nabc")
        .unwrap();
    drop(s);
    assert_eq!(server.status("GET", "/system"), 200);
}

#[test]
fn slow_clients_do_not_starve_others() {
    let server = Server::start(json!({}));
    let idle: Vec<TcpStream> = (0..300)
        .filter_map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", server.port)).ok()?;
            s.write_all(b"GET /system HTTP/1.1\r\nHo").ok()?;
            Some(s)
        })
        .collect();
    assert!(idle.len() > 200);
    let start = Instant::now();
    for _ in 0..20 {
        assert_eq!(server.status("GET", "/system"), 200);
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "normal clients were slowed down: {:?}",
        start.elapsed()
    );
}
