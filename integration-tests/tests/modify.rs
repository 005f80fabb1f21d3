//! Modification of resources (`/{level}/{id}/modify`): new instances stored with new UIDs
//! below the level, `ModifiedFrom`, `KeepSource`, jobs, and Orthanc's errors.

use std::time::Duration;

use integration_tests::{wait_until, Fixture, Server};
use serde_json::{json, Value};

/// Uploads two series of two instances in one study; answers the study id.
fn upload_study(s: &Server, tag: &str) -> String {
    let mut study = String::new();
    for series in 1..=2 {
        for n in 1..=2 {
            let mut f = Fixture::new(tag, n);
            f.series_uid = format!("{}.{series}", f.series_uid);
            f.sop_uid = format!("{}.{series}", f.sop_uid);
            let (status, body) = s.post("/instances", &f.dicom());
            assert_eq!(status, 200, "{body}");
            study = body["ParentStudy"].as_str().unwrap().to_string();
        }
    }
    study
}

fn post_json(s: &Server, path: &str, body: Value) -> (u16, Value) {
    s.post(path, body.to_string().as_bytes())
}

fn content(s: &Server, instance: &str, tag: &str) -> String {
    let (status, v) = s.send(
        "GET",
        &format!("/instances/{instance}/content/{tag}"),
        b"",
        &[],
    );
    assert_eq!(status, 200, "{instance} {tag}: {v}");
    v.as_str()
        .unwrap()
        .trim_end_matches(['\0', ' '])
        .to_string()
}

