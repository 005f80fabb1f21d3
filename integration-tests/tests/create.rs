//! `/tools/create-dicom`: new instances from JSON tags and data URIs, stored as uploads.

use integration_tests::{Fixture, Server};
use serde_json::{json, Value};

/// A 3×2 RGB PNG: red, green, blue on the first row.
const PNG: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAMAAAACCAIAAAASFvFNAAAAF0lEQVR4nGP4z8DAAMFcInIaRjZuAVEAM1kEwOQkmMsAAAAASUVORK5CYII=";

fn create(s: &Server, body: Value) -> (u16, Value) {
    s.post("/tools/create-dicom", body.to_string().as_bytes())
}

#[test]
fn create_an_image_instance_and_a_pdf() {
    let s = Server::start(json!({}));
    let (status, answer) = create(
        &s,
        json!({"Tags": {"PatientName": "Jodogne", "SOPInstanceUID": "1.2.3"}, "Content": PNG}),
    );
    assert_eq!(
        status, 400,
        "a generated UID is overridden only with Force: {answer}"
    );
    let (status, answer) = create(
        &s,
        json!({"Tags": {"SOPInstanceUID": "1.2.3"}, "Force": true}),
    );
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = create(
        &s,
        json!({"Tags": {"PatientName": "Jodogne", "Modality": "CT", "TimeRange": "3.12\\4.12"},
               "Content": PNG}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["Status"], "Success");
    let id = answer["ID"].as_str().unwrap();
    assert_eq!(answer["Path"], format!("/instances/{id}"));
    let tags = s.get(&format!("/instances/{id}/tags?simplify"));
    assert_eq!(tags["PatientName"], "Jodogne");
    assert_eq!(tags["Modality"], "CT");
    assert_eq!(tags["Rows"], "2");
    assert_eq!(tags["Columns"], "3");
    assert_eq!(tags["PhotometricInterpretation"], "RGB");
    let range = tags["TimeRange"].as_str().unwrap();
    assert!(
        range.starts_with("3.12") && range.contains("\\4.12"),
        "{range}"
    );
    assert_eq!(tags["PatientID"].as_str().unwrap().len(), 36);
    let (status, png) = s.send("GET", &format!("/instances/{id}/preview"), b"", &[]);
    assert_eq!(status, 200, "{png}");

    let pdf = format!(
        "data:application/pdf;base64,{}",
        "JVBERi0xLjQKJeLjz9MKdHJhaWxlcgo8PD4+CiUlRU9GCg=="
    );
    let (status, answer) = create(&s, json!({"Tags": {"PatientName": "Pdf"}, "Content": pdf}));
    assert_eq!(status, 200, "{answer}");
    let pid = answer["ID"].as_str().unwrap();
    let tags = s.get(&format!("/instances/{pid}/tags?simplify"));
    assert_eq!(tags["SOPClassUID"], "1.2.840.10008.5.1.4.1.1.104.1");
    assert_eq!(tags["MIMETypeOfEncapsulatedDocument"], "application/pdf");
    let resp = ureq::get(&s.url(&format!("/instances/{pid}/pdf")))
        .call()
        .unwrap();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).unwrap();
    assert!(body.starts_with(b"%PDF-1.4"));
}

#[test]
fn create_in_a_parent_and_a_series() {
    let s = Server::start(json!({}));
    let f = Fixture::new("CREATEPARENT", 1);
    let (_, up) = s.post("/instances", &f.dicom());
    let study = up["ParentStudy"].as_str().unwrap();
    let (status, answer) = create(
        &s,
        json!({"Parent": study, "Tags": {"SeriesDescription": "Report"},
               "Content": [PNG, {"Content": PNG, "Tags": {"ImageComments": "second"}}]}),
    );
    assert_eq!(status, 200, "{answer}");
    let series = s.get(answer["Path"].as_str().unwrap());
    assert_eq!(series["ParentStudy"], study);
    assert_eq!(series["Instances"].as_array().unwrap().len(), 2);
    let patient = s.get(&format!("/studies/{study}/patient"));
    assert_eq!(patient["MainDicomTags"]["PatientName"], "DOE^CREATEPARENT");
    // A study tag inherited from the parent cannot be overridden without Force.
    let (status, err) = create(
        &s,
        json!({"Parent": study, "Tags": {"StudyDescription": "Other"}}),
    );
    assert_eq!((status, err["OrthancStatus"].clone()), (400, json!(2020)));
    // Bad parents, bad content, pixel data given as a tag, a v1 body.
    let instance = up["ID"].as_str().unwrap();
    assert_eq!(create(&s, json!({"Parent": instance, "Tags": {}})).0, 400);
    assert_eq!(create(&s, json!({"Parent": "nope", "Tags": {}})).0, 400);
    assert_eq!(create(&s, json!({"Tags": {}, "Content": 12})).0, 400);
    assert_eq!(create(&s, json!({"Tags": {"PixelData": PNG}})).0, 400);
    assert_eq!(
        create(
            &s,
            json!({"Tags": {}, "Content": "data:image/png;base64,AAAA"})
        )
        .0,
        400
    );
    let (status, v1) = create(&s, json!({"PatientName": "Old^Style"}));
    assert_eq!(status, 200, "{v1}");
    assert_eq!(create(&s, json!({"PatientName": 1})).0, 400);
}
