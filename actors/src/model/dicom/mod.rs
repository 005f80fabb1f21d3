//! DICOM model for pacsnode: Part-10 parser, character sets, and the
//! Orthanc / DICOMweb JSON renderings.
pub mod anonymize;
pub mod charset;
pub mod content;
pub mod create;
pub mod dicomweb_json;
pub mod dicomweb_values;
pub mod dicomweb_xml;
pub mod dictionary;
pub mod modify;
pub mod orthanc_json;
pub mod parse;
pub mod tag_path;
pub use charset::Encoding;
pub use content::{browse, ContentAnswer};
pub use dicomweb_json::{to_dicomweb_json, try_to_dicomweb_json, BinaryMode, DicomWebOptions};
pub use dicomweb_xml::to_dicomweb_xml;
pub use dictionary::{PrivateDictionary, PrivateEntry};
pub use orthanc_json::{to_orthanc_json, Format, IgnoreLength, JsonOptions};
pub use parse::{parse, DataSet, DicomFile, Element, ParseError, ParseOptions, Tag, Value, VR};
