//! DICOM network layer (C-ECHO and C-STORE, SCP and SCU) on top of the
//! `dicom-ul` PDU codec; the DIMSE message layer is implemented here.

pub mod command;
pub mod commitment;
pub mod conn;
pub mod error;
pub mod get_scp;
pub mod negotiate;
pub mod part10;
pub mod retrieve;
pub mod scp;
pub mod scu;

pub use error::DimseError;
pub use get_scp::GetHandler;
pub use retrieve::{Model, RetrieveOutcome};
pub use scp::{
    serve, AccessHandler, FindHandler, Handlers, LiveSettings, MoveHandler, MoveOutcome, Request,
    ScpConfig, StoreContext, StoreHandler,
};
pub use scu::{echo, store, store_detailed, RemoteAe};
