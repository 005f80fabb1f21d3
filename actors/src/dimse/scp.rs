//! C-ECHO / C-STORE service class provider.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use dicom_ul::pdu::{
    AssociationRJ, AssociationRJResult, AssociationRJServiceProviderPresentationReason,
    AssociationRJServiceUserReason, AssociationRJSource, Pdu,
};
use tracing::{debug, info, warn};

use super::command::*;
use super::conn::{Conn, Incoming, Message};
use super::error::DimseError;
use super::negotiate::{negotiate, AcceptedContext, Decision, VERIFICATION};
use super::part10::build_part10;

/// Who sent an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreContext {
    pub calling_aet: String,
    pub called_aet: String,
    pub remote_ip: String,
}

/// Implemented by the server: stores one received instance (a complete DICOM Part-10 file).
pub trait StoreHandler: Send + Sync + 'static {
    /// Ok(()) → DIMSE status 0x0000; Err(status) → that status (e.g. 0xA700 out of resources, 0xC000 cannot understand).
    fn store(&self, file: Vec<u8>, ctx: &StoreContext) -> Result<(), u16>;
}

/// Implemented by the server: answers a C-FIND (Patient Root or Study Root).
pub trait FindHandler: Send + Sync + 'static {
    /// The answers to an identifier (data sets in `transfer_syntax`, as received), or the
    /// DIMSE status of a failure.
    fn find(
        &self,
        sop_class: &str,
        identifier: &[u8],
        transfer_syntax: &str,
        ctx: &StoreContext,
    ) -> Result<Vec<Vec<u8>>, u16>;
}

/// How the sub-operations of a C-MOVE ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MoveOutcome {
    pub completed: u16,
    pub failed: u16,
    pub warning: u16,
}

/// Implemented by the server: answers a C-MOVE (Patient Root or Study Root) by storing the
/// matching instances to `destination` (an AE title).
pub trait MoveHandler: Send + Sync + 'static {
    fn retrieve(
        &self,
        identifier: &[u8],
        transfer_syntax: &str,
        destination: &str,
        message_id: u16,
        ctx: &StoreContext,
    ) -> Result<MoveOutcome, u16>;
}

/// The kinds of DICOM requests the access rules tell apart (Orthanc's `DicomRequestType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Echo,
    Store,
    Find,
    FindWorklist,
    Move,
    Get,
    NAction,
    NEventReport,
}

/// Implemented by the server: who may open an association, and send what.
pub trait AccessHandler: Send + Sync + 'static {
    /// Whether an association from this AE may be accepted at all.
    fn allowed_connection(&self, ctx: &StoreContext) -> bool;
    /// Whether this AE may send this request (refused: the association is aborted, as Orthanc).
    fn allowed(&self, request: Request, ctx: &StoreContext) -> bool;
}

/// What the SCP hands its requests to.
#[derive(Clone)]
pub struct Handlers {
    pub store: Arc<dyn StoreHandler>,
    pub find: Option<Arc<dyn FindHandler>>,
    pub moves: Option<Arc<dyn MoveHandler>>,
    pub gets: Option<Arc<dyn super::get_scp::GetHandler>>,
    pub commitment: Option<Arc<dyn super::commitment::CommitmentHandler>>,
    pub access: Option<Arc<dyn AccessHandler>>,
}

