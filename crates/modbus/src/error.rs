//! Errors of the codec, each mapped to its wire reaction.
//!
//! Spec: Modbus Application Protocol V1.1b3 §7 (exception codes) and the per-function state
//! diagrams of §6 (check order: function supported, else 01; quantity / byte count, else 03;
//! address + quantity, else 02). A [`FrameError`] means the byte stream itself is broken (the
//! gateway closes the connection); a [`PduError`] means a well-framed PDU is invalid, and for a
//! request [`PduError::exception_code`] is what a conforming device would have answered.

use core::fmt;

use crate::types::{Direction, ExceptionCode, FunctionCode};

/// The stream of bytes is not Modbus framing: no ADU boundary can be trusted after this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// MBAP protocol identifier other than 0.
    ProtocolId(u16),
    /// MBAP length field outside 2..=254.
    Length(u16),
    /// RTU CRC does not match the frame.
    Crc {
        /// CRC computed over address + PDU.
        computed: u16,
        /// CRC carried by the frame (low byte first on the wire).
        received: u16,
    },
    /// RTU address 248..=255 (reserved, Serial Line V1.02 §2.2): refused, not flagged.
    ReservedAddress(u8),
    /// An RTU response from address 0: broadcasts are never answered.
    BroadcastResponse,
    /// The RTU frame length cannot be derived from the function code (user-defined codes,
    /// MEI 13, FC 8 sub-function 0x0000 Return Query Data, unknown codes); use
    /// [`crate::rtu::decode_frame`] with a frame delimited by line silence instead.
    UnknownLength {
        /// The function code byte.
        function: u8,
        /// The sub-function (FC 8) or MEI type (FC 43) when it decided, else `None`.
        sub_function: Option<u16>,
    },
    /// A byte count implies an ADU longer than the transport maximum (256 RTU, 260 TCP).
    TooLong {
        /// Length the header or byte count implies.
        length: usize,
        /// The maximum for this transport.
        max: usize,
    },
    /// A frame shorter than the smallest ADU (RTU: address, function, CRC = 4 bytes), or longer
    /// than its derived length, when handed over as one whole frame.
    FrameLength {
        /// Bytes given.
        given: usize,
        /// Bytes the function code and byte counts imply (0 when unknown).
        expected: usize,
    },
}

impl FrameError {
    /// A stable snake_case name for logs and events.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::ProtocolId(_) => "protocol_id",
            Self::Length(_) => "mbap_length",
            Self::Crc { .. } => "crc",
            Self::ReservedAddress(_) => "reserved_address",
            Self::BroadcastResponse => "broadcast_response",
            Self::UnknownLength { .. } => "unknown_length",
            Self::TooLong { .. } => "too_long",
            Self::FrameLength { .. } => "frame_length",
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ProtocolId(id) => write!(f, "MBAP protocol id is {id}, must be 0"),
            Self::Length(len) => write!(f, "MBAP length is {len}, must be 2..=254"),
            Self::Crc { computed, received } => write!(
                f,
                "RTU CRC mismatch: frame carries 0x{received:04X}, computed 0x{computed:04X}"
            ),
            Self::ReservedAddress(a) => {
                write!(f, "RTU address {a} is reserved (248..=255)")
            }
            Self::BroadcastResponse => {
                f.write_str("RTU response from broadcast address 0 (broadcasts get no reply)")
            }
            Self::UnknownLength {
                function,
                sub_function: Some(sub),
            } => write!(
                f,
                "RTU frame length of FC {function} sub-function/MEI 0x{sub:04X} cannot be derived from its header"
            ),
            Self::UnknownLength { function, .. } => write!(
                f,
                "RTU frame length of FC {function} cannot be derived from its header"
            ),
            Self::TooLong { length, max } => {
                write!(f, "frame would be {length} bytes, more than the maximum {max}")
            }
            Self::FrameLength { given, expected: 0 } => {
                write!(f, "frame of {given} bytes is too short")
            }
            Self::FrameLength { given, expected } => {
                write!(f, "frame is {given} bytes, its header implies {expected}")
            }
        }
    }
}

impl core::error::Error for FrameError {}

