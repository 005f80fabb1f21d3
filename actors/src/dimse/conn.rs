//! PDU transport over a TCP stream (dicom-ul's PDU codec) and DIMSE message
//! (command + optional data set) fragmentation and reassembly.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;

use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu, MAXIMUM_PDU_SIZE};

use super::command::Command;
use super::error::DimseError;

/// Largest PDU we are willing to buffer, whatever the peer announced.
const MAX_INCOMING_PDU: usize = 64 * 1024 * 1024;
/// PDV payload size used when the peer announced "unlimited" (0).
const UNLIMITED_CHUNK: usize = 1024 * 1024;

/// One DIMSE message received on a presentation context.
#[derive(Debug)]
pub struct Message {
    pub pc_id: u8,
    pub command: Command,
    /// Data set bytes exactly as received (None if the command has none).
    pub data: Option<Vec<u8>>,
}

/// What the peer sent when we waited for a message.
#[derive(Debug)]
pub enum Incoming {
    Message(Message),
    /// A-RELEASE-RQ received between two messages.
    ReleaseRq,
}

/// A TCP connection carrying DICOM upper-layer PDUs.
pub struct Conn {
    stream: TcpStream,
    /// Max PDU length announced by the peer (0 = unlimited).
    pub peer_max_pdu: u32,
    pending: VecDeque<PDataValue>,
    write_buf: Vec<u8>,
}

