//! C-FIND / C-MOVE / C-GET service class user: the query/retrieve side of the SCU.
//! Identifiers are data sets of dicom-object, encoded in the transfer syntax the remote
//! accepted (Explicit or Implicit VR Little Endian).

use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_ul::pdu::{RequestorRoles, UserVariableItem};

use super::command::*;
use super::conn::Incoming;
use super::error::DimseError;
use super::negotiate::{EXPLICIT_LE, IMPLICIT_LE};
use super::part10::build_part10;
use super::scu::{Association, RemoteAe};

/// The information models of query/retrieve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    PatientRoot,
    StudyRoot,
    /// Modality Worklist (C-FIND only).
    Worklist,
}

impl Model {
    fn find_sop_class(self) -> &'static str {
        match self {
            Model::PatientRoot => "1.2.840.10008.5.1.4.1.2.1.1",
            Model::StudyRoot => "1.2.840.10008.5.1.4.1.2.2.1",
            Model::Worklist => WORKLIST_FIND,
        }
    }

    fn move_sop_class(self) -> &'static str {
        match self {
            Model::PatientRoot => "1.2.840.10008.5.1.4.1.2.1.2",
            _ => "1.2.840.10008.5.1.4.1.2.2.2",
        }
    }

    fn get_sop_class(self) -> &'static str {
        match self {
            Model::PatientRoot => "1.2.840.10008.5.1.4.1.2.1.3",
            _ => "1.2.840.10008.5.1.4.1.2.2.3",
        }
    }
}

/// Modality Worklist Information Model - FIND.
pub const WORKLIST_FIND: &str = "1.2.840.10008.5.1.4.31";
/// C-FIND-RSP "pending" statuses (the second: some optional keys are not supported).
const PENDING: [u16; 2] = [0xFF00, 0xFF01];
/// Storage SOP classes C-GET asks the remote to send (as SCP of C-STORE, by role selection).
const GET_STORAGE_CLASSES: &[&str] = &[
    "1.2.840.10008.5.1.4.1.1.1",     // CR
    "1.2.840.10008.5.1.4.1.1.1.1",   // DX presentation
    "1.2.840.10008.5.1.4.1.1.2",     // CT
    "1.2.840.10008.5.1.4.1.1.2.1",   // enhanced CT
    "1.2.840.10008.5.1.4.1.1.4",     // MR
    "1.2.840.10008.5.1.4.1.1.4.1",   // enhanced MR
    "1.2.840.10008.5.1.4.1.1.6.1",   // US
    "1.2.840.10008.5.1.4.1.1.7",     // secondary capture
    "1.2.840.10008.5.1.4.1.1.12.1",  // XA
    "1.2.840.10008.5.1.4.1.1.12.2",  // RF
    "1.2.840.10008.5.1.4.1.1.20",    // NM
    "1.2.840.10008.5.1.4.1.1.128",   // PET
    "1.2.840.10008.5.1.4.1.1.481.1", // RT image
    "1.2.840.10008.5.1.4.1.1.88.11", // basic text SR
    "1.2.840.10008.5.1.4.1.1.88.22", // enhanced SR
    "1.2.840.10008.5.1.4.1.1.104.1", // encapsulated PDF
    "1.2.840.10008.5.1.4.1.1.1.2",   // mammography
    "1.2.840.10008.5.1.4.1.1.6.2",   // enhanced US volume
    "1.2.840.10008.5.1.4.1.1.3.1",   // US multi-frame
    "1.2.840.10008.5.1.4.1.1.7.4",   // multi-frame true color SC
];

fn uncompressed() -> Vec<String> {
    vec![EXPLICIT_LE.to_string(), IMPLICIT_LE.to_string()]
}

/// The accepted context of `sop_class` and its transfer syntax.
fn context_of(a: &Association, sop_class: &str) -> Result<(u8, String), DimseError> {
    a.contexts
        .iter()
        .find(|c| c.abstract_syntax == sop_class)
        .map(|c| (c.id, c.transfer_syntax.clone()))
        .ok_or_else(|| DimseError::NoPresentationContext {
            sop_class: sop_class.into(),
            transfer_syntax: IMPLICIT_LE.into(),
        })
}