/// Configuration of the SCP (names of the matching Orthanc options in comments).
#[derive(Debug, Clone)]
pub struct ScpConfig {
    /// our AE title ("DicomAet")
    pub aet: String,
    /// "DicomCheckCalledAet" (comparison is case-insensitive)
    pub check_called_aet: bool,
    /// explicit UIDs (already expanded from wildcards)
    pub accepted_transfer_syntaxes: Vec<String>,
    /// "UnknownSopClassAccepted"
    pub accept_unknown_sop_classes: bool,
    /// "MaximumPduLength"
    pub max_pdu_length: u32,
    /// C-FIND is offered (a [`FindHandler`] is given).
    pub find: bool,
    /// C-MOVE is offered (a [`MoveHandler`] is given).
    pub moves: bool,
    /// C-GET is offered (a [`super::get_scp::GetHandler`] is given).
    pub gets: bool,
    /// Storage commitment is offered (a [`super::commitment::CommitmentHandler`] is given).
    pub commitment: bool,
    /// "DicomScpTimeout": read/write timeout on the socket (zero = none)
    pub timeout: Duration,
    /// "DicomThreadsCount": at most this many associations run at once. An
    /// extra association waits (un-negotiated, in the accept queue) until a
    /// slot frees up, for at most `timeout` (5 s if zero); then it is refused
    /// with a transient A-ASSOCIATE-RJ "local limit exceeded".
    pub max_associations: usize,
    /// Settings changed at run time (`/tools/accepted-transfer-syntaxes`,
    /// `/tools/unknown-sop-class-accepted`): when set, they replace the two fields above for
    /// every new association.
    pub live: Option<Arc<LiveSettings>>,
}

/// The negotiation settings that REST calls can change while the SCP runs.
#[derive(Debug, Default)]
pub struct LiveSettings {
    /// Explicit transfer syntax UIDs (already expanded from wildcards).
    pub accepted_transfer_syntaxes: std::sync::RwLock<Vec<String>>,
    pub accept_unknown_sop_classes: std::sync::atomic::AtomicBool,
}

impl Default for ScpConfig {
    fn default() -> Self {
        ScpConfig {
            aet: "ORTHANC".into(),
            check_called_aet: false,
            accepted_transfer_syntaxes: crate::model::transfer_syntax::KNOWN_SYNTAXES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            accept_unknown_sop_classes: false,
            max_pdu_length: 16384,
            find: false,
            moves: false,
            gets: false,
            commitment: false,
            timeout: Duration::from_secs(30),
            max_associations: 4,
            live: None,
        }
    }
}

fn opt_timeout(t: Duration) -> Option<Duration> {
    (!t.is_zero()).then_some(t)
}

type Slots = Arc<(Mutex<usize>, Condvar)>;

/// Frees an association slot when dropped (even if the handler panicked).
struct SlotGuard(Slots);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let (lock, cvar) = &*self.0;
        let mut n = lock.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        cvar.notify_one();
    }
}

fn acquire(slots: &Slots, max: usize, wait: Duration, stop: &AtomicBool) -> Option<SlotGuard> {
    let (lock, cvar) = &**slots;
    let deadline = Instant::now() + wait;
    let mut n = lock.lock().unwrap_or_else(|e| e.into_inner());
    while *n >= max {
        let now = Instant::now();
        if now >= deadline || stop.load(Ordering::SeqCst) {
            return None;
        }
        let step = (deadline - now).min(Duration::from_millis(100));
        n = cvar
            .wait_timeout(n, step)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    *n += 1;
    Some(SlotGuard(slots.clone()))
}

/// Runs the SCP on a bound listener until `stop` is set; one thread per association, bounded.
/// Associations still running when `stop` is set end on their own (release,
/// abort or socket timeout); `serve` does not wait for them.
pub fn serve(
    listener: TcpListener,
    config: Arc<ScpConfig>,
    handler: Handlers,
    stop: Arc<AtomicBool>,
) {
    if let Err(e) = listener.set_nonblocking(true) {
        warn!("DICOM SCP: cannot make the listener non-blocking: {e}");
        return;
    }
    let slots: Slots = Arc::new((Mutex::new(0), Condvar::new()));
    let max = config.max_associations.max(1);
    let wait = opt_timeout(config.timeout).unwrap_or(Duration::from_secs(5));
    while !stop.load(Ordering::SeqCst) {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                wait_readable(&listener, Duration::from_millis(200));
                continue;
            }
            Err(e) => {
                warn!("DICOM SCP: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if let Err(e) = stream.set_nonblocking(false) {
            warn!("DICOM SCP: cannot configure socket from {peer}: {e}");
            continue;
        }
        let Some(guard) = acquire(&slots, max, wait, &stop) else {
            refuse_busy(stream, peer);
            continue;
        };
        let (config, handler) = (config.clone(), handler.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("dicom-scp-{peer}"))
            .spawn(move || {
                let _guard = guard;
                run_association(stream, peer, &config, &handler);
            });
        if let Err(e) = spawned {
            warn!("DICOM SCP: cannot spawn association thread: {e}");
        }
    }
    debug!("DICOM SCP: stopped");
}

/// Waits until the listener has a connection to accept (or `timeout`, to look at the stop
/// flag again): an association starts at once, where sleeping between polls delayed each
/// by milliseconds.
#[cfg(unix)]
fn wait_readable(listener: &TcpListener, timeout: Duration) {
    use std::os::fd::AsRawFd;
    let mut fd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut fd, 1, timeout.as_millis() as libc::c_int) };
}

