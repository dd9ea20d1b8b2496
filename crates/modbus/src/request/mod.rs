//! Request PDUs: the [`Request`] type and its parse entry point. Start here.
//!
//! Spec: Modbus Application Protocol V1.1b3 §6.1-§6.21, one arm per function code, each checked
//! in the order of the spec's state diagrams: every structural, quantity and byte-count check
//! (exception 03) before the address check (exception 02); unknown function codes, FC 8
//! sub-functions and FC 43 MEI types give 01. Every arm consumes the PDU exactly: a trailing byte
//! is an error. The parsed [`Request`] borrows its data from the PDU (no allocation).
//!
//! The rest of the request code is split by what a reader looks for:
//! - [`fast`]: the inlined fast path of [`Request::parse`] for the common shapes (FC 1-6, 15,
//!   16, 23), and the test that it agrees with the full parser;
//! - [`parse`]: the full parser, one arm per function code, with the FC 8, 20 and 21 data rules;
//! - [`fields`]: the field checks (quantity, range, byte count, coil value) that the response
//!   parser shares;
//! - [`view`]: the policy view of a parsed request (function, access, sub-function, ranges,
//!   written values, [`Inspection`]);
//! - [`encode`]: [`Request::encode`], the inverse of the parser.

use crate::error::PduError;
use crate::pdu::{CoilValues, FileRecordRequests, FileRecords, ReadDeviceIdCode, RegisterValues};
use crate::types::{AddressRange, Direction, FunctionCode};

mod encode;
mod fast;
mod fields;
mod parse;
mod view;

// The response parser checks its fields with the same rules (crate::response).
pub(crate) use fields::{byte_count, byte_count_range, coil_value, quantity, range, registers};
pub(crate) use parse::write_file_subrequests;
pub use view::Inspection;

/// FC 8 sub-functions defined by V1.1b3 §6.8.1 (0x05-0x09, 0x13 and 0x15+ are reserved).
pub mod diagnostics {
    /// 0x00 Return Query Data: the device echoes the data (any length).
    pub const RETURN_QUERY_DATA: u16 = 0x0000;
    /// 0x01 Restart Communications Option (data 0x0000, or 0xFF00 = also clear the event log).
    pub const RESTART_COMMUNICATIONS: u16 = 0x0001;
    /// 0x02 Return Diagnostic Register.
    pub const RETURN_DIAGNOSTIC_REGISTER: u16 = 0x0002;
    /// 0x03 Change ASCII Input Delimiter (data = CHAR 0x00).
    pub const CHANGE_ASCII_DELIMITER: u16 = 0x0003;
    /// 0x04 Force Listen Only Mode: the device stops answering and sends no reply.
    pub const FORCE_LISTEN_ONLY: u16 = 0x0004;
    /// 0x0A Clear Counters and Diagnostic Register.
    pub const CLEAR_COUNTERS: u16 = 0x000A;
    /// 0x14 Clear Overrun Counter and Flag.
    pub const CLEAR_OVERRUN_COUNTER: u16 = 0x0014;

    /// True for the sub-functions V1.1b3 defines: 0x00-0x04, 0x0A-0x12, 0x14.
    pub const fn is_defined(sub: u16) -> bool {
        matches!(sub, 0x00..=0x04 | 0x0A..=0x12 | 0x14)
    }

    /// True for the sub-functions whose response echoes the request data.
    pub const fn echoes(sub: u16) -> bool {
        matches!(sub, 0x00 | 0x01 | 0x03 | 0x04 | 0x0A | 0x14)
    }
}

