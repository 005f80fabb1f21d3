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

/// A power loss may drop the last instance stores from the index (their commits leave the WAL
/// unsynced), never their files (fsynced first): the next start indexes those files again,
/// and removes the unreadable ones (a write cut short, never acknowledged).
#[test]
fn instances_whose_index_rows_were_lost_are_indexed_again_at_start() {
    let server = Server::start(json!({}));
    let fixtures: Vec<Fixture> = (1..=5).map(|n| Fixture::new("lost-rows", n)).collect();
    for f in &fixtures {
        assert_eq!(server.post("/instances", &f.dicom()).0, 200);
    }
    let dir = server.kill9();
    let storage = dir.path().join("storage");
    // What a power loss can do: the last three instances lose their rows, and a file whose
    // write was cut short lies in the same folder.
    let folder = {
        let db = rusqlite::Connection::open(storage.join("index.sqlite")).unwrap();
        db.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        for f in &fixtures[2..] {
            let n = db
                .execute("DELETE FROM resources WHERE public_id = ?", [&f.ids()[3]])
                .unwrap();
            assert_eq!(n, 1);
        }
        let uuid: String = db
            .query_row("SELECT uuid FROM attachments LIMIT 1", [], |r| r.get(0))
            .unwrap();
        uuid[..4].to_string()
    };
    let garbage = format!("{folder}0d0c-0b0a-4909-8807-060504030201");
    let folder = storage.join(&folder[..2]).join(&folder[2..]);
    let garbage = folder.join(garbage);
    std::fs::write(&garbage, b"not a DICOM file").unwrap();

    let server = Server::start_in(dir, json!({}));
    assert_eq!(server.get("/statistics")["CountInstances"], 5);
    for f in &fixtures {
        let id = &f.ids()[3];
        assert_eq!(
            server.get(&format!("/instances/{id}/simplified-tags"))["SOPInstanceUID"],
            f.sop_uid
        );
        assert_eq!(server.status("GET", &format!("/instances/{id}/file")), 200);
    }
    assert!(!garbage.exists(), "the unreadable file is still there");
    // One file per instance: the re-indexed files were not duplicated.
    assert_eq!(stored_files(&storage), 5);

    // The files stored again during the scan are covered too: lose one of them the same way.
    let dir = server.kill9();
    {
        let db = rusqlite::Connection::open(storage.join("index.sqlite")).unwrap();
        db.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        let n = db
            .execute(
                "DELETE FROM resources WHERE public_id = ?",
                [&fixtures[4].ids()[3]],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    let server = Server::start_in(dir, json!({}));
    assert_eq!(server.get("/statistics")["CountInstances"], 5);
    assert_eq!(
        server.status("GET", &format!("/instances/{}/file", fixtures[4].ids()[3])),
        200
    );
}

#[test]
fn instances_whose_files_were_lost_are_taken_out_of_the_index_at_start() {
    let server = Server::start(json!({}));
    let fixtures: Vec<Fixture> = (1..=4).map(|n| Fixture::new("lost-files", n)).collect();
    for f in &fixtures {
        assert_eq!(server.post("/instances", &f.dicom()).0, 200);
    }
    let path = |f: &Fixture| -> std::path::PathBuf {
        let uuid = server.get(&format!("/instances/{}/attachments/dicom/info", f.ids()[3]))["Uuid"]
            .as_str()
            .unwrap()
            .to_string();
        server
            .dir
            .path()
            .join("storage")
            .join(&uuid[..2])
            .join(&uuid[2..4])
            .join(&uuid)
    };
    let (gone, empty, zeroed) = (path(&fixtures[1]), path(&fixtures[2]), path(&fixtures[3]));
    let dir = server.kill9();
    // What a power loss can do to a file whose fsync had not completed (its instance was
    // recorded meanwhile, not acknowledged): gone, empty, or its size without its data.
    std::fs::remove_file(&gone).unwrap();
    std::fs::write(&empty, b"").unwrap();
    let size = std::fs::metadata(&zeroed).unwrap().len() as usize;
    std::fs::write(&zeroed, vec![0u8; size]).unwrap();

    let server = Server::start_in(dir, json!({}));
    let stats = server.get("/statistics");
    assert_eq!(stats["CountInstances"], 1, "{stats}");
    let kept = &fixtures[0].ids()[3];
    assert_eq!(
        server.status("GET", &format!("/instances/{kept}/file")),
        200
    );
    for f in &fixtures[1..] {
        let id = &f.ids()[3];
        assert_eq!(server.status("GET", &format!("/instances/{id}")), 404);
        // The client that never got its answer sends it again: stored anew.
        let (status, answer) = server.post("/instances", &f.dicom());
        assert_eq!((status, answer["Status"].as_str()), (200, Some("Success")));
        assert_eq!(server.status("GET", &format!("/instances/{id}/file")), 200);
    }
    assert!(
        !empty.exists() && !zeroed.exists(),
        "the broken files are still there"
    );
}

/// The number of attachment files under the storage root (`ab/cd/uuid`).
fn stored_files(root: &std::path::Path) -> usize {
    let dirs = |p: &std::path::Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect()
    };
    dirs(root)
        .iter()
        .flat_map(|a| dirs(a))
        .map(|b| std::fs::read_dir(b).unwrap().count())
        .sum()
}
