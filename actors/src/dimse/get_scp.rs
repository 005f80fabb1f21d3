//! The C-GET SCP: the matching instances go back on the requestor's own association, one
//! C-STORE sub-operation each (transcoded when the requestor did not accept the stored
//! transfer syntax for that SOP class), with a pending C-GET-RSP after each.

use super::command::*;
use super::conn::{Conn, Incoming};
use super::error::DimseError;
use super::negotiate::AcceptedContext;
use super::part10::parse_part10;
use super::scp::{MoveOutcome, StoreContext};

/// Implemented by the server: what a C-GET sends.
pub trait GetHandler: Send + Sync + 'static {
    /// The public ids of the instances matching an identifier, or the DIMSE status of a failure.
    fn matching_instances(
        &self,
        identifier: &[u8],
        transfer_syntax: &str,
        ctx: &StoreContext,
    ) -> Result<Vec<String>, u16>;
    /// The stored Part-10 file of an instance.
    fn load(&self, instance: &str) -> Option<Vec<u8>>;
}

/// The file and the context to send it on: as stored if the requestor accepted its transfer
/// syntax, else transcoded to one the requestor accepted for its SOP class.
fn prepare(file: Vec<u8>, contexts: &[AcceptedContext]) -> Option<(u8, Vec<u8>)> {
    let info = parse_part10(&file).ok()?;
    let for_class = || {
        contexts
            .iter()
            .filter(|c| c.abstract_syntax == info.sop_class_uid)
    };
    if let Some(c) = for_class().find(|c| c.transfer_syntax == info.transfer_syntax) {
        return Some((c.id, file));
    }
    for c in for_class() {
        match crate::transcode::transcode(&file, &c.transfer_syntax, None) {
            Ok(out) => return Some((c.id, out)),
            Err(e) => tracing::debug!("C-GET: cannot transcode to {}: {e}", c.transfer_syntax),
        }
    }
    None
}

/// Sends one instance as a C-STORE sub-operation; its status (None: it could not be sent).
fn store_one(
    conn: &mut Conn,
    pc_id: u8,
    file: &[u8],
    message_id: u16,
) -> Result<Option<u16>, DimseError> {
    let Ok(info) = parse_part10(file) else {
        return Ok(None);
    };
    let rq = Command::new()
        .with_uid(AFFECTED_SOP_CLASS_UID, &info.sop_class_uid)
        .with_us(COMMAND_FIELD, C_STORE_RQ)
        .with_us(MESSAGE_ID, message_id)
        .with_us(PRIORITY, 0)
        .with_us(DATA_SET_TYPE, DATA_SET_PRESENT)
        .with_uid(AFFECTED_SOP_INSTANCE_UID, &info.sop_instance_uid);
    conn.send_message(pc_id, &rq, Some(&file[info.dataset_offset..]))?;
    loop {
        match conn.recv_message()? {
            Incoming::Message(msg) if msg.command.command_field() == Some(C_STORE_RSP) => {
                return Ok(Some(
                    msg.command.us(STATUS).unwrap_or(STATUS_CANNOT_UNDERSTAND),
                ));
            }
            // A cancel is answered by the final response of the C-GET.
            Incoming::Message(msg) if msg.command.command_field() == Some(C_CANCEL_RQ) => continue,
            Incoming::Message(msg) => {
                return Err(DimseError::Protocol(format!(
                    "unexpected DIMSE message 0x{:04X} during a C-GET",
                    msg.command.command_field().unwrap_or_default()
                )))
            }
            Incoming::ReleaseRq => {
                return Err(DimseError::Protocol("A-RELEASE-RQ during a C-GET".into()))
            }
        }
    }
}

fn response(
    message_id: u16,
    sop_class: &str,
    status: u16,
    remaining: Option<u16>,
    o: &MoveOutcome,
) -> Command {
    let mut rsp = Command::new()
        .with_us(COMMAND_FIELD, C_GET_RSP)
        .with_us(MESSAGE_ID_RESPONDED, message_id)
        .with_us(DATA_SET_TYPE, NO_DATA_SET)
        .with_us(STATUS, status)
        .with_uid(AFFECTED_SOP_CLASS_UID, sop_class);
    if let Some(r) = remaining {
        rsp = rsp.with_us(REMAINING_SUBOPERATIONS, r);
    }
    rsp.with_us(COMPLETED_SUBOPERATIONS, o.completed)
        .with_us(FAILED_SUBOPERATIONS, o.failed)
        .with_us(WARNING_SUBOPERATIONS, o.warning)
}

/// Answers a C-GET-RQ (`data`: its identifier, on the context `pc`).
pub fn serve_get(
    conn: &mut Conn,
    handler: &dyn GetHandler,
    pc: &AcceptedContext,
    message_id: u16,
    data: Option<Vec<u8>>,
    contexts: &[AcceptedContext],
    ctx: &StoreContext,
) -> Result<(), DimseError> {
    let sop_class = pc.abstract_syntax.clone();
    let matches = match data {
        Some(d) => handler.matching_instances(&d, &pc.transfer_syntax, ctx),
        None => Err(STATUS_CANNOT_UNDERSTAND),
    };
    let ids = match matches {
        Ok(ids) => ids,
        Err(status) => {
            let rsp = response(
                message_id,
                &sop_class,
                status,
                None,
                &MoveOutcome::default(),
            );
            return conn.send_message(pc.id, &rsp, None);
        }
    };
    let total = ids.len();
    let mut o = MoveOutcome::default();
    for (k, id) in ids.iter().enumerate() {
        let prepared = handler.load(id).and_then(|f| prepare(f, contexts));
        let status = match prepared {
            Some((pc_id, file)) => store_one(conn, pc_id, &file, (k + 1) as u16)?,
            None => None,
        };
        match status {
            Some(STATUS_SUCCESS) => o.completed += 1,
            Some(s) if s & 0xF000 == 0xB000 => o.warning += 1,
            _ => o.failed += 1,
        }
        let remaining = (total - k - 1) as u16;
        if remaining > 0 {
            let rsp = response(message_id, &sop_class, STATUS_PENDING, Some(remaining), &o);
            conn.send_message(pc.id, &rsp, None)?;
        }
    }
    let status = if o.failed == 0 && o.warning == 0 {
        STATUS_SUCCESS
    } else if o.completed == 0 && o.warning == 0 {
        STATUS_SUBOPERATIONS_FAILED
    } else {
        STATUS_SUBOPERATIONS_WARNING
    };
    let rsp = response(message_id, &sop_class, status, None, &o);
    conn.send_message(pc.id, &rsp, None)
}
