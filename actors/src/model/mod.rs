//! Orthanc's data model: resource levels, identifiers, main DICOM tags, metadata and change
//! types. Plain code, no actors and no I/O: this is where Orthanc compatibility is decided.

pub mod dicom;
pub mod enums;
pub mod ids;
pub mod jsonb;
pub mod main_tags;
pub mod stored_tags;
pub mod transfer_syntax;

pub use enums::{ChangeType, Level, MetadataType};
