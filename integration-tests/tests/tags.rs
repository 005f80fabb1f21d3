//! Tags of instances and resources: formats, header, modules, shared tags, DICOMweb JSON.

use integration_tests::{Fixture, Server};
use serde_json::json;

#[test]
fn tag_formats_and_modules() {
    let server = Server::start(json!({}));
    let (a, b) = (Fixture::new("tags", 1), Fixture::new("tags", 2));
    server.post("/instances", &a.dicom());
    server.post("/instances", &b.dicom());
    let [patient, study, series, instance] = a.ids();
    let full = server.get(&format!("/instances/{instance}/tags"));
    assert_eq!(
        full["0010,0010"],
        json!({"Name": "PatientName", "Type": "String", "Value": a.patient_name})
    );
    assert_eq!(
        server.get(&format!("/instances/{instance}/tags?short"))["0010,0020"],
        a.patient_id
    );
    assert_eq!(
        server.get(&format!("/instances/{instance}/tags?simplify"))["StudyInstanceUID"],
        a.study_uid
    );
    let header = server.get(&format!("/instances/{instance}/header?simplify"));
    assert_eq!(header["TransferSyntaxUID"], "1.2.840.10008.1.2.1");
    assert_eq!(header["MediaStorageSOPInstanceUID"], a.sop_uid);
    let module = server.get(&format!("/studies/{study}/module?simplify"));
    assert_eq!(module["StudyInstanceUID"], a.study_uid);
    assert!(module.get("PatientName").is_none());
    assert_eq!(
        server.get(&format!("/studies/{study}/module-patient?simplify"))["PatientName"],
        a.patient_name
    );
    let shared = server.get(&format!("/series/{series}/shared-tags?simplify"));
    assert_eq!(shared["SeriesInstanceUID"], a.series_uid);
    assert!(
        shared.get("SOPInstanceUID").is_none(),
        "differs between the two instances"
    );
    let all = server.get(&format!("/patients/{patient}/instances-tags?short"));
    assert_eq!(all.as_object().unwrap().len(), 2);
    assert_eq!(all[instance.as_str()]["0008,0018"], a.sop_uid);
    let resp = ureq::get(&server.url(&format!("/instances/{instance}/file")))
        .set("Accept", "application/dicom+json")
        .call()
        .unwrap();
    assert_eq!(resp.content_type(), "application/dicom+json");
    let dicomweb: serde_json::Value = resp.into_json().unwrap();
    assert_eq!(dicomweb["00100010"]["vr"], "PN");
    assert_eq!(
        dicomweb["00100010"]["Value"][0]["Alphabetic"],
        a.patient_name
    );
    assert_eq!(server.status("GET", "/instances/nope/tags"), 404);
}
