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

/// The file of a fixture with a private tag and, when given, an image reference to `sop`.
fn with_reference(f: &Fixture, sop: Option<&str>) -> Vec<u8> {
    use dicom_core::value::DataSetSequence;
    use dicom_core::{DataElement, Length, PrimitiveValue, Tag, VR};
    use dicom_object::{InMemDicomObject, OpenFileOptions};
    let bytes = f.dicom();
    let mut obj = OpenFileOptions::new().from_reader(&bytes[128..]).unwrap();
    obj.put(DataElement::new(
        Tag(0x0009, 0x0010),
        VR::LO,
        PrimitiveValue::from("ACME"),
    ));
    obj.put(DataElement::new(
        Tag(0x0009, 0x1001),
        VR::LO,
        PrimitiveValue::from("secret"),
    ));
    obj.put(DataElement::new(
        Tag(0x0020, 0x0052),
        VR::UI,
        PrimitiveValue::from("1.2.3.99"),
    ));
    if let Some(sop) = sop {
        let mut item = InMemDicomObject::new_empty();
        item.put(DataElement::new(
            Tag(0x0008, 0x1150),
            VR::UI,
            PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.2"),
        ));
        item.put(DataElement::new(
            Tag(0x0008, 0x1155),
            VR::UI,
            PrimitiveValue::from(sop),
        ));
        obj.put(DataElement::new(
            Tag(0x0008, 0x1140),
            VR::SQ,
            DataSetSequence::new(vec![item], Length::UNDEFINED),
        ));
    }
    let mut out = Vec::new();
    obj.write_all(&mut out).unwrap();
    out
}