pub(super) fn encode(ds: &InMemDicomObject, ts: &str) -> Result<Vec<u8>, DimseError> {
    let ts = TransferSyntaxRegistry
        .get(ts)
        .ok_or_else(|| DimseError::Protocol(format!("unknown transfer syntax {ts}")))?;
    let mut out = Vec::new();
    ds.write_dataset_with_ts(&mut out, ts)
        .map_err(|e| DimseError::Protocol(format!("cannot encode the identifier: {e}")))?;
    Ok(out)
}

pub(super) fn decode(bytes: &[u8], ts: &str) -> Result<InMemDicomObject, DimseError> {
    let ts = TransferSyntaxRegistry
        .get(ts)
        .ok_or_else(|| DimseError::Protocol(format!("unknown transfer syntax {ts}")))?;
    InMemDicomObject::read_dataset_with_ts(bytes, ts)
        .map_err(|e| DimseError::Protocol(format!("unreadable C-FIND answer: {e}")))
}

/// Sends a query/retrieve request (`field`, on `sop_class`'s context) with its identifier;
/// answers its message id and the context's transfer syntax.
fn send_request(
    a: &mut Association,
    sop_class: &str,
    field: u16,
    identifier: &InMemDicomObject,
    destination: Option<&str>,
) -> Result<(u16, String), DimseError> {
    let (pc, ts) = context_of(a, sop_class)?;
    let message_id = a.next_id();
    let mut rq = Command::new()
        .with_uid(AFFECTED_SOP_CLASS_UID, sop_class)
        .with_us(COMMAND_FIELD, field)
        .with_us(MESSAGE_ID, message_id)
        .with_us(PRIORITY, 0)
        .with_us(DATA_SET_TYPE, DATA_SET_PRESENT);
    if let Some(aet) = destination {
        rq = rq.with_text(MOVE_DESTINATION, aet);
    }
    a.conn
        .send_message(pc, &rq, Some(&encode(identifier, &ts)?))?;
    Ok((message_id, ts))
}

/// C-FIND SCU: the answers of the remote to `identifier`, in the order received.
pub fn find(
    local_aet: &str,
    remote: &RemoteAe,
    model: Model,
    identifier: &InMemDicomObject,
) -> Result<Vec<InMemDicomObject>, DimseError> {
    let sop_class = model.find_sop_class();
    let proposed = [(sop_class.to_string(), uncompressed())];
    let association = Association::request(local_aet, remote, &proposed)?;
    association.run(|a| {
        let (message_id, ts) = send_request(a, sop_class, C_FIND_RQ, identifier, None)?;
        let mut answers = Vec::new();
        loop {
            let msg = response(a, C_FIND_RSP, message_id)?;
            let status = msg.command.us(STATUS).unwrap_or(STATUS_CANNOT_UNDERSTAND);
            if PENDING.contains(&status) {
                if let Some(data) = &msg.data {
                    answers.push(decode(data, &ts)?);
                }
                continue;
            }
            return match status {
                STATUS_SUCCESS => Ok(answers),
                s => Err(DimseError::Status(s)),
            };
        }
    })
}

/// The next message of the association, which must answer `message_id` with `field`.
fn response(
    a: &mut Association,
    field: u16,
    message_id: u16,
) -> Result<super::conn::Message, DimseError> {
    match a.conn.recv_message()? {
        Incoming::Message(msg)
            if msg.command.command_field() == Some(field)
                && msg.command.us(MESSAGE_ID_RESPONDED) == Some(message_id) =>
        {
            Ok(msg)
        }
        Incoming::Message(msg) => Err(DimseError::Protocol(format!(
            "unexpected DIMSE message 0x{:04X}",
            msg.command.command_field().unwrap_or_default()
        ))),
        Incoming::ReleaseRq => Err(DimseError::Protocol("unexpected A-RELEASE-RQ".into())),
    }
}

/// How a C-MOVE or C-GET ended: the final status and the sub-operation counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetrieveOutcome {
    pub status: u16,
    pub completed: u16,
    pub failed: u16,
    pub warning: u16,
}

fn outcome(cmd: &Command) -> RetrieveOutcome {
    RetrieveOutcome {
        status: cmd.us(STATUS).unwrap_or(STATUS_CANNOT_UNDERSTAND),
        completed: cmd.us(COMPLETED_SUBOPERATIONS).unwrap_or(0),
        failed: cmd.us(FAILED_SUBOPERATIONS).unwrap_or(0),
        warning: cmd.us(WARNING_SUBOPERATIONS).unwrap_or(0),
    }
}