#[cfg(not(unix))]
fn wait_readable(_listener: &TcpListener, _timeout: Duration) {
    std::thread::sleep(Duration::from_millis(5));
}

/// Reads the A-ASSOCIATE-RQ of a connection we have no room for and refuses it.
fn refuse_busy(stream: TcpStream, peer: SocketAddr) {
    warn!("DICOM SCP: too many associations, refusing {peer}");
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let Ok(mut conn) = Conn::new(stream) else {
        return;
    };
    if let Ok(Pdu::AssociationRQ(_)) = conn.recv_pdu() {
        let rj = Pdu::AssociationRJ(AssociationRJ {
            result: AssociationRJResult::Transient,
            source: AssociationRJSource::ServiceProviderPresentation(
                AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
            ),
        });
        let _ = conn.send_pdu(&rj);
    }
}

/// Handles one association from A-ASSOCIATE-RQ to release/abort. Never panics
/// by itself; errors end this association only.
fn run_association(stream: TcpStream, peer: SocketAddr, config: &ScpConfig, handler: &Handlers) {
    let timeout = opt_timeout(config.timeout);
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return;
    }
    let mut conn = match Conn::new(stream) {
        Ok(conn) => conn,
        Err(e) => return debug!("DICOM SCP: {peer}: {e}"),
    };
    let rq = match conn.recv_pdu() {
        Ok(Pdu::AssociationRQ(rq)) => rq,
        Ok(other) => {
            debug!(
                "DICOM SCP: {peer}: expected A-ASSOCIATE-RQ, got {}",
                other.short_description()
            );
            return conn.abort();
        }
        Err(e) => return debug!("DICOM SCP: {peer}: no association request: {e}"),
    };
    let current;
    let config = match &config.live {
        Some(live) => {
            let mut c = config.clone();
            if let Ok(ts) = live.accepted_transfer_syntaxes.read() {
                c.accepted_transfer_syntaxes = ts.clone();
            }
            c.accept_unknown_sop_classes = live
                .accept_unknown_sop_classes
                .load(std::sync::atomic::Ordering::Relaxed);
            current = c;
            &current
        }
        None => config,
    };
    let ctx = StoreContext {
        calling_aet: rq.calling_ae_title.trim().to_string(),
        called_aet: rq.called_ae_title.trim().to_string(),
        remote_ip: peer.ip().to_string(),
    };
    if handler
        .access
        .as_ref()
        .is_some_and(|a| !a.allowed_connection(&ctx))
    {
        info!(
            "DICOM SCP: association from unknown AET {} ({peer}) rejected",
            ctx.calling_aet
        );
        let rj =
            super::negotiate::reject(AssociationRJServiceUserReason::CallingAETitleNotRecognized);
        let _ = conn.send_pdu(&rj);
        return;
    }
    let contexts = match negotiate(&rq, config) {
        Decision::Reject { rj, reason } => {
            info!("DICOM SCP: association from {peer} rejected: {reason}");
            let _ = conn.send_pdu(&rj);
            return;
        }
        Decision::Accept {
            ac,
            contexts,
            peer_max_pdu,
        } => {
            conn.peer_max_pdu = peer_max_pdu;
            if let Err(e) = conn.send_pdu(&ac) {
                return debug!("DICOM SCP: {peer}: cannot send A-ASSOCIATE-AC: {e}");
            }
            contexts
        }
    };
    debug!(
        "DICOM SCP: association from {} ({peer}) accepted",
        ctx.calling_aet
    );
    loop {
        let result = match conn.recv_message() {
            Ok(Incoming::ReleaseRq) => {
                let _ = conn.send_pdu(&Pdu::ReleaseRP);
                debug!("DICOM SCP: association from {} released", ctx.calling_aet);
                return;
            }
            Ok(Incoming::Message(msg)) => handle_message(&mut conn, msg, &contexts, &ctx, handler),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {}
            Err(DimseError::Aborted) => return debug!("DICOM SCP: {peer} aborted the association"),
            Err(DimseError::ConnectionClosed) => {
                return info!("DICOM SCP: {peer} closed the connection without release");
            }
            Err(e) => {
                warn!("DICOM SCP: aborting association with {peer}: {e}");
                return conn.abort();
            }
        }
    }
}

