//! Configuration: Orthanc's JSON with comments, `${VAR}`, folders, and refused settings.

use std::process::Command;

use integration_tests::binary;

#[test]
fn folder_with_comments_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("db");
    std::fs::write(
        dir.path().join("a.json"),
        format!("{{ // comment\n \"Name\": \"${{PACSNODE_TEST_NAME}}\", /* block */ \"HttpPort\": 0, \"DicomPort\": 0,\n \"StorageDirectory\": \"{0}\", \"IndexDirectory\": \"{0}\" }}", storage.display()),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.json"),
        "{ \"StableAge\": 5, \"SomethingUnknown\": 1 }",
    )
    .unwrap();
    let mut child = Command::new(binary())
        .arg(dir.path())
        .env("PACSNODE_TEST_NAME", "from-env")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    let port: u16 = line.split(' ').find_map(|w| w.parse().ok()).unwrap();
    let system: serde_json::Value = ureq::get(&format!("http://127.0.0.1:{port}/system"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(system["Name"], "from-env");
    assert_eq!(system["Version"], "mainline");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn remote_access_without_users_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.json");
    std::fs::write(
        &cfg,
        format!(
            "{{\"RemoteAccessAllowed\": true, \"HttpPort\": 0, \"StorageDirectory\": \"{}\"}}",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(binary()).arg(&cfg).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn writes_the_default_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("defaults.json");
    let status = Command::new(binary())
        .arg(format!("--config={}", path.display()))
        .status()
        .unwrap();
    assert!(status.success());
    assert!(std::fs::read_to_string(path)
        .unwrap()
        .contains("\"DicomAet\": \"ORTHANC\""));
}