/// C-MOVE SCU: asks the remote to send what matches `identifier` to `destination`.
pub fn move_to(
    local_aet: &str,
    remote: &RemoteAe,
    model: Model,
    identifier: &InMemDicomObject,
    destination: &str,
) -> Result<RetrieveOutcome, DimseError> {
    let sop_class = model.move_sop_class();
    let proposed = [(sop_class.to_string(), uncompressed())];
    let association = Association::request(local_aet, remote, &proposed)?;
    association.run(|a| {
        let (message_id, _) = send_request(a, sop_class, C_MOVE_RQ, identifier, Some(destination))?;
        loop {
            let msg = response(a, C_MOVE_RSP, message_id)?;
            let o = outcome(&msg.command);
            if !PENDING.contains(&o.status) {
                return Ok(o);
            }
        }
    })
}

/// C-GET SCU: asks the remote to send what matches `identifier` on this association; each
/// instance received goes to `store` (a Part-10 file), whose answer is the C-STORE status.
pub fn get(
    local_aet: &str,
    remote: &RemoteAe,
    model: Model,
    identifier: &InMemDicomObject,
    store: &mut dyn FnMut(Vec<u8>) -> u16,
) -> Result<RetrieveOutcome, DimseError> {
    let sop_class = model.get_sop_class();
    let mut proposed = vec![(sop_class.to_string(), uncompressed())];
    let mut roles = Vec::new();
    for class in GET_STORAGE_CLASSES {
        proposed.push((class.to_string(), uncompressed()));
        roles.push(UserVariableItem::ScuScpRoleSelectionSubItem(
            class.to_string(),
            RequestorRoles {
                scu: false,
                scp: true,
            },
        ));
    }
    let association = Association::request_with(local_aet, remote, &proposed, roles)?;
    association.run(|a| {
        let (message_id, _) = send_request(a, sop_class, C_GET_RQ, identifier, None)?;
        loop {
            let msg = match a.conn.recv_message()? {
                Incoming::Message(msg) => msg,
                Incoming::ReleaseRq => {
                    return Err(DimseError::Protocol("unexpected A-RELEASE-RQ".into()))
                }
            };
            match msg.command.command_field() {
                Some(C_STORE_RQ) => {
                    let class = msg
                        .command
                        .string(AFFECTED_SOP_CLASS_UID)
                        .unwrap_or_default();
                    let instance = msg
                        .command
                        .string(AFFECTED_SOP_INSTANCE_UID)
                        .unwrap_or_default();
                    let store_ts = a
                        .contexts
                        .iter()
                        .find(|c| c.id == msg.pc_id)
                        .map(|c| c.transfer_syntax.clone())
                        .unwrap_or_else(|| IMPLICIT_LE.to_string());
                    let status = match &msg.data {
                        Some(data) => store(build_part10(&class, &instance, &store_ts, data)),
                        None => STATUS_CANNOT_UNDERSTAND,
                    };
                    let rsp = Command::new()
                        .with_us(COMMAND_FIELD, C_STORE_RSP)
                        .with_us(
                            MESSAGE_ID_RESPONDED,
                            msg.command.us(MESSAGE_ID).unwrap_or_default(),
                        )
                        .with_us(DATA_SET_TYPE, NO_DATA_SET)
                        .with_us(STATUS, status)
                        .with_uid(AFFECTED_SOP_CLASS_UID, &class)
                        .with_uid(AFFECTED_SOP_INSTANCE_UID, &instance);
                    a.conn.send_message(msg.pc_id, &rsp, None)?;
                }
                Some(C_GET_RSP) if msg.command.us(MESSAGE_ID_RESPONDED) == Some(message_id) => {
                    let o = outcome(&msg.command);
                    if !PENDING.contains(&o.status) {
                        return Ok(o);
                    }
                }
                other => {
                    return Err(DimseError::Protocol(format!(
                        "unexpected DIMSE message 0x{:04X} during C-GET",
                        other.unwrap_or_default()
                    )))
                }
            }
        }
    })
}