/// A parsed request PDU, borrowing from the bytes it was parsed from.
///
/// Addresses are zero-based protocol addresses. Variant data is already validated: a
/// `WriteMultipleRegisters` holds exactly `range.count()` values, an FC 23 write range is at most
/// 121 registers, and so on. Build values by hand only to encode them; [`Request::encode`]
/// refuses anything the parser would refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request<'a> {
    /// FC 1: quantity 1..=2000.
    ReadCoils(AddressRange),
    /// FC 2: quantity 1..=2000.
    ReadDiscreteInputs(AddressRange),
    /// FC 3: quantity 1..=125.
    ReadHoldingRegisters(AddressRange),
    /// FC 4: quantity 1..=125.
    ReadInputRegisters(AddressRange),
    /// FC 5: the wire value is 0xFF00 (on) or 0x0000 (off), nothing else.
    WriteSingleCoil {
        /// Coil address.
        address: u16,
        /// On or off.
        value: bool,
    },
    /// FC 6.
    WriteSingleRegister {
        /// Register address.
        address: u16,
        /// Value written.
        value: u16,
    },
    /// FC 7 (serial line only): no data.
    ReadExceptionStatus,
    /// FC 8 (serial line only): a V1.1b3 sub-function with its data (checked per sub-function,
    /// see [`diagnostics`]).
    Diagnostics {
        /// Sub-function code.
        sub_function: u16,
        /// The data field (2 bytes, or any length for 0x0000 Return Query Data).
        data: &'a [u8],
    },
    /// FC 11 (serial line only): no data.
    GetCommEventCounter,
    /// FC 12 (serial line only): no data.
    GetCommEventLog,
    /// FC 15: quantity 1..=1968, byte count ⌈q/8⌉. Padding bits of the last byte are not checked
    /// (V1.1b3 does not require them to be zero in a request; devices ignore them).
    WriteMultipleCoils {
        /// Coils written.
        range: AddressRange,
        /// `range.count()` values.
        values: CoilValues<'a>,
    },
    /// FC 16: quantity 1..=123, byte count 2q.
    WriteMultipleRegisters {
        /// Registers written.
        range: AddressRange,
        /// `range.count()` values.
        values: RegisterValues<'a>,
    },
    /// FC 17 (serial line only): no data.
    ReportServerId,
    /// FC 20: sub-requests of reference type 6; byte count 0x07..=0xF5; the response must fit a
    /// PDU.
    ReadFileRecord(FileRecordRequests<'a>),
    /// FC 21: sub-requests of reference type 6; byte count 0x09..=0xFB.
    WriteFileRecord(FileRecords<'a>),
    /// FC 22: result = (current AND and_mask) OR (or_mask AND NOT and_mask).
    MaskWriteRegister {
        /// Register address.
        address: u16,
        /// AND mask.
        and_mask: u16,
        /// OR mask.
        or_mask: u16,
    },
    /// FC 23: read 1..=125, write 1..=121 with byte count 2·wq. The device writes first.
    ReadWriteMultipleRegisters {
        /// Registers read.
        read: AddressRange,
        /// Registers written.
        write: AddressRange,
        /// `write.count()` values.
        values: RegisterValues<'a>,
    },
    /// FC 24: read the FIFO queue whose pointer register is `address`.
    ReadFifoQueue {
        /// FIFO pointer address (a holding register).
        address: u16,
    },
    /// FC 43 / MEI 14: Read Device Identification; read code 1..=4.
    ReadDeviceIdentification {
        /// Stream (1-3) or single object (4).
        read_code: ReadDeviceIdCode,
        /// First object (1-3) or the object (4).
        object_id: u8,
    },
    /// FC 43 / MEI 13: CANopen General Reference, opaque data.
    CanOpenGeneralReference {
        /// MEI-specific data.
        data: &'a [u8],
    },
    /// FC 65..=72 or 100..=110: user-defined, opaque data.
    UserDefined {
        /// The function code.
        function: FunctionCode,
        /// Everything after the function code.
        data: &'a [u8],
    },
}

impl<'a> Request<'a> {
    /// Parses a request PDU (function code first), strictly: every V1.1b3 rule is checked and
    /// the PDU must be consumed exactly. On error, [`PduError::exception_code`] is the answer a
    /// device would give.
    ///
    /// The common shapes (FC 1-6, 15, 16 and 23) are recognised by an inlined fast path that returns
    /// only when every rule of the full parser holds; anything else, valid or not, goes through
    /// the full parser, which also builds the precise error.
    #[inline]
    pub fn parse(pdu: &'a [u8]) -> Result<Self, PduError> {
        fast::parse_fast(pdu)
    }

    /// The full parser behind [`Request::parse`]: every function code and every error.
    fn parse_full(pdu: &'a [u8]) -> Result<Self, PduError> {
        crate::pdu::parse_with(pdu, Direction::Request, parse::parse_body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `Ok` path writes the whole `Result`: keep it small (a 32-byte request, a 40-byte
    /// error whose kind is 32 bytes, and the `Result` in 40 bytes thanks to the niche).
    #[test]
    fn result_layout_stays_small() {
        assert_eq!(core::mem::size_of::<Request<'_>>(), 32);
        assert_eq!(core::mem::size_of::<PduError>(), 40);
        assert_eq!(core::mem::size_of::<Result<Request<'_>, PduError>>(), 40);
        assert_eq!(
            core::mem::size_of::<Result<crate::Response<'_>, PduError>>(),
            40
        );
    }
}
