//! Validated value types shared by the framing and PDU layers.
//!
//! Spec: Modbus Application Protocol V1.1b3 §4.1 (PDU, address ranges), §6 (function codes and
//! their data model tables), §7 (exception codes); Modbus over Serial Line V1.02 §2.2 (addresses).
//! Every type here is a small `Copy` newtype or enum: invalid values are refused when the value is
//! made, so code holding one never re-checks it ("parse, don't validate").

use core::fmt;

/// The unit identifier of Modbus/TCP or the address byte of an RTU frame.
///
/// Every value 0..=255 is representable: over TCP 0xFF addresses the device itself and 1..=247
/// route through a gateway; over RTU 0 is the broadcast address and 248..=255 are reserved (the RTU
/// deframer refuses those, see [`crate::rtu`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnitId(u8);

impl UnitId {
    /// The RTU broadcast address (also accepted over TCP, where devices treat it as a broadcast or
    /// ignore it).
    pub const BROADCAST: Self = Self(0);

    /// Wraps a unit identifier.
    pub const fn new(value: u8) -> Self {
        Self(value)
    }

    /// The raw byte.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// True for address 0, the serial-line broadcast (writes only, no reply).
    pub const fn is_broadcast(self) -> bool {
        self.0 == 0
    }

    /// True for 248..=255, reserved on a serial line (Serial Line V1.02 §2.2).
    pub const fn is_reserved_serial(self) -> bool {
        self.0 >= 248
    }
}

impl From<u8> for UnitId {
    fn from(value: u8) -> Self {
        Self(value)
    }
}

impl fmt::Display for UnitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The access class of a function code, as the policy understands it (docs/DESIGN.md).
///
/// `read` = 1, 2, 3, 4, 24; `write` = 5, 6, 15, 16, 21, 22, 23 (23 writes before it reads);
/// `diagnostics` = 7, 8, 11, 12, 17, 43; everything else (user-defined codes, and FC 20, whose
/// file records lie outside the four tables a `read` rule's ranges describe) is `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Access {
    /// Reads a table; changes nothing.
    Read,
    /// Changes device state.
    Write,
    /// Serial-line diagnostics and identification; touches no table.
    Diagnostics,
    /// Anything else: user-defined codes, file reads.
    Other,
}

impl Access {
    /// The stable name used in the model file and in events.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Diagnostics => "diagnostics",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One of the four tables of the Modbus data model (V1.1b3 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Table {
    /// Single-bit, read-write.
    Coils,
    /// Single-bit, read-only.
    DiscreteInputs,
    /// 16-bit, read-only.
    InputRegisters,
    /// 16-bit, read-write.
    HoldingRegisters,
}

impl Table {
    /// The stable name used in the model file and in events: `coils`, `discrete`, `input`,
    /// `holding`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Coils => "coils",
            Self::DiscreteInputs => "discrete",
            Self::InputRegisters => "input",
            Self::HoldingRegisters => "holding",
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Modbus function code (the first PDU byte, V1.1b3 §5 and §6).
///
/// Any byte is representable; [`FunctionCode::name`] tells whether it is a public code this crate
/// parses. Exception responses carry `code | 0x80` on the wire but are modelled as
/// [`crate::Response::Exception`] holding the plain code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionCode(u8);

/// The public function codes this crate parses, with their docs/DESIGN.md names.
const NAMES: [(u8, &str); 19] = [
    (1, "read_coils"),
    (2, "read_discrete_inputs"),
    (3, "read_holding_registers"),
    (4, "read_input_registers"),
    (5, "write_single_coil"),
    (6, "write_single_register"),
    (7, "read_exception_status"),
    (8, "diagnostics"),
    (11, "get_comm_event_counter"),
    (12, "get_comm_event_log"),
    (15, "write_multiple_coils"),
    (16, "write_multiple_registers"),
    (17, "report_server_id"),
    (20, "read_file_record"),
    (21, "write_file_record"),
    (22, "mask_write_register"),
    (23, "read_write_multiple_registers"),
    (24, "read_fifo_queue"),
    (43, "encapsulated_interface"),
];

impl FunctionCode {
    /// FC 1.
    pub const READ_COILS: Self = Self(1);
    /// FC 2.
    pub const READ_DISCRETE_INPUTS: Self = Self(2);
    /// FC 3.
    pub const READ_HOLDING_REGISTERS: Self = Self(3);
    /// FC 4.
    pub const READ_INPUT_REGISTERS: Self = Self(4);
    /// FC 5.
    pub const WRITE_SINGLE_COIL: Self = Self(5);
    /// FC 6.
    pub const WRITE_SINGLE_REGISTER: Self = Self(6);
    /// FC 7 (serial line only).
    pub const READ_EXCEPTION_STATUS: Self = Self(7);
    /// FC 8 (serial line only).
    pub const DIAGNOSTICS: Self = Self(8);
    /// FC 11 (serial line only).
    pub const GET_COMM_EVENT_COUNTER: Self = Self(11);
    /// FC 12 (serial line only).
    pub const GET_COMM_EVENT_LOG: Self = Self(12);
    /// FC 15.
    pub const WRITE_MULTIPLE_COILS: Self = Self(15);
    /// FC 16.
    pub const WRITE_MULTIPLE_REGISTERS: Self = Self(16);
    /// FC 17 (serial line only).
    pub const REPORT_SERVER_ID: Self = Self(17);
    /// FC 20.
    pub const READ_FILE_RECORD: Self = Self(20);
    /// FC 21.
    pub const WRITE_FILE_RECORD: Self = Self(21);
    /// FC 22.
    pub const MASK_WRITE_REGISTER: Self = Self(22);
    /// FC 23.
    pub const READ_WRITE_MULTIPLE_REGISTERS: Self = Self(23);
    /// FC 24.
    pub const READ_FIFO_QUEUE: Self = Self(24);
    /// FC 43, Encapsulated Interface Transport (MEI 13 CANopen, MEI 14 Read Device
    /// Identification).
    pub const ENCAPSULATED_INTERFACE: Self = Self(43);

