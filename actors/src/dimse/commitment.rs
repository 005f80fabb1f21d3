//! Storage commitment (push model): N-ACTION asks a remote to commit instances; the remote
//! answers later with an N-EVENT-REPORT on an association of its own. Both directions,
//! SCU and SCP, share the data sets of this file.

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_object::InMemDicomObject;
use dicom_ul::pdu::{RequestorRoles, UserVariableItem};

use super::command::*;
use super::conn::{Conn, Incoming, Message};
use super::error::DimseError;
use super::negotiate::{AcceptedContext, EXPLICIT_LE, IMPLICIT_LE};
use super::retrieve::{decode, encode};
use super::scp::StoreContext;
use super::scu::{Association, RemoteAe};

/// Storage Commitment Push Model SOP class, and its well-known instance.
pub const STORAGE_COMMITMENT: &str = "1.2.840.10008.1.20.1";
const COMMITMENT_INSTANCE: &str = "1.2.840.10008.1.20.1.1";
const TRANSACTION_UID: Tag = Tag(0x0008, 0x1195);
const REFERENCED_SOP_SEQUENCE: Tag = Tag(0x0008, 0x1199);
const FAILED_SOP_SEQUENCE: Tag = Tag(0x0008, 0x1198);
const REFERENCED_SOP_CLASS: Tag = Tag(0x0008, 0x1150);
const REFERENCED_SOP_INSTANCE: Tag = Tag(0x0008, 0x1155);
const FAILURE_REASON: Tag = Tag(0x0008, 0x1197);

/// One instance of a commitment: (SOP class UID, SOP instance UID).
pub type Reference = (String, String);

/// What a remote committed: the instances it holds, and the others with a failure reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitmentResult {
    pub success: Vec<Reference>,
    pub failures: Vec<(Reference, u16)>,
}

/// Implemented by the server: the two storage commitment messages it may receive.
pub trait CommitmentHandler: Send + Sync + 'static {
    /// A remote asks us to commit instances (we answer later with an event report).
    fn request(&self, transaction: String, references: Vec<Reference>, ctx: &StoreContext);
    /// A remote reports on a commitment we asked for.
    fn report(&self, transaction: String, result: CommitmentResult, ctx: &StoreContext);
}

fn item(r: &Reference, reason: Option<u16>) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    obj.put(DataElement::new(REFERENCED_SOP_CLASS, VR::UI, r.0.as_str()));
    obj.put(DataElement::new(
        REFERENCED_SOP_INSTANCE,
        VR::UI,
        r.1.as_str(),
    ));
    if let Some(reason) = reason {
        obj.put(DataElement::new(
            FAILURE_REASON,
            VR::US,
            PrimitiveValue::from(reason),
        ));
    }
    obj
}

fn dataset(transaction: &str, result: &CommitmentResult) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    obj.put(DataElement::new(TRANSACTION_UID, VR::UI, transaction));
    let ok: Vec<_> = result.success.iter().map(|r| item(r, None)).collect();
    obj.put(DataElement::new(
        REFERENCED_SOP_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(ok),
    ));
    if !result.failures.is_empty() {
        let failed: Vec<_> = result
            .failures
            .iter()
            .map(|(r, why)| item(r, Some(*why)))
            .collect();
        obj.put(DataElement::new(
            FAILED_SOP_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(failed),
        ));
    }
    obj
}

