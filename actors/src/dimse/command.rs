//! DIMSE command sets (group 0000), always encoded in Implicit VR Little Endian.

use super::error::DimseError;

/// (0000,0002) Affected SOP Class UID.
pub const AFFECTED_SOP_CLASS_UID: u16 = 0x0002;
/// (0000,0100) Command Field.
pub const COMMAND_FIELD: u16 = 0x0100;
/// (0000,0110) Message ID.
pub const MESSAGE_ID: u16 = 0x0110;
/// (0000,0120) Message ID Being Responded To.
pub const MESSAGE_ID_RESPONDED: u16 = 0x0120;
/// (0000,0700) Priority.
pub const PRIORITY: u16 = 0x0700;
/// (0000,0800) Command Data Set Type.
pub const DATA_SET_TYPE: u16 = 0x0800;
/// (0000,0900) Status.
pub const STATUS: u16 = 0x0900;
/// (0000,0902) Error Comment.
pub const ERROR_COMMENT: u16 = 0x0902;
/// (0000,1000) Affected SOP Instance UID.
pub const AFFECTED_SOP_INSTANCE_UID: u16 = 0x1000;
/// (0000,1030) Move Originator Application Entity Title.
pub const MOVE_ORIGINATOR_AET: u16 = 0x1030;
/// (0000,1031) Move Originator Message ID.
pub const MOVE_ORIGINATOR_MESSAGE_ID: u16 = 0x1031;

/// Command Data Set Type value meaning "no data set follows".
pub const NO_DATA_SET: u16 = 0x0101;

pub const C_STORE_RQ: u16 = 0x0001;
pub const C_STORE_RSP: u16 = 0x8001;
pub const C_FIND_RQ: u16 = 0x0020;
pub const C_FIND_RSP: u16 = 0x8020;
pub const C_CANCEL_RQ: u16 = 0x0FFF;
pub const C_MOVE_RQ: u16 = 0x0021;
pub const C_MOVE_RSP: u16 = 0x8021;
/// Move Destination (an AE title) and the sub-operation counts of a C-MOVE response.
pub const MOVE_DESTINATION: u16 = 0x0600;
pub const REMAINING_SUBOPERATIONS: u16 = 0x1020;
pub const COMPLETED_SUBOPERATIONS: u16 = 0x1021;
pub const FAILED_SUBOPERATIONS: u16 = 0x1022;
pub const WARNING_SUBOPERATIONS: u16 = 0x1023;
/// C-MOVE failures and warning (PS3.4 C.4.2.1.5).
pub const STATUS_MOVE_DESTINATION_UNKNOWN: u16 = 0xA801;
pub const STATUS_SUBOPERATIONS_FAILED: u16 = 0xA702;
pub const STATUS_SUBOPERATIONS_WARNING: u16 = 0xB000;
pub const N_EVENT_REPORT_RQ: u16 = 0x0100;
pub const N_EVENT_REPORT_RSP: u16 = 0x8100;
pub const N_ACTION_RQ: u16 = 0x0130;
pub const N_ACTION_RSP: u16 = 0x8130;
/// (0000,0003) Requested SOP Class UID, (0000,1001) Requested SOP Instance UID.
pub const REQUESTED_SOP_CLASS_UID: u16 = 0x0003;
pub const REQUESTED_SOP_INSTANCE_UID: u16 = 0x1001;
/// (0000,1002) Event Type ID, (0000,1008) Action Type ID.
pub const EVENT_TYPE_ID: u16 = 0x1002;
pub const ACTION_TYPE_ID: u16 = 0x1008;
pub const C_GET_RQ: u16 = 0x0010;
pub const C_GET_RSP: u16 = 0x8010;
pub const C_ECHO_RQ: u16 = 0x0030;
pub const C_ECHO_RSP: u16 = 0x8030;

/// Status: success.
pub const STATUS_SUCCESS: u16 = 0x0000;
/// A C-FIND answer follows.
pub const STATUS_PENDING: u16 = 0xFF00;
/// A data set is present (any value but 0x0101).
pub const DATA_SET_PRESENT: u16 = 0x0000;
/// Status: refused, SOP class not supported.
pub const STATUS_SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;
/// Status: unrecognized operation.
pub const STATUS_UNRECOGNIZED_OPERATION: u16 = 0x0211;
/// Status: error, cannot understand.
pub const STATUS_CANNOT_UNDERSTAND: u16 = 0xC000;

/// A decoded command set: the elements of group 0000 (except the group
/// length), sorted by element number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Command {
    elements: Vec<(u16, Vec<u8>)>,
}

impl Command {
    /// Creates an empty command set.
    pub fn new() -> Self {
        Self::default()
    }

    fn put(&mut self, element: u16, value: Vec<u8>) {
        match self.elements.binary_search_by_key(&element, |(e, _)| *e) {
            Ok(i) => self.elements[i].1 = value,
            Err(i) => self.elements.insert(i, (element, value)),
        }
    }

    /// Sets an US (unsigned short) element.
    pub fn with_us(mut self, element: u16, value: u16) -> Self {
        self.put(element, value.to_le_bytes().to_vec());
        self
    }