impl Conn {
    /// Wraps a connected stream; enables TCP_NODELAY (without it, DCMTK peers
    /// wait 40 ms per message because of delayed ACKs).
    pub fn new(stream: TcpStream) -> Result<Self, DimseError> {
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            peer_max_pdu: 16384,
            pending: VecDeque::new(),
            write_buf: Vec::new(),
        })
    }

    /// The underlying stream.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Reads one whole PDU.
    pub fn recv_pdu(&mut self) -> Result<Pdu, DimseError> {
        let mut header = [0u8; 6];
        read_exact_or_closed(&mut self.stream, &mut header)?;
        let len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
        if len > MAX_INCOMING_PDU {
            return Err(DimseError::Protocol(format!(
                "PDU of {len} bytes is too large"
            )));
        }
        let mut buf = vec![0u8; 6 + len];
        buf[..6].copy_from_slice(&header);
        read_exact_or_closed(&mut self.stream, &mut buf[6..])?;
        match dicom_ul::read_pdu(&buf[..], MAXIMUM_PDU_SIZE, false) {
            Ok(Some(pdu)) => Ok(pdu),
            Ok(None) => Err(DimseError::Pdu("incomplete PDU".into())),
            Err(e) => Err(DimseError::Pdu(e.to_string())),
        }
    }

    /// Writes one PDU.
    pub fn send_pdu(&mut self, pdu: &Pdu) -> Result<(), DimseError> {
        self.write_buf.clear();
        dicom_ul::write_pdu(&mut self.write_buf, pdu)
            .map_err(|e| DimseError::Pdu(e.to_string()))?;
        self.stream.write_all(&self.write_buf)?;
        Ok(())
    }

    /// Sends an A-ABORT (service provider, reason not specified) and closes.
    pub fn abort(&mut self) {
        use dicom_ul::pdu::{AbortRQServiceProviderReason, AbortRQSource};
        let pdu = Pdu::AbortRQ {
            source: AbortRQSource::ServiceProvider(
                AbortRQServiceProviderReason::ReasonNotSpecified,
            ),
        };
        let _ = self.send_pdu(&pdu);
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// Sends a command and its optional data set, fragmented to the peer's
    /// max PDU length.
    pub fn send_message(
        &mut self,
        pc_id: u8,
        command: &Command,
        data: Option<&[u8]>,
    ) -> Result<(), DimseError> {
        self.send_fragments(pc_id, PDataValueType::Command, &command.encode())?;
        if let Some(data) = data {
            self.send_fragments(pc_id, PDataValueType::Data, data)?;
        }
        Ok(())
    }

    fn send_fragments(
        &mut self,
        pc_id: u8,
        kind: PDataValueType,
        bytes: &[u8],
    ) -> Result<(), DimseError> {
        // PDV item overhead: 4 (length) + 1 (context id) + 1 (control header)
        let chunk = match self.peer_max_pdu {
            0 => UNLIMITED_CHUNK,
            n => (n as usize).saturating_sub(6).max(64) & !1,
        };
        let mut pieces: Vec<&[u8]> = bytes.chunks(chunk).collect();
        if pieces.is_empty() {
            pieces.push(&[]);
        }
        let count = pieces.len();
        for (i, piece) in pieces.into_iter().enumerate() {
            let is_last = i + 1 == count;
            // fragments must have an even length; an odd data set (e.g. a deflated stream)
            // gets the trailing NUL padding of PS3.5 A.5
            let pad = usize::from(is_last && piece.len() % 2 == 1);
            self.write_p_data(pc_id, &kind, is_last, piece, pad)?;
        }
        Ok(())
    }

    /// Writes one P-DATA-TF PDU holding one PDV (PS3.8 9.3.5), copying the fragment once.
    fn write_p_data(
        &mut self,
        pc_id: u8,
        kind: &PDataValueType,
        is_last: bool,
        piece: &[u8],
        pad: usize,
    ) -> Result<(), DimseError> {
        let pdv_len = (piece.len() + pad + 2) as u32;
        let control = u8::from(matches!(kind, PDataValueType::Command)) | (u8::from(is_last) << 1);
        self.write_buf.clear();
        self.write_buf.extend_from_slice(&[0x04, 0]);
        self.write_buf
            .extend_from_slice(&(pdv_len + 4).to_be_bytes());
        self.write_buf.extend_from_slice(&pdv_len.to_be_bytes());
        self.write_buf.extend_from_slice(&[pc_id, control]);
        self.write_buf.extend_from_slice(piece);
        self.write_buf.resize(self.write_buf.len() + pad, 0);
        self.stream.write_all(&self.write_buf)?;
        Ok(())
    }

    /// Next PDV, or the non-P-DATA PDU that came instead.
    fn next_pdv(&mut self) -> Result<Result<PDataValue, Pdu>, DimseError> {
        loop {
            if let Some(pdv) = self.pending.pop_front() {
                return Ok(Ok(pdv));
            }
            match self.recv_pdu()? {
                Pdu::PData { data } => self.pending.extend(data),
                other => return Ok(Err(other)),
            }
        }
    }

    /// Receives one complete DIMSE message (command and its data set), or an
    /// A-RELEASE-RQ. A-ABORT gives `Err(Aborted)`, EOF `Err(ConnectionClosed)`.
    pub fn recv_message(&mut self) -> Result<Incoming, DimseError> {
        let mut pc_id: Option<u8> = None;
        let mut command_bytes = Vec::new();
        let mut command: Option<Command> = None;
        let mut data = Vec::new();
        loop {
            let pdv = match self.next_pdv()? {
                Ok(pdv) => pdv,
                Err(Pdu::ReleaseRQ) if pc_id.is_none() => return Ok(Incoming::ReleaseRq),
                Err(Pdu::AbortRQ { .. }) => return Err(DimseError::Aborted),
                Err(other) => {
                    return Err(DimseError::Protocol(format!(
                        "unexpected PDU {} while receiving a message",
                        other.short_description()
                    )));
                }
            };
            if pc_id.is_some_and(|id| id != pdv.presentation_context_id) {
                return Err(DimseError::Protocol(
                    "presentation context changed within a message".into(),
                ));
            }
            pc_id = Some(pdv.presentation_context_id);
            match (&pdv.value_type, &command) {
                (PDataValueType::Command, None) => {
                    command_bytes.extend_from_slice(&pdv.data);
                    if pdv.is_last {
                        let cmd = Command::decode(&command_bytes)?;
                        if !cmd.has_data_set() {
                            return Ok(Incoming::Message(Message {
                                pc_id: pdv.presentation_context_id,
                                command: cmd,
                                data: None,
                            }));
                        }
                        command = Some(cmd);
                    }
                }
                (PDataValueType::Data, Some(_)) => {
                    data.extend_from_slice(&pdv.data);
                    if pdv.is_last {
                        return Ok(Incoming::Message(Message {
                            pc_id: pdv.presentation_context_id,
                            command: command.take().unwrap_or_default(),
                            data: Some(data),
                        }));
                    }
                }
                (PDataValueType::Data, None) => {
                    return Err(DimseError::Protocol(
                        "data set fragment before command".into(),
                    ));
                }
                (PDataValueType::Command, Some(_)) => {
                    return Err(DimseError::Protocol(
                        "command fragment within data set".into(),
                    ));
                }
            }
        }
    }
}

fn read_exact_or_closed(stream: &mut TcpStream, buf: &mut [u8]) -> Result<(), DimseError> {
    match stream.read_exact(buf) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(DimseError::ConnectionClosed)
        }
        Err(e) => Err(DimseError::Io(e)),
    }
}
