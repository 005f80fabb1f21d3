//! The REST front end: Orthanc's routes, thin handlers that call the index reader or send
//! messages to the actors.
//!
//! - [`error`]: Orthanc error codes and the JSON error body.
//! - [`middleware`]: auth, method override, error bodies.
//! - [`respond`]: JSON/XML/text answers and GET arguments.
//! - [`resource_json`]: the JSON of a patient/study/series/instance.
//! - one module per family of routes: [`system`], [`resources`], [`upload`], [`tags`],
//!   [`metadata`], [`changes`], [`remotes`], [`tools`].

pub mod archive;
pub mod attachments;
pub mod bulk;
pub mod changes;
pub mod commitment;
pub mod create;
pub mod error;
pub mod find;
pub mod find_scu;
pub mod frames;
pub mod images;
pub mod jobs;
pub mod labels;
pub mod metadata;
pub mod middleware;
pub mod modalities;
pub mod modify;
pub mod peers;
pub mod queries;
pub mod remotes;
pub mod requested;
pub mod resource_json;
pub mod resources;
pub mod respond;
pub mod response;
pub mod retrieve;
pub mod split_merge;
pub mod system;
pub mod tags;
pub mod tools;
pub mod upload;

use std::sync::{Arc, RwLock};

use actix::Addr;
use actix_web::web;
use pacsnode_actors::dimse::LiveSettings;
use pacsnode_actors::index::{IndexReader, IndexWriter};
use pacsnode_actors::ingest::IngestActor;
use pacsnode_actors::lua_actor::LuaActor;
use pacsnode_actors::model::dicom::{Encoding, PrivateDictionary};
use pacsnode_actors::storage::StorageArea;

use crate::logging::LogLevels;
use crate::settings::Settings;

/// Settings that REST calls can change until the next restart.
pub struct RuntimeState {
    pub default_encoding: Arc<RwLock<Encoding>>,
    /// The `AcceptedTransferSyntaxes` patterns, as given.
    pub accepted_transfer_syntaxes: RwLock<Vec<String>>,
    /// What the DICOM server negotiates with (expanded syntaxes, unknown SOP classes).
    pub scp: Arc<LiveSettings>,
}

/// What every handler can reach.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub reader: IndexReader,
    pub writer: IndexWriter,
    pub ingest: Addr<IngestActor>,
    pub storage: StorageArea,
    pub lua: Addr<LuaActor>,
    pub preview: Addr<pacsnode_actors::preview::PreviewActor>,
    pub logs: Arc<LogLevels>,
    pub runtime: Arc<RuntimeState>,
    pub dictionary: Arc<PrivateDictionary>,
    /// Asks the server to stop (`/tools/shutdown`) or restart (`/tools/reset`).
    pub control: tokio::sync::mpsc::Sender<crate::Control>,
    /// Files uploaded in chunks by Orthanc Explorer's uploader, until they are whole.
    pub chunks: std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>,
    /// The job queue (`/jobs`).
    pub jobs: pacsnode_actors::jobs::Jobs,
    /// The queries made through `/modalities/{id}/query` (`/queries`).
    pub queries: pacsnode_actors::queries::QueryArchive,
    /// The storage commitments asked for (`/storage-commitment`).
    pub commitments: Arc<pacsnode_actors::commitment_reports::CommitmentReports>,
}

/// The whole route table.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Routes are tried in order, each dynamic one with a regex: the ingest route goes first.
    upload::configure(cfg);
    resources::configure(cfg);
    system::configure(cfg);
    tools::configure(cfg);
    bulk::configure(cfg);
    changes::configure(cfg);
    find::configure(cfg);
    labels::configure(cfg);
    modify::configure(cfg);
    create::configure(cfg);
    split_merge::configure(cfg);
    archive::configure(cfg);
    jobs::configure(cfg);
    peers::configure(cfg);
    frames::configure(cfg);
    images::configure(cfg);
    modalities::configure(cfg);
    queries::configure(cfg);
    commitment::configure(cfg);
    retrieve::configure(cfg);
    find_scu::configure(cfg);
    remotes::configure(cfg);
    tags::configure(cfg);
    metadata::configure(cfg);
    attachments::configure(cfg);
}