#[test]
fn anonymize_a_study_keeps_references_consistent() {
    let s = Server::start(json!({}));
    let first = Fixture::new("ANON", 1);
    let second = Fixture::new("ANON", 2);
    let (_, a) = s.post("/instances", &with_reference(&first, None));
    let (_, b) = s.post("/instances", &with_reference(&second, Some(&first.sop_uid)));
    let study = a["ParentStudy"].as_str().unwrap().to_string();
    let path = format!("/studies/{study}/anonymize");
    let (status, answer) = post_json(&s, &path, json!({}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["IsAnonymization"], true);
    assert_eq!(answer["InstancesCount"], 2);
    let new = s.get(&format!("/studies/{}", answer["ID"].as_str().unwrap()));
    assert_eq!(new["AnonymizedFrom"], study);
    assert_eq!(new["ParentPatient"], answer["PatientID"]);
    let patient = s.get(&format!(
        "/patients/{}",
        answer["PatientID"].as_str().unwrap()
    ));
    assert_eq!(patient["MainDicomTags"]["PatientName"], "Anonymized1");
    assert_eq!(
        patient["MainDicomTags"]["PatientID"]
            .as_str()
            .unwrap()
            .len(),
        36
    );
    assert!(new["MainDicomTags"]
        .get("StudyDescription")
        .is_none_or(|d| d == ""));
    let series = s.get(&format!("/series/{}", new["Series"][0].as_str().unwrap()));
    let instances: Vec<String> = series["Instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect();
    assert_eq!(instances.len(), 2);
    let by_source = |source: &Value| {
        instances
            .iter()
            .find(|i| s.get(&format!("/instances/{i}"))["AnonymizedFrom"] == *source)
            .unwrap()
            .clone()
    };
    let (new_a, new_b) = (by_source(&a["ID"]), by_source(&b["ID"]));
    let tags = s.get(&format!("/instances/{new_b}/tags?simplify"));
    assert_eq!(tags["PatientIdentityRemoved"], "YES");
    assert!(tags["DeidentificationMethod"]
        .as_str()
        .unwrap()
        .contains("PS 3.15-2023b"));
    assert!(
        tags.get("0009,1001").is_none(),
        "private tags are removed: {tags}"
    );
    // The image reference follows the referenced instance's new SOPInstanceUID.
    let referenced = tags["ReferencedImageSequence"][0]["ReferencedSOPInstanceUID"].clone();
    assert_eq!(referenced, content(&s, &new_a, "0008-0018"));
    assert_ne!(referenced, first.sop_uid.as_str());
    // One new FrameOfReferenceUID for both.
    assert_eq!(
        content(&s, &new_a, "0020-0052"),
        content(&s, &new_b, "0020-0052")
    );
    assert_ne!(content(&s, &new_a, "0020-0052"), "1.2.3.99");
    // The counter goes on; KeepPrivateTags and a DICOM version are honoured.
    let (_, again) = post_json(
        &s,
        &path,
        json!({"KeepPrivateTags": true, "DicomVersion": "2008"}),
    );
    let p2 = s.get(&format!(
        "/patients/{}",
        again["PatientID"].as_str().unwrap()
    ));
    assert_eq!(p2["MainDicomTags"]["PatientName"], "Anonymized2");
    let (status, _) = post_json(&s, &path, json!({"DicomVersion": "nope"}));
    assert_eq!(status, 400);
}

#[test]
fn bulk_modify_lists_the_new_resources() {
    let s = Server::start(json!({}));
    let (_, a) = s.post("/instances", &Fixture::new("BULK1", 1).dicom());
    let (_, b) = s.post("/instances", &Fixture::new("BULK2", 1).dicom());
    let (status, answer) = post_json(
        &s,
        "/tools/bulk-modify",
        json!({"Resources": [a["ID"], b["ID"]], "Replace": {"InstitutionName": "X"}}),
    );
    assert_eq!(status, 200, "{answer}");
    let resources = answer["Resources"].as_array().unwrap();
    let count = |t: &str| resources.iter().filter(|r| r["Type"] == t).count();
    assert_eq!(
        (
            count("Instance"),
            count("Series"),
            count("Study"),
            count("Patient")
        ),
        (2, 2, 2, 2)
    );
    // Instance level: the series, studies and patients are the sources'.
    assert!(resources.iter().any(|r| r["ID"] == a["ParentSeries"]));
    assert_eq!(s.get("/instances").as_array().unwrap().len(), 4);
    let (status, _) = post_json(&s, "/tools/bulk-modify", json!({"Replace": {}}));
    assert_eq!(status, 400);
}

#[test]
fn modify_inside_sequences_and_keep_labels() {
    let s = Server::start(json!({}));
    let first = Fixture::new("PATHS", 1);
    let second = Fixture::new("PATHS", 2);
    s.post("/instances", &with_reference(&first, None));
    let (_, b) = s.post("/instances", &with_reference(&second, Some(&first.sop_uid)));
    let series = b["ParentSeries"].as_str().unwrap().to_string();
    let (status, _) = s.send("PUT", &format!("/series/{series}/labels/tagged"), b"", &[]);
    assert_eq!(status, 200);
    let (status, answer) = post_json(
        &s,
        &format!("/series/{series}/modify"),
        json!({
            "Replace": {"ReferencedImageSequence[*].ReferencedSOPClassUID": "1.2.3"},
            "Remove": ["ReferencedImageSequence[0].ReferencedSOPInstanceUID",
                       "ReferencedImageSequence[5].ReferencedSOPInstanceUID"],
            "KeepLabels": true
        }),
    );
    assert_eq!(status, 200, "{answer}");
    let new = answer["ID"].as_str().unwrap();
    assert_eq!(s.get(&format!("/series/{new}/labels")), json!(["tagged"]));
    let instance = s
        .get(&format!("/series/{new}/instances"))
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["MainDicomTags"]["InstanceNumber"] == "2")
        .unwrap()["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let item = &s.get(&format!("/instances/{instance}/tags?short"))["0008,1140"][0];
    assert_eq!(item["0008,1150"], "1.2.3");
    assert!(item.get("0008,1155").is_none(), "{item}");
    // Malformed paths.
    for bad in [
        "ReferencedImageSequence.ReferencedSOPClassUID",
        "NoSuchSequence[0].PatientName",
    ] {
        let (status, err) = post_json(
            &s,
            &format!("/series/{series}/modify"),
            json!({"Replace": {bad: "x"}}),
        );
        assert!(status == 400 || status == 500, "{bad}: {status} {err}");
    }
}

#[test]
fn split_and_merge_studies() {
    let s = Server::start(json!({}));
    let study = upload_study(&s, "SPLIT");
    let st = s.get(&format!("/studies/{study}"));
    let moved = st["Series"][1].as_str().unwrap().to_string();
    let path = format!("/studies/{study}/split");
    assert_eq!(post_json(&s, &path, json!({})).0, 400, "nothing to split");
    assert_eq!(post_json(&s, &path, json!({"Series": ["nope"]})).0, 404);
    let (status, answer) = post_json(
        &s,
        &path,
        json!({"Series": [moved], "Replace": {"StudyDescription": "Split"}}),
    );
    assert_eq!(status, 200, "{answer}");
    let target = answer["TargetStudy"].as_str().unwrap().to_string();
    let new = s.get(&format!("/studies/{target}"));
    assert_eq!(
        new["MainDicomTags"]["StudyInstanceUID"],
        answer["TargetStudyUID"]
    );
    assert_eq!(new["MainDicomTags"]["StudyDescription"], "Split");
    assert_eq!(
        new["ParentPatient"], st["ParentPatient"],
        "the patient stays"
    );
    assert_eq!(new["Series"].as_array().unwrap().len(), 1);
    // KeepSource is false by default: the series left the first study.
    assert_eq!(s.status("GET", &format!("/series/{moved}")), 404);
    assert_eq!(
        s.get(&format!("/studies/{study}"))["Series"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Merge another patient's instance into the first study: it takes its patient and study.
    let (_, other) = s.post("/instances", &Fixture::new("MERGEME", 1).dicom());
    let (status, answer) = post_json(
        &s,
        &format!("/studies/{study}/merge"),
        json!({"Resources": [other["ParentStudy"]]}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["TargetStudy"], study);
    assert_eq!(
        s.status(
            "GET",
            &format!("/studies/{}", other["ParentStudy"].as_str().unwrap())
        ),
        404
    );
    let merged = s.get(&format!("/studies/{study}"));
    assert_eq!(merged["Series"].as_array().unwrap().len(), 2);
    assert_eq!(merged["PatientMainDicomTags"]["PatientName"], "DOE^SPLIT");
    assert_eq!(s.get("/patients").as_array().unwrap().len(), 1);
}
