//! `/tools/execute-script` and the Lua callbacks called on ingest.

use integration_tests::{wait_until, Fixture, Server};
use serde_json::json;

#[test]
fn scripts_keep_state_and_callbacks_are_called() {
    let server = Server::start(json!({ "ExecuteLuaEnabled": true }));
    let (status, out) = server.send(
        "POST",
        "/tools/execute-script",
        b"x = 41\nprint(x + 1, 'a')",
        &[],
    );
    assert_eq!((status, out), (200, json!("42, a\n")));
    let script = br#"
        stored = 0
        function ReceivedInstanceFilter(tags, origin, info)
          return tags['PatientID'] ~= 'PAT-rejected'
        end
        function OnStoredInstance(id, tags, metadata, origin)
          stored = stored + 1
          last = tags['PatientName'] .. '/' .. origin['RequestOrigin']
        end"#;
    assert_eq!(
        server.send("POST", "/tools/execute-script", script, &[]).0,
        200
    );
    let (_, answer) = server.post("/instances", &Fixture::new("rejected", 1).dicom());
    assert_eq!(answer["Status"], "FilteredOut");
    assert_eq!(server.get("/instances"), json!([]));
    server.post("/instances", &Fixture::new("kept", 1).dicom());
    let called = wait_until(std::time::Duration::from_secs(5), || {
        server
            .send("POST", "/tools/execute-script", b"print(stored, last)", &[])
            .1
            == json!("1, DOE^kept/RestApi\n")
    });
    assert!(called, "OnStoredInstance was not called");
    let (status, err) = server.send("POST", "/tools/execute-script", b"this is not lua", &[]);
    assert_eq!((status, err["OrthancStatus"].as_i64()), (500, Some(2031)));
}

#[test]
fn scripts_are_refused_unless_enabled() {
    let server = Server::start(json!({ "ExecuteLuaEnabled": false }));
    assert_eq!(
        server
            .send("POST", "/tools/execute-script", b"print(1)", &[])
            .0,
        403
    );
}
