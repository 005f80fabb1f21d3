//! C-ECHO / C-STORE service class user.

use std::net::{TcpStream, ToSocketAddrs};

use dicom_ul::pdu::{
    AssociationRQ, Pdu, PresentationContextProposed, PresentationContextResultReason,
    UserVariableItem,
};
use tracing::{debug, warn};

use super::command::*;
use super::conn::{Conn, Incoming};
use super::error::DimseError;
use super::negotiate::{
    trim_uid, AcceptedContext, APPLICATION_CONTEXT, EXPLICIT_LE, IMPLICIT_LE, VERIFICATION,
};
use super::part10::{
    parse_part10, Part10Info, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME,
};

/// Max PDU length we announce as association requestor.
pub const SCU_MAX_PDU: u32 = 16384;

/// A remote DICOM modality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAe {
    pub aet: String,
    pub host: String,
    pub port: u16,
    /// connection, read and write timeout (zero = none)
    pub timeout: std::time::Duration,
}

/// An established association, as requestor.
pub(super) struct Association {
    pub(super) conn: Conn,
    pub(super) contexts: Vec<AcceptedContext>,
    next_message_id: u16,
}

fn connect(remote: &RemoteAe) -> Result<TcpStream, DimseError> {
    let timeout = (!remote.timeout.is_zero()).then_some(remote.timeout);
    let mut last_error = None;
    for addr in (remote.host.as_str(), remote.port).to_socket_addrs()? {
        let attempt = match timeout {
            Some(t) => TcpStream::connect_timeout(&addr, t),
            None => TcpStream::connect(addr),
        };
        match attempt {
            Ok(stream) => {
                stream.set_read_timeout(timeout)?;
                stream.set_write_timeout(timeout)?;
                return Ok(stream);
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(DimseError::Io(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("cannot resolve {}", remote.host),
        )
    })))
}

impl Association {
    /// Connects and negotiates the given (abstract syntax, transfer syntaxes).
    pub(super) fn request(
        local_aet: &str,
        remote: &RemoteAe,
        proposed: &[(String, Vec<String>)],
    ) -> Result<Association, DimseError> {
        Self::request_with(local_aet, remote, proposed, Vec::new())
    }

    /// As [`Association::request`], with more user information items (role selections).
    pub(super) fn request_with(
        local_aet: &str,
        remote: &RemoteAe,
        proposed: &[(String, Vec<String>)],
        extra_items: Vec<UserVariableItem>,
    ) -> Result<Association, DimseError> {
        let mut conn = Conn::new(connect(remote)?)?;
        let presentation_contexts: Vec<PresentationContextProposed> = proposed
            .iter()
            .zip((1u8..=255).step_by(2))
            .map(|((abstract_syntax, ts), id)| PresentationContextProposed {
                id,
                abstract_syntax: abstract_syntax.clone(),
                transfer_syntaxes: ts.clone(),
            })
            .collect();
        let rq = Pdu::AssociationRQ(AssociationRQ {
            protocol_version: 1,
            calling_ae_title: local_aet.to_string(),
            called_ae_title: remote.aet.clone(),
            application_context_name: APPLICATION_CONTEXT.to_string(),
            presentation_contexts: presentation_contexts.clone(),
            user_variables: vec![
                UserVariableItem::MaxLength(SCU_MAX_PDU),
                UserVariableItem::ImplementationClassUID(IMPLEMENTATION_CLASS_UID.to_string()),
                UserVariableItem::ImplementationVersionName(
                    IMPLEMENTATION_VERSION_NAME.to_string(),
                ),
            ]
            .into_iter()
            .chain(extra_items)
            .collect(),
        });
        conn.send_pdu(&rq)?;
        let ac = match conn.recv_pdu()? {
            Pdu::AssociationAC(ac) => ac,
            Pdu::AssociationRJ(rj) => {
                return Err(DimseError::Rejected(format!(
                    "{:?}, {}",
                    rj.result, rj.source
                )));
            }
            Pdu::AbortRQ { .. } => return Err(DimseError::Aborted),
            other => {
                conn.abort();
                let what = other.short_description().to_string();
                return Err(DimseError::Protocol(format!(
                    "unexpected answer to A-ASSOCIATE-RQ: {what}"
                )));
            }
        };
        conn.peer_max_pdu = SCU_MAX_PDU;
        for uv in &ac.user_variables {
            if let UserVariableItem::MaxLength(n) = uv {
                conn.peer_max_pdu = *n;
            }
        }
        let contexts = ac
            .presentation_contexts
            .iter()
            .filter(|r| r.reason == PresentationContextResultReason::Acceptance)
            .filter_map(|r| {
                let pc = presentation_contexts.iter().find(|p| p.id == r.id)?;
                Some(AcceptedContext {
                    id: r.id,
                    abstract_syntax: pc.abstract_syntax.clone(),
                    transfer_syntax: trim_uid(&r.transfer_syntax).to_string(),
                })
            })
            .collect();
        Ok(Association {
            conn,
            contexts,
            next_message_id: 1,
        })
    }