fn text(obj: &InMemDicomObject, tag: Tag) -> String {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

fn references(obj: &InMemDicomObject, tag: Tag) -> Vec<(Reference, u16)> {
    let Some(items) = obj.element(tag).ok().and_then(|e| e.items()) else {
        return Vec::new();
    };
    items
        .iter()
        .map(|i| {
            let reason = i
                .element(FAILURE_REASON)
                .ok()
                .and_then(|e| e.to_int::<u16>().ok());
            let r = (
                text(i, REFERENCED_SOP_CLASS),
                text(i, REFERENCED_SOP_INSTANCE),
            );
            (r, reason.unwrap_or(0x0110))
        })
        .collect()
}

fn uncompressed() -> Vec<String> {
    vec![EXPLICIT_LE.to_string(), IMPLICIT_LE.to_string()]
}

fn final_status(
    a: &mut Association,
    pc: u8,
    rq: Command,
    data: &[u8],
    rsp: u16,
) -> Result<(), DimseError> {
    let id = a.next_id();
    a.conn
        .send_message(pc, &rq.with_us(MESSAGE_ID, id), Some(data))?;
    match a.conn.recv_message()? {
        Incoming::Message(m) if m.command.command_field() == Some(rsp) => {
            match m.command.us(STATUS).unwrap_or(STATUS_CANNOT_UNDERSTAND) {
                STATUS_SUCCESS => Ok(()),
                s => Err(DimseError::Status(s)),
            }
        }
        _ => Err(DimseError::Protocol(
            "unexpected answer to a storage commitment".into(),
        )),
    }
}

fn context(a: &Association) -> Result<(u8, String), DimseError> {
    a.contexts
        .iter()
        .find(|c| c.abstract_syntax == STORAGE_COMMITMENT)
        .map(|c| (c.id, c.transfer_syntax.clone()))
        .ok_or_else(|| DimseError::NoPresentationContext {
            sop_class: STORAGE_COMMITMENT.into(),
            transfer_syntax: IMPLICIT_LE.into(),
        })
}

/// N-ACTION SCU: asks `remote` to commit the instances of `transaction`.
pub fn request(
    local_aet: &str,
    remote: &RemoteAe,
    transaction: &str,
    refs: &[Reference],
) -> Result<(), DimseError> {
    let proposed = [(STORAGE_COMMITMENT.to_string(), uncompressed())];
    let association = Association::request(local_aet, remote, &proposed)?;
    association.run(|a| {
        let (pc, ts) = context(a)?;
        let asked = CommitmentResult {
            success: refs.to_vec(),
            failures: Vec::new(),
        };
        let rq = Command::new()
            .with_us(COMMAND_FIELD, N_ACTION_RQ)
            .with_uid(REQUESTED_SOP_CLASS_UID, STORAGE_COMMITMENT)
            .with_uid(REQUESTED_SOP_INSTANCE_UID, COMMITMENT_INSTANCE)
            .with_us(ACTION_TYPE_ID, 1)
            .with_us(DATA_SET_TYPE, DATA_SET_PRESENT);
        final_status(
            a,
            pc,
            rq,
            &encode(&dataset(transaction, &asked), &ts)?,
            N_ACTION_RSP,
        )
    })
}

/// N-EVENT-REPORT (we are the SCP of the commitment, on an association we open).
pub fn report(
    local_aet: &str,
    remote: &RemoteAe,
    transaction: &str,
    result: &CommitmentResult,
) -> Result<(), DimseError> {
    let proposed = [(STORAGE_COMMITMENT.to_string(), uncompressed())];
    let role = UserVariableItem::ScuScpRoleSelectionSubItem(
        STORAGE_COMMITMENT.to_string(),
        RequestorRoles {
            scu: false,
            scp: true,
        },
    );
    let association = Association::request_with(local_aet, remote, &proposed, vec![role])?;
    association.run(|a| {
        let (pc, ts) = context(a)?;
        let event = if result.failures.is_empty() { 1 } else { 2 };
        let rq = Command::new()
            .with_us(COMMAND_FIELD, N_EVENT_REPORT_RQ)
            .with_uid(AFFECTED_SOP_CLASS_UID, STORAGE_COMMITMENT)
            .with_uid(AFFECTED_SOP_INSTANCE_UID, COMMITMENT_INSTANCE)
            .with_us(EVENT_TYPE_ID, event)
            .with_us(DATA_SET_TYPE, DATA_SET_PRESENT);
        final_status(
            a,
            pc,
            rq,
            &encode(&dataset(transaction, result), &ts)?,
            N_EVENT_REPORT_RSP,
        )
    })
}

/// Answers an N-ACTION-RQ or an N-EVENT-REPORT-RQ received by the SCP.
pub fn serve(
    conn: &mut Conn,
    handler: Option<&dyn CommitmentHandler>,
    pc: &AcceptedContext,
    msg: Message,
    ctx: &StoreContext,
) -> Result<(), DimseError> {
    let field = msg.command.command_field().unwrap_or_default();
    let message_id = msg.command.us(MESSAGE_ID).unwrap_or_default();
    let data = msg.data.as_deref().map(|d| decode(d, &pc.transfer_syntax));
    let status = match (handler, data) {
        (Some(h), Some(Ok(ds))) => {
            let transaction = text(&ds, TRANSACTION_UID);
            if field == N_ACTION_RQ {
                let refs = references(&ds, REFERENCED_SOP_SEQUENCE)
                    .into_iter()
                    .map(|(r, _)| r);
                h.request(transaction, refs.collect(), ctx);
            } else {
                let result = CommitmentResult {
                    success: references(&ds, REFERENCED_SOP_SEQUENCE)
                        .into_iter()
                        .map(|(r, _)| r)
                        .collect(),
                    failures: references(&ds, FAILED_SOP_SEQUENCE),
                };
                h.report(transaction, result, ctx);
            }
            STATUS_SUCCESS
        }
        (None, _) => STATUS_UNRECOGNIZED_OPERATION,
        _ => STATUS_CANNOT_UNDERSTAND,
    };
    let (rsp_field, instance_tag) = if field == N_ACTION_RQ {
        (N_ACTION_RSP, REQUESTED_SOP_INSTANCE_UID)
    } else {
        (N_EVENT_REPORT_RSP, AFFECTED_SOP_INSTANCE_UID)
    };
    let mut rsp = Command::new()
        .with_us(COMMAND_FIELD, rsp_field)
        .with_us(MESSAGE_ID_RESPONDED, message_id)
        .with_us(DATA_SET_TYPE, NO_DATA_SET)
        .with_us(STATUS, status)
        .with_uid(AFFECTED_SOP_CLASS_UID, STORAGE_COMMITMENT);
    if let Some(instance) = msg.command.string(instance_tag) {
        rsp = rsp.with_uid(AFFECTED_SOP_INSTANCE_UID, &instance);
    }
    if field == N_ACTION_RQ {
        rsp = rsp.with_us(ACTION_TYPE_ID, 1);
    } else if let Some(event) = msg.command.us(EVENT_TYPE_ID) {
        rsp = rsp.with_us(EVENT_TYPE_ID, event);
    }
    conn.send_message(pc.id, &rsp, None)
}