#[test]
fn modify_a_study_stores_new_instances_with_new_uids() {
    let s = Server::start(json!({}));
    let study = upload_study(&s, "MODSTUDY");
    let (status, answer) = post_json(
        &s,
        &format!("/studies/{study}/modify"),
        json!({"Replace": {"PatientName": "Jodogne", "StudyDescription": "New"}}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["Type"], "Study");
    assert_eq!(answer["InstancesCount"], 4);
    assert_eq!(answer["FailedInstancesCount"], 0);
    assert_eq!(answer["IsAnonymization"], false);
    assert_eq!(answer["ParentResources"], json!([study]));
    let new = answer["ID"].as_str().unwrap().to_string();
    assert_ne!(new, study);
    assert_eq!(answer["Path"], format!("/studies/{new}"));
    assert_eq!(s.get("/studies").as_array().unwrap().len(), 2);

    let modified = s.get(&format!("/studies/{new}"));
    assert_eq!(modified["ModifiedFrom"], study);
    // The patient is the same (PatientID kept), the answer names it.
    assert_eq!(modified["ParentPatient"], answer["PatientID"]);
    assert_eq!(modified["MainDicomTags"]["StudyDescription"], "New");
    let series = modified["Series"].as_array().unwrap();
    assert_eq!(series.len(), 2);
    let mut sop_uids = Vec::new();
    for se in series {
        let se = s.get(&format!("/series/{}", se.as_str().unwrap()));
        let source_series = se["ModifiedFrom"].as_str().unwrap();
        assert_eq!(
            s.get(&format!("/series/{source_series}"))["ParentStudy"],
            study
        );
        let instances = se["Instances"].as_array().unwrap();
        assert_eq!(instances.len(), 2, "one new SeriesInstanceUID per series");
        for i in instances {
            let i = i.as_str().unwrap();
            let source = s.get(&format!("/instances/{i}"))["ModifiedFrom"]
                .as_str()
                .unwrap()
                .to_string();
            assert_eq!(content(&s, i, "0010-0010"), "Jodogne");
            assert_eq!(content(&s, &source, "0010-0010"), "DOE^MODSTUDY");
            assert_ne!(
                content(&s, i, "0020-000d"),
                content(&s, &source, "0020-000d")
            );
            assert_ne!(
                content(&s, i, "0008-0018"),
                content(&s, &source, "0008-0018")
            );
            // The meta header follows the new SOPInstanceUID.
            assert_eq!(
                content(&s, i, "0008-0018"),
                s.get(&format!("/instances/{i}/header"))["0002,0003"]["Value"]
            );
            sop_uids.push(content(&s, i, "0008-0018"));
        }
    }
    sop_uids.sort();
    sop_uids.dedup();
    assert_eq!(sop_uids.len(), 4);
}

#[test]
fn modify_as_a_job_keeps_user_data_and_can_drop_the_source() {
    let s = Server::start(json!({}));
    let study = upload_study(&s, "MODJOB");
    let series = s.get(&format!("/studies/{study}"))["Series"][0]
        .as_str()
        .unwrap()
        .to_string();
    let (status, job) = post_json(
        &s,
        &format!("/series/{series}/modify"),
        json!({"Replace": {"SeriesDescription": "Moved"}, "KeepSource": false,
               "Asynchronous": true, "UserData": {"user-data": "titi"}}),
    );
    assert_eq!(status, 200, "{job}");
    let id = job["ID"].as_str().unwrap().to_string();
    assert_eq!(job["Path"], format!("/jobs/{id}"));
    assert!(wait_until(Duration::from_secs(20), || s
        .get(&format!("/jobs/{id}"))["State"]
        == "Success"));
    let info = s.get(&format!("/jobs/{id}"));
    assert_eq!(info["Type"], "ResourceModification");
    assert_eq!(info["UserData"]["user-data"], "titi");
    assert_eq!(info["Content"]["Type"], "Series");
    let new = info["Content"]["ID"].as_str().unwrap();
    // The source series is gone; the study keeps two series, the new one in it.
    assert_eq!(s.status("GET", &format!("/series/{series}")), 404);
    let st = s.get(&format!("/studies/{study}"));
    let list = st["Series"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().any(|x| x == new));
    assert_eq!(
        s.get(&format!("/series/{new}"))["MainDicomTags"]["SeriesDescription"],
        "Moved"
    );
}

#[test]
fn modify_refuses_bad_requests_and_stores_nothing() {
    let s = Server::start(json!({}));
    let study = upload_study(&s, "MODBAD");
    let path = format!("/studies/{study}/modify");
    // Identifiers need Force.
    let (status, err) = post_json(&s, &path, json!({"Replace": {"StudyInstanceUID": "1.2.3"}}));
    assert_eq!(status, 400, "{err}");
    assert!(err["Details"].as_str().unwrap().contains("Force"), "{err}");
    let (status, _) = post_json(&s, &path, json!({"Remove": ["PatientID"]}));
    assert_eq!(status, 400);
    // Unknown tag names, bad types, a body that is not an object.
    let (status, err) = post_json(&s, &path, json!({"Replace": {"NoSuchTag": "x"}}));
    assert_eq!((status, err["OrthancStatus"].clone()), (500, json!(27)));
    let (status, _) = post_json(&s, &path, json!({"Replace": {"PatientName": 12}}));
    assert_eq!(status, 400);
    let (status, _) = post_json(&s, &path, json!({"KeepSource": "no"}));
    assert_eq!(status, 400);
    let (status, _) = s.post(&path, b"[1, 2");
    assert_eq!(status, 400);
    let (status, _) = post_json(&s, "/studies/0000/modify", json!({}));
    assert_eq!(status, 404);
    // Keeping every UID in place needs OverwriteInstances.
    let keep =
        json!({"Keep": ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"], "Force": true});
    let (status, _) = post_json(&s, &path, keep);
    assert_eq!(status, 400);
    assert_eq!(s.get("/instances").as_array().unwrap().len(), 4);
    // With Force, a new StudyInstanceUID given by the user is used as such.
    let (status, answer) = post_json(
        &s,
        &path,
        json!({"Replace": {"StudyInstanceUID": "1.2.3.4.5"}, "Force": true}),
    );
    assert_eq!(status, 200, "{answer}");
    let new = s.get(&format!("/studies/{}", answer["ID"].as_str().unwrap()));
    assert_eq!(new["MainDicomTags"]["StudyInstanceUID"], "1.2.3.4.5");
}

#[test]
fn modify_an_instance_answers_the_file_with_the_level_of_the_identifiers() {
    let s = Server::start(json!({}));
    let f = Fixture::new("MODINST", 1);
    let (_, body) = s.post("/instances", &f.dicom());
    let id = body["ID"].as_str().unwrap();
    let resp = ureq::post(&s.url(&format!("/instances/{id}/modify")))
        .send_bytes(
            json!({"Replace": {"PatientID": "OTHER"}, "Force": true})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    assert_eq!(resp.content_type(), "application/dicom");
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut bytes).unwrap();
    let (status, stored) = s.post("/instances", &bytes);
    assert_eq!(status, 200, "{stored}");
    let new = stored["ID"].as_str().unwrap();
    // A new PatientID: the study, series and SOP instance UIDs are new too.
    assert_eq!(content(&s, new, "0010-0020"), "OTHER");
    for tag in ["0020-000d", "0020-000e", "0008-0018"] {
        assert_ne!(content(&s, new, tag), content(&s, id, tag), "{tag}");
    }
    assert_eq!(s.get("/instances").as_array().unwrap().len(), 2);
}