    pub(super) fn context(&self, sop_class: &str, ts: &str) -> Option<u8> {
        self.contexts
            .iter()
            .find(|c| c.abstract_syntax == sop_class && c.transfer_syntax == ts)
            .map(|c| c.id)
    }

    /// The next message id of a request.
    pub(super) fn next_id(&mut self) -> u16 {
        let id = self.next_message_id;
        self.next_message_id = self.next_message_id.wrapping_add(1).max(1);
        id
    }

    /// Sends a request and waits for its response; returns the status.
    fn exchange(
        &mut self,
        pc_id: u8,
        rq: Command,
        data: Option<&[u8]>,
        rsp_field: u16,
    ) -> Result<u16, DimseError> {
        let message_id = self.next_id();
        let rq = rq.with_us(MESSAGE_ID, message_id);
        self.conn.send_message(pc_id, &rq, data)?;
        match self.conn.recv_message()? {
            Incoming::Message(msg)
                if msg.command.command_field() == Some(rsp_field)
                    && msg.command.us(MESSAGE_ID_RESPONDED) == Some(message_id) =>
            {
                msg.command
                    .us(STATUS)
                    .ok_or_else(|| DimseError::Protocol("response without Status".into()))
            }
            Incoming::Message(msg) => Err(DimseError::Protocol(format!(
                "unexpected DIMSE message 0x{:04X}",
                msg.command.command_field().unwrap_or_default()
            ))),
            Incoming::ReleaseRq => Err(DimseError::Protocol("unexpected A-RELEASE-RQ".into())),
        }
    }

    /// Graceful release (A-RELEASE-RQ / A-RELEASE-RP).
    fn release(mut self) -> Result<(), DimseError> {
        self.conn.send_pdu(&Pdu::ReleaseRQ)?;
        loop {
            match self.conn.recv_pdu()? {
                Pdu::ReleaseRP => break,
                Pdu::AbortRQ { .. } => return Err(DimseError::Aborted),
                Pdu::PData { .. } => continue,
                other => {
                    let what = other.short_description().to_string();
                    self.conn.abort();
                    return Err(DimseError::Protocol(format!(
                        "unexpected answer to A-RELEASE-RQ: {what}"
                    )));
                }
            }
        }
        let _ = self.conn.stream().shutdown(std::net::Shutdown::Both);
        Ok(())
    }

    /// Runs `f`; aborts the association if it fails, releases it otherwise.
    pub(super) fn run<T>(
        mut self,
        f: impl FnOnce(&mut Self) -> Result<T, DimseError>,
    ) -> Result<T, DimseError> {
        match f(&mut self) {
            Ok(value) => self.release().map(|()| value),
            Err(e) => {
                if !matches!(e, DimseError::Aborted | DimseError::ConnectionClosed) {
                    self.conn.abort();
                }
                Err(e)
            }
        }
    }
}

/// C-ECHO SCU.
pub fn echo(local_aet: &str, remote: &RemoteAe) -> Result<(), DimseError> {
    let proposed = [(
        VERIFICATION.to_string(),
        vec![EXPLICIT_LE.to_string(), IMPLICIT_LE.to_string()],
    )];
    let association = Association::request(local_aet, remote, &proposed)?;
    let status = association.run(|a| {
        let Some(pc) = a.contexts.first().map(|c| c.id) else {
            return Err(DimseError::NoPresentationContext {
                sop_class: VERIFICATION.into(),
                transfer_syntax: IMPLICIT_LE.into(),
            });
        };
        let rq = Command::new()
            .with_uid(AFFECTED_SOP_CLASS_UID, VERIFICATION)
            .with_us(COMMAND_FIELD, C_ECHO_RQ)
            .with_us(DATA_SET_TYPE, NO_DATA_SET);
        a.exchange(pc, rq, None, C_ECHO_RSP)
    })?;
    match status {
        STATUS_SUCCESS => Ok(()),
        s => Err(DimseError::Status(s)),
    }
}