    /// Wraps a raw function code byte.
    pub const fn new(value: u8) -> Self {
        Self(value)
    }

    /// The raw byte.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// The docs/DESIGN.md name of a public function code, `None` for any other byte.
    pub fn name(self) -> Option<&'static str> {
        NAMES
            .iter()
            .find(|(code, _)| *code == self.0)
            .map(|(_, name)| *name)
    }

    /// The function code with docs/DESIGN.md name `name` (exact, lower case).
    pub fn from_name(name: &str) -> Option<Self> {
        NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(code, _)| Self(*code))
    }

    /// True for the public codes this crate parses field by field (see [`FunctionCode::name`]).
    pub fn is_public(self) -> bool {
        self.name().is_some()
    }

    /// True for the user-defined ranges 65..=72 and 100..=110 (V1.1b3 §5), parsed as opaque data.
    pub const fn is_user_defined(self) -> bool {
        matches!(self.0, 65..=72 | 100..=110)
    }

    /// True when a request with this code is parsed at all (public or user-defined); any other
    /// code is answered with exception 01.
    pub fn is_supported(self) -> bool {
        self.is_public() || self.is_user_defined()
    }

    /// The access class of the code itself (see [`Access`]).
    pub const fn access(self) -> Access {
        match self.0 {
            1..=4 | 24 => Access::Read,
            5 | 6 | 15 | 16 | 21..=23 => Access::Write,
            7 | 8 | 11 | 12 | 17 | 43 => Access::Diagnostics,
            _ => Access::Other,
        }
    }
}

impl From<u8> for FunctionCode {
    fn from(value: u8) -> Self {
        Self(value)
    }
}

impl fmt::Display for FunctionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "FC {} ({name})", self.0),
            None if self.is_user_defined() => write!(f, "FC {} (user-defined)", self.0),
            None => write!(f, "FC {}", self.0),
        }
    }
}

/// Why an [`AddressRange`] could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidRange {
    /// A range must hold at least one item.
    ZeroCount,
    /// `start + count` exceeds 65536, the size of a table.
    Overflow {
        /// First address.
        start: u16,
        /// Number of items.
        count: u16,
    },
}

impl fmt::Display for InvalidRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroCount => f.write_str("an address range must hold at least one item"),
            Self::Overflow { start, count } => write!(
                f,
                "address {start} + quantity {count} runs past the end of the table (65536)"
            ),
        }
    }
}

impl core::error::Error for InvalidRange {}

/// A non-empty run of zero-based protocol addresses inside one table: `start + count <= 65536`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressRange {
    start: u16,
    count: u16,
}

impl AddressRange {
    /// A range of `count >= 1` items from `start`, refused if it runs past address 65535.
    pub const fn new(start: u16, count: u16) -> Result<Self, InvalidRange> {
        if count == 0 {
            return Err(InvalidRange::ZeroCount);
        }
        if start as u32 + count as u32 > 0x1_0000 {
            return Err(InvalidRange::Overflow { start, count });
        }
        Ok(Self { start, count })
    }

    /// A range of one item, always valid.
    pub const fn single(address: u16) -> Self {
        Self {
            start: address,
            count: 1,
        }
    }

    /// The first address.
    pub const fn start(self) -> u16 {
        self.start
    }

    /// The number of items (>= 1).
    pub const fn count(self) -> u16 {
        self.count
    }

    /// The last address (inclusive).
    pub const fn last(self) -> u16 {
        // start + count <= 65536 and count >= 1, so this never wraps.
        (self.start as u32 + self.count as u32 - 1) as u16
    }

    /// True when `address` lies in the range.
    pub const fn contains(self, address: u16) -> bool {
        address >= self.start && address <= self.last()
    }

    /// True when every address of `self` lies in `outer`.
    pub const fn is_within(self, outer: Self) -> bool {
        self.start >= outer.start && self.last() <= outer.last()
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.last())
    }
}