/// What exactly is wrong with a PDU. Field names are the spec's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PduErrorKind {
    /// The PDU has no function code byte.
    Empty,
    /// Function code not public nor user-defined (requests), or an exception response for code 0.
    UnknownFunction,
    /// FC 8 sub-function not defined by V1.1b3 (answered 01 per the FC 8 state diagram).
    UnknownSubFunction(u16),
    /// FC 43 MEI type other than 13 and 14 (answered 01).
    UnknownMeiType(u8),
    /// The PDU ends inside `field`.
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// A PDU longer than 253 bytes (only possible when a caller hands one over directly: the
    /// deframers cannot produce it).
    TooLong {
        /// Its length.
        length: usize,
    },
    /// Bytes left after the last field.
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A quantity field outside its range.
    Quantity {
        /// Which quantity.
        field: &'static str,
        /// Value found.
        value: u16,
        /// Smallest allowed.
        min: u16,
        /// Largest allowed.
        max: u16,
    },
    /// A byte count field that disagrees with the quantity or the bytes present.
    ByteCount {
        /// Byte count expected from the other fields.
        expected: usize,
        /// Byte count found.
        found: usize,
    },
    /// A byte count outside its allowed range.
    ByteCountRange {
        /// Value found.
        value: usize,
        /// Smallest allowed.
        min: usize,
        /// Largest allowed.
        max: usize,
    },
    /// A byte count that is not a multiple of the size of the items it counts.
    ByteCountMultiple {
        /// Value found.
        value: usize,
        /// The item size it must be a multiple of.
        multiple: usize,
    },
    /// `address + quantity` runs past 65536 (answered 02).
    AddressOverflow {
        /// Starting address.
        address: u16,
        /// Quantity.
        quantity: u16,
    },
    /// A value field holding a value the spec does not allow (FC 5 coil value, FC 8 data,
    /// FC 43 read code, conformity level, ...).
    Value {
        /// Which field.
        field: &'static str,
        /// Value found.
        value: u16,
    },
    /// FC 20/21 reference type other than 6, file number 0, or record number past 0x270F
    /// (answered 02 per the FC 20/21 state diagrams).
    FileRecord {
        /// Which field.
        field: &'static str,
        /// Value found.
        value: u16,
    },
    /// The answer to this FC 20 request would not fit in a 253-byte PDU (answered 03).
    ResponseTooLong {
        /// Bytes the response PDU would need.
        length: usize,
    },
    /// An exception response whose code is not defined by V1.1b3 (07 NAK is accepted as legacy).
    ExceptionCode(u8),
    /// A response to a request that never gets one (FC 8 sub-function 0x0004 Force Listen Only).
    UnexpectedResponse,
    /// The response does not answer the request it was matched to.
    Mismatch {
        /// Which field differs.
        field: &'static str,
        /// Value the request implies.
        expected: u16,
        /// Value the response carries.
        found: u16,
    },
}

/// A well-framed PDU that is not valid Modbus, with the reason and the code a device would answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PduError {
    function: u8,
    direction: Direction,
    kind: PduErrorKind,
}

impl PduError {
    pub(crate) const fn new(function: u8, direction: Direction, kind: PduErrorKind) -> Self {
        Self {
            function,
            direction,
            kind,
        }
    }

    /// The function code byte of the PDU (0 when empty). For an exception response it is the
    /// byte as sent (with 0x80 set).
    pub const fn function(&self) -> u8 {
        self.function
    }

    /// Whether a request or a response was being parsed.
    pub const fn direction(&self) -> Direction {
        self.direction
    }

    /// What is wrong.
    pub const fn kind(&self) -> &PduErrorKind {
        &self.kind
    }

    /// The exception a conforming device answers to this request, per the V1.1b3 check order:
    /// 01 for an unknown function (or FC 8 sub-function / MEI type), 02 for an address that runs
    /// past the table (and FC 20/21 file/record/reference errors), 03 for every quantity, byte
    /// count, value or length error. `None` for responses (nobody answers a response) and for an
    /// empty PDU (there is no function code to answer with).
    pub const fn exception_code(&self) -> Option<ExceptionCode> {
        if matches!(self.direction, Direction::Response) {
            return None;
        }
        match self.kind {
            PduErrorKind::Empty => None,
            PduErrorKind::UnknownFunction
            | PduErrorKind::UnknownSubFunction(_)
            | PduErrorKind::UnknownMeiType(_) => Some(ExceptionCode::IllegalFunction),
            PduErrorKind::AddressOverflow { .. } | PduErrorKind::FileRecord { .. } => {
                Some(ExceptionCode::IllegalDataAddress)
            }
            _ => Some(ExceptionCode::IllegalDataValue),
        }
    }

