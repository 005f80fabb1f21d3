//! # pacsnode actors
//!
//! The library behind the `pacsnode` binary: the actors and the Orthanc data model.
//!
//! # Layout
//! - [`model`]: Orthanc's data model (ids, levels, main tags, DICOM parsing and JSON); no I/O.
//! - [`storage`]: the storage area (files, fsync, compression); blocking, used off the event loop.
//! - [`index`]: the index database (sqlx SQLite); `IndexActor` is the single writer with group
//!   commit, `IndexReader` a pool of readers. The only module with SQL.
//! - [`ingest`]: `IngestActor`, DICOM bytes → stored instance.
//! - [`jobs`]: the job queue (`/jobs`) and the job types (archives).
//! - [`changes`]: `ChangesActor`, the "stable" timers that feed the change log.
//! - [`lua`]: the Lua engine behind `/tools/execute-script` and the Lua callbacks.

pub mod changes;
pub mod commitment_reports;
pub mod dicom_scp;
pub mod dimse;
pub mod find;
pub mod index;
pub mod ingest;
pub mod jobs;
pub mod lua;
pub mod lua_actor;
pub mod model;
pub mod peers;
pub mod preview;
pub mod queries;
pub mod recovery;
pub mod storage;
pub mod tls;
pub mod transcode;
