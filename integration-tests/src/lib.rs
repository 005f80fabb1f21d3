//! Test harness: starts the real `pacsnode` binary on a free port with a temporary directory,
//! and builds DICOM fixtures with dicom-object.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use serde_json::{json, Value};

/// The pacsnode binary under test (`PACSNODE_BIN`, else target/debug/pacsnode).
pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("PACSNODE_BIN") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/pacsnode")
}

/// A running server; killed and cleaned up when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub dicom_port: u16,
    pub dir: tempfile::TempDir,
    pub config: Value,
}

impl Server {
    /// Starts a server with the test defaults merged with `extra`.
    pub fn start(extra: Value) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, extra)
    }

    /// Starts a server on an existing data directory.
    pub fn start_in(dir: tempfile::TempDir, extra: Value) -> Server {
        let storage = dir.path().join("storage");
        let mut config = json!({
            "HttpPort": 0,
            "DicomPort": 0,
            "StorageDirectory": storage,
            "IndexDirectory": storage,
            "RemoteAccessAllowed": false,
            "StableAge": 1,
            "ExecuteLuaEnabled": true,
            "UserMetadata": { "my-metadata": 1098 },
        });
        if let (Value::Object(base), Value::Object(more)) = (&mut config, extra) {
            base.extend(more);
        }
        let path = dir.path().join("config.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let mut child = Command::new(binary())
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start pacsnode (build it first: cargo build)");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let (port, dicom_port) = loop {
            let line = lines
                .next()
                .expect("pacsnode exited before it was ready")
                .unwrap();
            if let Some(p) = line.strip_prefix("pacsnode ready: HTTP port ") {
                let numbers: Vec<u16> = p.split(' ').filter_map(|w| w.parse().ok()).collect();
                break (numbers[0], numbers.get(1).copied().unwrap_or(0));
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            port,
            dicom_port,
            dir,
            config,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn get(&self, path: &str) -> Value {
        let r = ureq::get(&self.url(path))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        r.into_json().unwrap()
    }

    /// The status of a GET (200, 404...).
    pub fn status(&self, method: &str, path: &str) -> u16 {
        match ureq::request(method, &self.url(path)).call() {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    /// Sends a request and returns (status, the answer's headers named in `want`, body).
    pub fn send_raw(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
        want: &[&str],
    ) -> (u16, Vec<String>, Vec<u8>) {
        let mut req = ureq::request(method, &self.url(path));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let resp = match req.send_bytes(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = resp.status();
        let got = want
            .iter()
            .map(|h| resp.header(h).unwrap_or_default().to_string())
            .collect();
        let mut bytes = Vec::new();
        resp.into_reader().read_to_end(&mut bytes).unwrap();
        (status, got, bytes)
    }

    /// Sends a request and returns (status, body as JSON or string).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let (status, _, bytes) = self.send_raw(method, path, body, headers, &[]);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub fn post(&self, path: &str, body: &[u8]) -> (u16, Value) {
        self.send("POST", path, body, &[])
    }

    /// Stops the server with SIGKILL and gives back its data directory.
    pub fn kill9(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    /// Sends SIGTERM and waits for the exit; returns how long it took, and the data directory.
    pub fn terminate(mut self) -> (Duration, tempfile::TempDir) {
        let start = Instant::now();
        // SAFETY: kill(2) on our own child's pid has no memory-safety conditions.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
        let took = start.elapsed();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (took, dir)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The identifiers of a test instance.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub patient_id: String,
    pub patient_name: String,
    pub study_uid: String,
    pub series_uid: String,
    pub sop_uid: String,
    pub instance_number: u32,
}

impl Fixture {
    pub fn new(tag: &str, n: u32) -> Fixture {
        Fixture {
            patient_id: format!("PAT-{tag}"),
            patient_name: format!("DOE^{tag}"),
            study_uid: format!("1.2.826.0.1.3680043.10.543.{}.1", hash(tag)),
            series_uid: format!("1.2.826.0.1.3680043.10.543.{}.1.1", hash(tag)),
            sop_uid: format!("1.2.826.0.1.3680043.10.543.{}.1.1.{n}", hash(tag)),
            instance_number: n,
        }
    }

    /// A small Part-10 CT file (Explicit VR Little Endian, 4×4 pixels).
    pub fn dicom(&self) -> Vec<u8> {
        let mut obj = InMemDicomObject::new_empty();
        let mut put =
            |g: u16, e: u16, vr: VR, v: PrimitiveValue| obj.put(DataElement::new(Tag(g, e), vr, v));
        put(0x0008, 0x0016, VR::UI, "1.2.840.10008.5.1.4.1.1.2".into());
        put(0x0008, 0x0018, VR::UI, self.sop_uid.as_str().into());
        put(0x0008, 0x0020, VR::DA, "20240102".into());
        put(0x0008, 0x0050, VR::SH, "ACC1".into());
        put(0x0008, 0x0060, VR::CS, "CT".into());
        put(0x0008, 0x1030, VR::LO, "Chest CT".into());
        put(0x0010, 0x0010, VR::PN, self.patient_name.as_str().into());
        put(0x0010, 0x0020, VR::LO, self.patient_id.as_str().into());
        put(0x0020, 0x000d, VR::UI, self.study_uid.as_str().into());
        put(0x0020, 0x000e, VR::UI, self.series_uid.as_str().into());
        put(
            0x0020,
            0x0013,
            VR::IS,
            self.instance_number.to_string().into(),
        );
        put(0x0028, 0x0002, VR::US, PrimitiveValue::from(1_u16));
        put(0x0028, 0x0004, VR::CS, "MONOCHROME2".into());
        put(0x0028, 0x0010, VR::US, PrimitiveValue::from(4_u16));
        put(0x0028, 0x0011, VR::US, PrimitiveValue::from(4_u16));
        put(0x0028, 0x0100, VR::US, PrimitiveValue::from(16_u16));
        put(0x0028, 0x0101, VR::US, PrimitiveValue::from(16_u16));
        put(0x0028, 0x0102, VR::US, PrimitiveValue::from(15_u16));
        put(0x0028, 0x0103, VR::US, PrimitiveValue::from(0_u16));
        put(0x7fe0, 0x0010, VR::OW, PrimitiveValue::from(vec![7_u8; 32]));
        let file = obj
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax("1.2.840.10008.1.2.1")
                    .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2")
                    .media_storage_sop_instance_uid(self.sop_uid.as_str()),
            )
            .expect("meta");
        let mut out = Vec::new();
        file.write_all(&mut out).expect("write");
        out
    }

    /// The Orthanc ids (SHA-1 rule), computed independently of the server.
    pub fn ids(&self) -> [String; 4] {
        let p = self.patient_id.clone();
        let st = format!("{p}|{}", self.study_uid);
        let se = format!("{st}|{}", self.series_uid);
        let i = format!("{se}|{}", self.sop_uid);
        [p, st, se, i].map(|s| orthanc_id(&s))
    }
}

fn hash(tag: &str) -> u64 {
    tag.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ b as u64).wrapping_mul(1099511628211)
    }) % 1_000_000_007
}

/// Orthanc's id: SHA-1 written as 5 groups of 8 hex digits.
pub fn orthanc_id(s: &str) -> String {
    use sha1::{Digest, Sha1};
    let hex: String = Sha1::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (0..5)
        .map(|i| &hex[i * 8..i * 8 + 8])
        .collect::<Vec<_>>()
        .join("-")
}

/// Waits until `f` holds, up to `timeout`.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