    /// A stable snake_case name of the kind, for logs and events.
    pub const fn as_str(&self) -> &'static str {
        match self.kind {
            PduErrorKind::Empty => "empty",
            PduErrorKind::UnknownFunction => "unknown_function",
            PduErrorKind::UnknownSubFunction(_) => "unknown_sub_function",
            PduErrorKind::UnknownMeiType(_) => "unknown_mei_type",
            PduErrorKind::Truncated { .. } => "truncated",
            PduErrorKind::TooLong { .. } => "too_long",
            PduErrorKind::TrailingBytes { .. } => "trailing_bytes",
            PduErrorKind::Quantity { .. } => "quantity",
            PduErrorKind::ByteCount { .. } => "byte_count",
            PduErrorKind::ByteCountRange { .. } => "byte_count_range",
            PduErrorKind::ByteCountMultiple { .. } => "byte_count_multiple",
            PduErrorKind::AddressOverflow { .. } => "address_overflow",
            PduErrorKind::Value { .. } => "value",
            PduErrorKind::FileRecord { .. } => "file_record",
            PduErrorKind::ResponseTooLong { .. } => "response_too_long",
            PduErrorKind::ExceptionCode(_) => "exception_code",
            PduErrorKind::UnexpectedResponse => "unexpected_response",
            PduErrorKind::Mismatch { .. } => "mismatch",
        }
    }
}

impl From<&PduError> for Option<ExceptionCode> {
    fn from(error: &PduError) -> Self {
        error.exception_code()
    }
}

impl fmt::Display for PduError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !matches!(self.kind, PduErrorKind::Empty) {
            let fc = FunctionCode::new(self.function & 0x7F);
            if self.function & 0x80 != 0 && matches!(self.direction, Direction::Response) {
                write!(f, "{fc} exception response: ")?;
            } else {
                write!(
                    f,
                    "{} {}: ",
                    FunctionCode::new(self.function),
                    self.direction
                )?;
            }
        }
        match self.kind {
            PduErrorKind::Empty => write!(f, "empty {} PDU", self.direction),
            PduErrorKind::UnknownFunction => f.write_str("unknown function code"),
            PduErrorKind::UnknownSubFunction(sub) => {
                write!(f, "unknown diagnostics sub-function 0x{sub:04X}")
            }
            PduErrorKind::UnknownMeiType(mei) => write!(f, "unknown MEI type {mei}"),
            PduErrorKind::Truncated { field } => write!(f, "PDU ends inside {field}"),
            PduErrorKind::TooLong { length } => {
                write!(f, "PDU of {length} bytes, more than the 253 a PDU holds")
            }
            PduErrorKind::TrailingBytes { count } => {
                write!(f, "{count} trailing byte(s) after the last field")
            }
            PduErrorKind::Quantity {
                field,
                value,
                min,
                max,
            } => write!(f, "{field} {value} out of range {min}..={max}"),
            PduErrorKind::ByteCount { expected, found } => {
                write!(
                    f,
                    "byte count {found} does not match the expected {expected}"
                )
            }
            PduErrorKind::ByteCountRange { value, min, max } => {
                write!(f, "byte count {value} out of range {min}..={max}")
            }
            PduErrorKind::ByteCountMultiple { value, multiple } => {
                write!(f, "byte count {value} is not a multiple of {multiple}")
            }
            PduErrorKind::AddressOverflow { address, quantity } => write!(
                f,
                "address {address} + quantity {quantity} runs past the end of the table (65536)"
            ),
            PduErrorKind::Value { field, value } => {
                write!(f, "{field} 0x{value:04X} is not allowed")
            }
            PduErrorKind::FileRecord { field, value } => {
                write!(f, "{field} {value} is not allowed")
            }
            PduErrorKind::ResponseTooLong { length } => write!(
                f,
                "the response would be {length} bytes, more than a PDU holds (253)"
            ),
            PduErrorKind::ExceptionCode(code) => {
                write!(f, "exception code 0x{code:02X} is not defined")
            }
            PduErrorKind::UnexpectedResponse => {
                f.write_str("this request never gets a response (force listen only mode)")
            }
            PduErrorKind::Mismatch {
                field,
                expected,
                found,
            } => write!(
                f,
                "{field} {found} does not answer the request (expected {expected})"
            ),
        }
    }
}

impl core::error::Error for PduError {}

/// An encoder could not produce a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer is too small.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// A PDU must be 1..=253 bytes.
    PduLength(usize),
    /// The value would encode to a PDU the strict parser refuses (so decode(encode(x)) == x
    /// always holds).
    Invalid(PduError),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferTooSmall { needed, available } => write!(
                f,
                "output buffer holds {available} bytes, the frame needs {needed}"
            ),
            Self::PduLength(len) => write!(f, "PDU of {len} bytes, must be 1..=253"),
            Self::Invalid(e) => write!(f, "would encode an invalid PDU: {e}"),
        }
    }
}

impl core::error::Error for EncodeError {}

impl From<PduError> for EncodeError {
    fn from(error: PduError) -> Self {
        Self::Invalid(error)
    }
}