/// A Modbus exception code (V1.1b3 §7), the one-byte answer of a device that refuses a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExceptionCode {
    /// 0x01: the function code is not supported.
    IllegalFunction,
    /// 0x02: the address (or address + quantity) is outside the device's map.
    IllegalDataAddress,
    /// 0x03: a value in the request (quantity, byte count, coil value...) is not allowed.
    IllegalDataValue,
    /// 0x04: the device failed while executing the request.
    ServerDeviceFailure,
    /// 0x05: accepted, long-running.
    Acknowledge,
    /// 0x06: busy, retry later.
    ServerDeviceBusy,
    /// 0x08: file record memory parity error (FC 20/21).
    MemoryParityError,
    /// 0x0A: a gateway could not route to the target.
    GatewayPathUnavailable,
    /// 0x0B: a gateway got no answer from the target.
    GatewayTargetFailedToRespond,
    /// Any other byte (0x07 NAK is legacy and lands here).
    Other(u8),
}

impl ExceptionCode {
    /// The wire byte.
    pub const fn to_u8(self) -> u8 {
        match self {
            Self::IllegalFunction => 0x01,
            Self::IllegalDataAddress => 0x02,
            Self::IllegalDataValue => 0x03,
            Self::ServerDeviceFailure => 0x04,
            Self::Acknowledge => 0x05,
            Self::ServerDeviceBusy => 0x06,
            Self::MemoryParityError => 0x08,
            Self::GatewayPathUnavailable => 0x0A,
            Self::GatewayTargetFailedToRespond => 0x0B,
            Self::Other(code) => code,
        }
    }

    /// The code for a wire byte; bytes without a V1.1b3 name become [`ExceptionCode::Other`].
    pub const fn from_u8(value: u8) -> Self {
        match value {
            0x01 => Self::IllegalFunction,
            0x02 => Self::IllegalDataAddress,
            0x03 => Self::IllegalDataValue,
            0x04 => Self::ServerDeviceFailure,
            0x05 => Self::Acknowledge,
            0x06 => Self::ServerDeviceBusy,
            0x08 => Self::MemoryParityError,
            0x0A => Self::GatewayPathUnavailable,
            0x0B => Self::GatewayTargetFailedToRespond,
            other => Self::Other(other),
        }
    }

    /// A short snake_case name (`illegal_function`, ...; `other` for unnamed codes).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::IllegalFunction => "illegal_function",
            Self::IllegalDataAddress => "illegal_data_address",
            Self::IllegalDataValue => "illegal_data_value",
            Self::ServerDeviceFailure => "server_device_failure",
            Self::Acknowledge => "acknowledge",
            Self::ServerDeviceBusy => "server_device_busy",
            Self::MemoryParityError => "memory_parity_error",
            Self::GatewayPathUnavailable => "gateway_path_unavailable",
            Self::GatewayTargetFailedToRespond => "gateway_target_failed_to_respond",
            Self::Other(_) => "other",
        }
    }
}

impl From<u8> for ExceptionCode {
    fn from(value: u8) -> Self {
        Self::from_u8(value)
    }
}

impl From<ExceptionCode> for u8 {
    fn from(code: ExceptionCode) -> Self {
        code.to_u8()
    }
}

impl fmt::Display for ExceptionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:02X} ({})", self.to_u8(), self.as_str())
    }
}

/// Which way a frame travels: client to device (request) or device to client (response).
///
/// RTU framing needs it because a request and a response with the same function code have
/// different layouts; PDU errors carry it because only a request error has a device answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client (master) to device (server/slave).
    Request,
    /// Device to client.
    Response,
}

impl Direction {
    /// `request` or `response`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Response => "response",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_range_bounds() {
        assert_eq!(AddressRange::new(0, 0), Err(InvalidRange::ZeroCount));
        assert!(AddressRange::new(65535, 1).is_ok());
        assert!(AddressRange::new(65535, 2).is_err());
        assert!(AddressRange::new(0, 65535).is_ok());
        let r = AddressRange::new(100, 10).unwrap();
        assert_eq!((r.start(), r.count(), r.last()), (100, 10, 109));
        assert!(r.contains(109) && !r.contains(110) && !r.contains(99));
        assert_eq!(AddressRange::new(65535, 1).unwrap().last(), 65535);
    }

    #[test]
    fn function_names_round_trip() {
        for (code, name) in NAMES {
            assert_eq!(FunctionCode::new(code).name(), Some(name));
            assert_eq!(FunctionCode::from_name(name), Some(FunctionCode::new(code)));
        }
        assert_eq!(FunctionCode::new(90).name(), None);
        assert_eq!(FunctionCode::from_name("nope"), None);
        assert_eq!(FunctionCode::new(23).access(), Access::Write);
        assert_eq!(FunctionCode::new(20).access(), Access::Other);
        assert_eq!(FunctionCode::new(43).access(), Access::Diagnostics);
        assert!(FunctionCode::new(65).is_user_defined() && FunctionCode::new(110).is_supported());
        assert!(!FunctionCode::new(73).is_supported() && !FunctionCode::new(9).is_supported());
    }

    #[test]
    fn exception_codes_round_trip() {
        for b in 0..=255u8 {
            assert_eq!(ExceptionCode::from_u8(b).to_u8(), b);
        }
        assert_eq!(ExceptionCode::from_u8(3), ExceptionCode::IllegalDataValue);
    }
}
