//! Decoded images: previews and 8/16-bit images as PNG, JPEG and PAM.

use std::io::Read;

use integration_tests::{Fixture, Server};
use serde_json::json;

fn fetch(server: &Server, path: &str, accept: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut req = ureq::get(&server.url(path));
    if let Some(a) = accept {
        req = req.set("Accept", a);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    let (status, ct) = (resp.status(), resp.content_type().to_string());
    let mut body = Vec::new();
    resp.into_reader().read_to_end(&mut body).unwrap();
    (status, ct, body)
}

#[test]
fn previews_and_images() {
    let server = Server::start(json!({}));
    let f = Fixture::new("images", 1);
    server.post("/instances", &f.dicom());
    let id = &f.ids()[3];
    let (status, ct, png) = fetch(&server, &format!("/instances/{id}/preview"), None);
    assert_eq!((status, ct.as_str()), (200, "image/png"));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert_eq!(&png[16..24], &[0, 0, 0, 4, 0, 0, 0, 4], "4x4 image");
    assert_eq!(png[24], 8, "8 bits per sample");
    let (_, _, png16) = fetch(
        &server,
        &format!("/instances/{id}/frames/0/image-uint16"),
        None,
    );
    assert_eq!(png16[24], 16, "16 bits per sample");
    let (status, ct, jpeg) = fetch(
        &server,
        &format!("/instances/{id}/image-uint8?quality=50"),
        Some("image/jpeg"),
    );
    assert_eq!((status, ct.as_str()), (200, "image/jpeg"));
    assert!(jpeg.starts_with(&[0xff, 0xd8]));
    let (_, ct, pam) = fetch(
        &server,
        &format!("/instances/{id}/image-uint16"),
        Some("image/x-portable-arbitrarymap"),
    );
    assert_eq!(ct, "image/x-portable-arbitrarymap");
    assert!(pam.starts_with(b"P7\nWIDTH 4\nHEIGHT 4\n"));
    // The fixture's pixels are all 0x0707: 1799 as 16 bits, cropped to 255 as 8 bits.
    assert_eq!(&pam[pam.len() - 2..], &1799u16.to_be_bytes());
    assert_eq!(
        fetch(&server, &format!("/instances/{id}/frames/1/preview"), None).0,
        404
    );
    assert_eq!(
        fetch(
            &server,
            &format!("/instances/{id}/preview?quality=0"),
            Some("image/jpeg")
        )
        .0,
        400
    );
}