fn handle_message(
    conn: &mut Conn,
    msg: Message,
    contexts: &[AcceptedContext],
    ctx: &StoreContext,
    handler: &Handlers,
) -> Result<(), DimseError> {
    let pc = contexts.iter().find(|c| c.id == msg.pc_id).ok_or_else(|| {
        DimseError::Protocol(format!("unaccepted presentation context {}", msg.pc_id))
    })?;
    let cmd = &msg.command;
    let field = cmd.command_field().unwrap_or_default();
    let message_id = cmd
        .us(MESSAGE_ID)
        .ok_or_else(|| DimseError::Protocol("request without Message ID".into()))?;
    let sop_class = cmd.string(AFFECTED_SOP_CLASS_UID).unwrap_or_default();
    let sop_instance = cmd.string(AFFECTED_SOP_INSTANCE_UID).unwrap_or_default();
    let request = match field {
        C_ECHO_RQ => Some(Request::Echo),
        C_STORE_RQ => Some(Request::Store),
        C_FIND_RQ if sop_class == super::retrieve::WORKLIST_FIND => Some(Request::FindWorklist),
        C_FIND_RQ => Some(Request::Find),
        C_MOVE_RQ => Some(Request::Move),
        C_GET_RQ => Some(Request::Get),
        N_ACTION_RQ => Some(Request::NAction),
        N_EVENT_REPORT_RQ => Some(Request::NEventReport),
        _ => None,
    };
    if let (Some(access), Some(request)) = (&handler.access, request) {
        if !access.allowed(request, ctx) {
            return Err(DimseError::Protocol(format!(
                "{request:?} from {} is not allowed by the configuration (DicomModalities)",
                ctx.calling_aet
            )));
        }
    }
    let (rsp_field, status) = match field {
        C_ECHO_RQ => (C_ECHO_RSP, STATUS_SUCCESS),
        C_STORE_RQ => {
            let status = match msg.data {
                Some(data) if !sop_class.is_empty() && !sop_instance.is_empty() => {
                    let file = build_part10(&sop_class, &sop_instance, &pc.transfer_syntax, &data);
                    drop(data);
                    match handler.store.store(file, ctx) {
                        Ok(()) => STATUS_SUCCESS,
                        Err(status) => status,
                    }
                }
                _ => STATUS_CANNOT_UNDERSTAND,
            };
            (C_STORE_RSP, status)
        }
        C_FIND_RQ => {
            let answers = match (&handler.find, msg.data) {
                (Some(find), Some(data)) => find.find(&sop_class, &data, &pc.transfer_syntax, ctx),
                _ => Err(STATUS_CANNOT_UNDERSTAND),
            };
            let status = match answers {
                Ok(answers) => {
                    for answer in answers {
                        let pending = Command::new()
                            .with_us(COMMAND_FIELD, C_FIND_RSP)
                            .with_us(MESSAGE_ID_RESPONDED, message_id)
                            .with_us(DATA_SET_TYPE, DATA_SET_PRESENT)
                            .with_us(STATUS, STATUS_PENDING)
                            .with_uid(AFFECTED_SOP_CLASS_UID, &sop_class);
                        conn.send_message(msg.pc_id, &pending, Some(&answer))?;
                    }
                    STATUS_SUCCESS
                }
                Err(status) => status,
            };
            (C_FIND_RSP, status)
        }
        N_ACTION_RQ | N_EVENT_REPORT_RQ => {
            let h = handler.commitment.as_deref();
            return super::commitment::serve(conn, h, pc, msg, ctx);
        }
        C_GET_RQ => {
            return match &handler.gets {
                Some(gets) => super::get_scp::serve_get(
                    conn,
                    gets.as_ref(),
                    pc,
                    message_id,
                    msg.data,
                    contexts,
                    ctx,
                ),
                None => {
                    let rsp = Command::new()
                        .with_us(COMMAND_FIELD, C_GET_RSP)
                        .with_us(MESSAGE_ID_RESPONDED, message_id)
                        .with_us(DATA_SET_TYPE, NO_DATA_SET)
                        .with_us(STATUS, STATUS_UNRECOGNIZED_OPERATION);
                    conn.send_message(msg.pc_id, &rsp, None)
                }
            };
        }
        C_MOVE_RQ => {
            let destination = cmd.string(MOVE_DESTINATION).unwrap_or_default();
            let outcome = match (&handler.moves, msg.data) {
                (Some(moves), Some(data)) => moves.retrieve(
                    &data,
                    &pc.transfer_syntax,
                    destination.trim(),
                    message_id,
                    ctx,
                ),
                _ => Err(STATUS_CANNOT_UNDERSTAND),
            };
            let (status, counts) = match outcome {
                Ok(o) if o.failed == 0 && o.warning == 0 => (STATUS_SUCCESS, o),
                Ok(o) if o.completed == 0 && o.warning == 0 => (STATUS_SUBOPERATIONS_FAILED, o),
                Ok(o) => (STATUS_SUBOPERATIONS_WARNING, o),
                Err(status) => (status, MoveOutcome::default()),
            };
            let rsp = Command::new()
                .with_us(COMMAND_FIELD, C_MOVE_RSP)
                .with_us(MESSAGE_ID_RESPONDED, message_id)
                .with_us(DATA_SET_TYPE, NO_DATA_SET)
                .with_us(STATUS, status)
                .with_uid(AFFECTED_SOP_CLASS_UID, &sop_class)
                .with_us(REMAINING_SUBOPERATIONS, 0)
                .with_us(COMPLETED_SUBOPERATIONS, counts.completed)
                .with_us(FAILED_SUBOPERATIONS, counts.failed)
                .with_us(WARNING_SUBOPERATIONS, counts.warning);
            return conn.send_message(msg.pc_id, &rsp, None);
        }
        // Nothing runs in the background to cancel: the answers are already sent.
        C_CANCEL_RQ => return Ok(()),
        f if f & 0x8000 != 0 => {
            return Err(DimseError::Protocol(format!(
                "unexpected response 0x{f:04X}"
            )));
        }
        f => {
            info!(
                "DICOM SCP: unsupported DIMSE command 0x{f:04X} from {}",
                ctx.calling_aet
            );
            (f | 0x8000, STATUS_UNRECOGNIZED_OPERATION)
        }
    };
    let sop_class = match (sop_class.is_empty(), field) {
        (true, C_ECHO_RQ) => VERIFICATION.to_string(),
        _ => sop_class,
    };
    let mut rsp = Command::new()
        .with_us(COMMAND_FIELD, rsp_field)
        .with_us(MESSAGE_ID_RESPONDED, message_id)
        .with_us(DATA_SET_TYPE, NO_DATA_SET)
        .with_us(STATUS, status);
    if !sop_class.is_empty() {
        rsp = rsp.with_uid(AFFECTED_SOP_CLASS_UID, &sop_class);
    }
    if !sop_instance.is_empty() {
        rsp = rsp.with_uid(AFFECTED_SOP_INSTANCE_UID, &sop_instance);
    }
    conn.send_message(msg.pc_id, &rsp, None)
}