fn is_uncompressed(ts: &str) -> bool {
    matches!(
        ts,
        "1.2.840.10008.1.2"
            | "1.2.840.10008.1.2.1"
            | "1.2.840.10008.1.2.2"
            | "1.2.840.10008.1.2.1.99"
    )
}

/// Presentation contexts for the files: one per distinct (SOP class, file's
/// transfer syntax), then one per SOP class of uncompressed files with the
/// Explicit/Implicit VR Little Endian fall-backs; 128 at most.
fn proposals(infos: &[Part10Info]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for info in infos {
        let pc = (
            info.sop_class_uid.clone(),
            vec![info.transfer_syntax.clone()],
        );
        if !out.contains(&pc) {
            out.push(pc);
        }
    }
    let fallback_ts = vec![EXPLICIT_LE.to_string(), IMPLICIT_LE.to_string()];
    for info in infos.iter().filter(|i| is_uncompressed(&i.transfer_syntax)) {
        let pc = (info.sop_class_uid.clone(), fallback_ts.clone());
        if !out.contains(&pc) {
            out.push(pc);
        }
    }
    out.truncate(128);
    out
}

/// C-STORE SCU with a result per file: `Ok(status)` once the peer answered,
/// `Err` if the file could not be sent (no suitable presentation context).
/// Association-level failures fail the whole call.
pub fn store_detailed(
    local_aet: &str,
    remote: &RemoteAe,
    files: &[Vec<u8>],
    move_originator: Option<(&str, u16)>,
) -> Result<Vec<Result<u16, DimseError>>, DimseError> {
    let infos = files
        .iter()
        .enumerate()
        .map(|(index, f)| {
            parse_part10(f).map_err(|reason| DimseError::InvalidFile { index, reason })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let association = Association::request(local_aet, remote, &proposals(&infos))?;
    association.run(|a| {
        let mut results = Vec::with_capacity(files.len());
        for (file, info) in files.iter().zip(&infos) {
            let Some(pc) = a.context(&info.sop_class_uid, &info.transfer_syntax) else {
                results.push(Err(DimseError::NoPresentationContext {
                    sop_class: info.sop_class_uid.clone(),
                    transfer_syntax: info.transfer_syntax.clone(),
                }));
                continue;
            };
            let mut rq = Command::new()
                .with_uid(AFFECTED_SOP_CLASS_UID, &info.sop_class_uid)
                .with_us(COMMAND_FIELD, C_STORE_RQ)
                .with_us(PRIORITY, 0)
                .with_us(DATA_SET_TYPE, 0x0000)
                .with_uid(AFFECTED_SOP_INSTANCE_UID, &info.sop_instance_uid);
            if let Some((aet, id)) = move_originator {
                rq = rq
                    .with_text(MOVE_ORIGINATOR_AET, aet)
                    .with_us(MOVE_ORIGINATOR_MESSAGE_ID, id);
            }
            let data = &file[info.dataset_offset..];
            let status = a.exchange(pc, rq, Some(data), C_STORE_RSP)?;
            debug!("C-STORE of {} → 0x{status:04X}", info.sop_instance_uid);
            results.push(Ok(status));
        }
        Ok(results)
    })
}

/// C-STORE SCU: sends the Part-10 files in ONE association; returns per-file
/// statuses. A file that cannot be sent unchanged (no accepted presentation
/// context for its SOP class in its own transfer syntax) gets 0x0122 and a
/// warning in the logs; use [`store_detailed`] to get the error itself.
pub fn store(
    local_aet: &str,
    remote: &RemoteAe,
    files: &[Vec<u8>],
    move_originator: Option<(&str, u16)>,
) -> Result<Vec<u16>, DimseError> {
    let results = store_detailed(local_aet, remote, files, move_originator)?;
    Ok(results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|e| {
                warn!("C-STORE SCU to {}: {e}", remote.aet);
                STATUS_SOP_CLASS_NOT_SUPPORTED
            })
        })
        .collect())
}
