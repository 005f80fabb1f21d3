//! HTTPS: a server with `SslEnabled`, and peers reached over HTTPS (`HttpsVerifyPeers`,
//! `HttpsCACertificates`). The certificate is made by openssl for 127.0.0.1.

use std::process::Command;

use integration_tests::{Fixture, Server};
use serde_json::{json, Value};

/// A self-signed certificate for 127.0.0.1 and its key, in one PEM file (Orthanc's form).
fn certificate(dir: &std::path::Path) -> std::path::PathBuf {
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        ])
        .arg("/CN=127.0.0.1")
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is needed")
        .status
        .success();
    assert!(ok, "openssl could not make a certificate");
    let both = dir.join("both.pem");
    let mut pem = std::fs::read(&cert).unwrap();
    pem.extend(std::fs::read(&key).unwrap());
    std::fs::write(&both, pem).unwrap();
    both
}

/// `GET` over HTTPS, trusting the certificate in `pem` only.
fn https_get(url: &str, pem: &std::path::Path) -> Value {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let agent = ureq::AgentBuilder::new()
        .tls_config(std::sync::Arc::new(config))
        .build();
    agent.get(url).call().unwrap().into_json().unwrap()
}

fn store(a: &Server, peer: &str, instance: &str) -> (u16, Value) {
    let body = json!({ "Resources": [instance] });
    match ureq::post(&a.url(&format!("/peers/{peer}/store"))).send_json(body) {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn peers_over_https() {
    let certs = tempfile::tempdir().unwrap();
    let pem = certificate(certs.path());
    let b = Server::start(json!({ "SslEnabled": true, "SslCertificate": pem }));
    let https = format!("https://127.0.0.1:{}/", b.port);
    let f = Fixture::new("https", 1);
    let id = &f.ids()[3];

    // The certificate is checked against the authorities given.
    let trusting = Server::start(json!({
        "HttpsCACertificates": pem,
        "OrthancPeers": { "b": [https.clone()] }
    }));
    assert_eq!(trusting.post("/instances", &f.dicom()).0, 200);
    let (status, answer) = store(&trusting, "b", id);
    assert_eq!(status, 200, "{answer}");
    let system = trusting.get("/peers/b/system");
    assert!(system["ApiVersion"].is_number(), "{system}");

    // Unknown authority: refused, with the reason.
    let strict = Server::start(json!({ "OrthancPeers": { "b": [https.clone()] } }));
    assert_eq!(strict.post("/instances", &f.dicom()).0, 200);
    let (status, error) = store(&strict, "b", id);
    assert_eq!(status, 500, "{error}");
    let details = error.to_string().to_lowercase();
    assert!(details.contains("certificate"), "{error}");

    // HttpsVerifyPeers false: accepted. What arrives is what was sent.
    let lax = Server::start(json!({
        "HttpsVerifyPeers": false,
        "OrthancPeers": { "b": [https.clone()] }
    }));
    let g = Fixture::new("https", 2);
    assert_eq!(lax.post("/instances", &g.dicom()).0, 200);
    assert_eq!(store(&lax, "b", &g.ids()[3]).0, 200);
    let stats = https_get(&format!("{https}statistics"), &pem);
    assert_eq!(stats["CountInstances"], 2);
}
