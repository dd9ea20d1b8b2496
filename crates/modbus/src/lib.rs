//! zonegate-modbus: a strict, sans-IO Modbus codec for a security gateway.
//!
//! Spec: Modbus Application Protocol V1.1b3, Modbus Messaging on TCP/IP Implementation Guide
//! V1.0b, Modbus over Serial Line V1.02. Start here:
//!
//! - [`tcp`]: MBAP framing. [`tcp::decode_adu`] looks at the start of a buffer and returns one
//!   whole ADU (zero-copy), [`TcpDeframer`] does the same for bytes that arrive in pieces.
//! - [`rtu`]: RTU framing with CRC-16/MODBUS; the frame length is derived from the function code
//!   and byte counts, for requests and responses.
//! - [`Request::parse`] / [`Response::parse`] / [`Response::parse_for`]: strict PDU parsers for
//!   every public function code (1-8, 11, 12, 15-17, 20-24, 43 MEI 13/14) and exception
//!   responses; user-defined codes (65-72, 100-110) parse as opaque data. Every quantity and
//!   byte-count rule of V1.1b3 is enforced and every parse consumes its input exactly.
//! - The policy view of a request: [`Request::function`], [`Request::access`],
//!   [`Request::sub_function`], [`Request::ranges`], [`Request::written`].
//! - Errors: [`FrameError`] (broken stream: close the connection) and [`PduError`] (invalid PDU;
//!   [`PduError::exception_code`] is what a device would answer: 01, 02 or 03).
//! - Encoders for requests, responses and both ADU kinds; `parse(encode(x)) == x`.
//!
//! The crate is `no_std`, has no dependencies, never allocates and forbids `unsafe`.
//!
//! ```
//! use zonegate_modbus::{tcp, Access, Request, Table};
//! // | tid   | proto | len   | unit | fc | addr  | qty   |
//! let wire = [0x00, 0x07, 0x00, 0x00, 0x00, 0x06, 0x01, 0x03, 0x00, 0x64, 0x00, 0x02];
//! let adu = tcp::decode_adu(&wire)?.expect("whole ADU");
//! let request = Request::parse(adu.pdu)?;
//! assert_eq!(request.access(), Access::Read);
//! let (table, range) = request.ranges().next().expect("one range");
//! assert_eq!((table, range.start(), range.count()), (Table::HoldingRegisters, 100, 2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

mod cursor;
pub mod error;
pub mod pdu;
mod request;
mod response;
pub mod rtu;
mod stream;
pub mod tcp;
pub mod types;

pub use error::{EncodeError, FrameError, PduError, PduErrorKind};
pub use pdu::{
    CoilIter, CoilValues, DeviceIdentification, DeviceObject, DeviceObjectIter, DeviceObjects,
    FileRecord, FileRecordIter, FileRecordRef, FileRecordRequests, FileRecordResponseIter,
    FileRecordResponses, Ranges, ReadDeviceIdCode, RegisterIter, RegisterValues, Written,
    WrittenIter, MAX_PDU_LEN,
};
pub use request::{diagnostics, Inspection, Request};
pub use response::Response;
pub use rtu::{crc16, RtuAdu, RtuDeframer};
pub use tcp::{MbapHeader, TcpAdu, TcpDeframer, MAX_TCP_ADU_LEN, MBAP_HEADER_LEN};
pub use types::{
    Access, AddressRange, Direction, ExceptionCode, FunctionCode, InvalidRange, Table, UnitId,
};