    /// Sets a UI element (padded with NUL to an even length).
    pub fn with_uid(mut self, element: u16, uid: &str) -> Self {
        let mut v = uid.as_bytes().to_vec();
        if v.len() % 2 == 1 {
            v.push(0);
        }
        self.put(element, v);
        self
    }

    /// Sets a text element (AE, LO...), padded with a space to an even length.
    pub fn with_text(mut self, element: u16, text: &str) -> Self {
        let mut v = text.as_bytes().to_vec();
        if v.len() % 2 == 1 {
            v.push(b' ');
        }
        self.put(element, v);
        self
    }

    /// Raw value of an element.
    pub fn get(&self, element: u16) -> Option<&[u8]> {
        self.elements
            .binary_search_by_key(&element, |(e, _)| *e)
            .ok()
            .map(|i| self.elements[i].1.as_slice())
    }

    /// Value of an US element.
    pub fn us(&self, element: u16) -> Option<u16> {
        let v = self.get(element)?;
        (v.len() >= 2).then(|| u16::from_le_bytes([v[0], v[1]]))
    }

    /// Value of a string element, without the padding.
    pub fn string(&self, element: u16) -> Option<String> {
        let v = self.get(element)?;
        let s = String::from_utf8_lossy(v);
        Some(s.trim_end_matches(['\0', ' ']).trim_start().to_string())
    }

    /// The Command Field (0000,0100).
    pub fn command_field(&self) -> Option<u16> {
        self.us(COMMAND_FIELD)
    }

    /// Whether a data set follows this command.
    pub fn has_data_set(&self) -> bool {
        self.us(DATA_SET_TYPE).is_some_and(|t| t != NO_DATA_SET)
    }

    /// Encodes the command set in Implicit VR Little Endian, with the
    /// Command Group Length (0000,0000) first.
    pub fn encode(&self) -> Vec<u8> {
        let body_len: usize = self.elements.iter().map(|(_, v)| 8 + v.len()).sum();
        let mut out = Vec::with_capacity(12 + body_len);
        out.extend_from_slice(&[0, 0, 0, 0, 4, 0, 0, 0]);
        out.extend_from_slice(&(body_len as u32).to_le_bytes());
        for (element, value) in &self.elements {
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&element.to_le_bytes());
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value);
        }
        out
    }

    /// Decodes a command set (Implicit VR Little Endian, group 0000 only).
    pub fn decode(bytes: &[u8]) -> Result<Self, DimseError> {
        let mut cmd = Command::new();
        let mut pos = 0usize;
        while pos < bytes.len() {
            let header = bytes
                .get(pos..pos + 8)
                .ok_or_else(|| DimseError::Protocol("truncated command element".into()))?;
            let group = u16::from_le_bytes([header[0], header[1]]);
            let element = u16::from_le_bytes([header[2], header[3]]);
            let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            if group != 0x0000 {
                return Err(DimseError::Protocol(format!(
                    "unexpected element ({group:04X},{element:04X}) in command set"
                )));
            }
            if len == u32::MAX {
                return Err(DimseError::Protocol(
                    "undefined length in command set".into(),
                ));
            }
            let start = pos + 8;
            let end = start
                .checked_add(len as usize)
                .filter(|end| *end <= bytes.len())
                .ok_or_else(|| DimseError::Protocol("truncated command element value".into()))?;
            if element != 0x0000 {
                cmd.put(element, bytes[start..end].to_vec());
            }
            pos = end;
        }
        if cmd.command_field().is_none() {
            return Err(DimseError::Protocol(
                "command set without Command Field".into(),
            ));
        }
        Ok(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let cmd = Command::new()
            .with_uid(AFFECTED_SOP_CLASS_UID, "1.2.840.10008.1.1")
            .with_us(COMMAND_FIELD, C_ECHO_RQ)
            .with_us(MESSAGE_ID, 7)
            .with_us(DATA_SET_TYPE, NO_DATA_SET)
            .with_text(MOVE_ORIGINATOR_AET, "ORTHANC");
        let bytes = cmd.encode();
        assert_eq!(bytes.len() % 2, 0);
        let group_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        assert_eq!(group_len, bytes.len() - 12);
        let back = Command::decode(&bytes).unwrap();
        assert_eq!(back, cmd);
        assert_eq!(back.command_field(), Some(C_ECHO_RQ));
        assert_eq!(back.us(MESSAGE_ID), Some(7));
        assert!(!back.has_data_set());
        assert_eq!(
            back.string(AFFECTED_SOP_CLASS_UID).unwrap(),
            "1.2.840.10008.1.1"
        );
        assert_eq!(back.string(MOVE_ORIGINATOR_AET).unwrap(), "ORTHANC");
    }

    #[test]
    fn malformed_commands_are_errors() {
        assert!(Command::decode(&[1, 2, 3]).is_err());
        // element claims 100 bytes but only 2 present
        let bad = [0, 0, 0, 1, 100, 0, 0, 0, 1, 0];
        assert!(Command::decode(&bad).is_err());
        // wrong group
        let bad = [8, 0, 0x10, 0, 2, 0, 0, 0, 1, 0];
        assert!(Command::decode(&bad).is_err());
        // no command field
        let no_field = Command::new().with_us(MESSAGE_ID, 1).encode();
        assert!(Command::decode(&no_field).is_err());
        assert!(Command::decode(&[]).is_err());
    }
}
