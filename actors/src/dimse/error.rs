//! Error type of the DIMSE layer.

/// Errors of the DICOM network layer (association, PDU and DIMSE levels).
#[derive(Debug, thiserror::Error)]
pub enum DimseError {
    /// Socket-level failure (connect, read, write, timeout).
    #[error("network I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A PDU could not be encoded or decoded.
    #[error("PDU error: {0}")]
    Pdu(String),
    /// The peer rejected the association (A-ASSOCIATE-RJ).
    #[error("association rejected by the remote AE: {0}")]
    Rejected(String),
    /// The peer aborted the association (A-ABORT).
    #[error("association aborted by the remote AE")]
    Aborted,
    /// The TCP connection was closed in the middle of the association.
    #[error("connection closed by the remote AE")]
    ConnectionClosed,
    /// The peer violated the protocol (unexpected PDU, malformed command...).
    #[error("DICOM protocol error: {0}")]
    Protocol(String),
    /// A DIMSE operation completed with a non-success status.
    #[error("DIMSE failure status 0x{0:04X}")]
    Status(u16),
    /// An input file is not a valid DICOM Part-10 file.
    #[error("file #{index} is not a valid DICOM Part-10 file: {reason}")]
    InvalidFile { index: usize, reason: String },
    /// No accepted presentation context can carry this file unchanged.
    #[error(
        "no accepted presentation context for SOP class {sop_class} in transfer syntax \
         {transfer_syntax} (transcoding is not supported)"
    )]
    NoPresentationContext {
        sop_class: String,
        transfer_syntax: String,
    },
}
