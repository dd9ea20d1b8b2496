//! Request PDUs: a strict parser, the policy view (function, access, ranges, written values) and
//! the encoder.
//!
//! Spec: Modbus Application Protocol V1.1b3 §6.1-§6.21, one arm per function code, each checked
//! in the order of the spec's state diagrams: every structural, quantity and byte-count check
//! (exception 03) before the address check (exception 02); unknown function codes, FC 8
//! sub-functions and FC 43 MEI types give 01. Every arm consumes the PDU exactly: a trailing byte
//! is an error. The parsed [`Request`] borrows its data from the PDU (no allocation).

use crate::cursor::{Reader, Writer};
use crate::error::{EncodeError, PduError, PduErrorKind};
use crate::pdu::{
    bit_bytes, CoilValues, FileRecordRequests, FileRecords, Ranges, ReadDeviceIdCode,
    RegisterValues, Written, COIL_OFF, COIL_ON, FILE_REFERENCE_TYPE, MAX_FILE_RECORD_NUMBER,
    MAX_PDU_LEN, MAX_READ_BITS, MAX_READ_REGISTERS, MAX_RW_READ_REGISTERS, MAX_RW_WRITE_REGISTERS,
    MAX_WRITE_COILS, MAX_WRITE_REGISTERS, MEI_CANOPEN, MEI_READ_DEVICE_ID,
};
use crate::types::{Access, AddressRange, Direction, FunctionCode, Table};

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
        parse_fast(pdu)
    }

    /// The full parser behind [`Request::parse`]: every function code and every error.
    fn parse_full(pdu: &'a [u8]) -> Result<Self, PduError> {
        crate::pdu::parse_with(pdu, Direction::Request, parse_body)
    }

    /// The function code.
    pub const fn function(&self) -> FunctionCode {
        match self {
            Self::ReadCoils(_) => FunctionCode::READ_COILS,
            Self::ReadDiscreteInputs(_) => FunctionCode::READ_DISCRETE_INPUTS,
            Self::ReadHoldingRegisters(_) => FunctionCode::READ_HOLDING_REGISTERS,
            Self::ReadInputRegisters(_) => FunctionCode::READ_INPUT_REGISTERS,
            Self::WriteSingleCoil { .. } => FunctionCode::WRITE_SINGLE_COIL,
            Self::WriteSingleRegister { .. } => FunctionCode::WRITE_SINGLE_REGISTER,
            Self::ReadExceptionStatus => FunctionCode::READ_EXCEPTION_STATUS,
            Self::Diagnostics { .. } => FunctionCode::DIAGNOSTICS,
            Self::GetCommEventCounter => FunctionCode::GET_COMM_EVENT_COUNTER,
            Self::GetCommEventLog => FunctionCode::GET_COMM_EVENT_LOG,
            Self::WriteMultipleCoils { .. } => FunctionCode::WRITE_MULTIPLE_COILS,
            Self::WriteMultipleRegisters { .. } => FunctionCode::WRITE_MULTIPLE_REGISTERS,
            Self::ReportServerId => FunctionCode::REPORT_SERVER_ID,
            Self::ReadFileRecord(_) => FunctionCode::READ_FILE_RECORD,
            Self::WriteFileRecord(_) => FunctionCode::WRITE_FILE_RECORD,
            Self::MaskWriteRegister { .. } => FunctionCode::MASK_WRITE_REGISTER,
            Self::ReadWriteMultipleRegisters { .. } => FunctionCode::READ_WRITE_MULTIPLE_REGISTERS,
            Self::ReadFifoQueue { .. } => FunctionCode::READ_FIFO_QUEUE,
            Self::ReadDeviceIdentification { .. } | Self::CanOpenGeneralReference { .. } => {
                FunctionCode::ENCAPSULATED_INTERFACE
            }
            Self::UserDefined { function, .. } => *function,
        }
    }

    /// The access class (FC 23 is a write; see [`Access`]).
    pub const fn access(&self) -> Access {
        self.function().access()
    }

    /// The FC 8 sub-function, or the FC 43 MEI type (13 or 14); `None` for other functions.
    pub const fn sub_function(&self) -> Option<u16> {
        match self {
            Self::Diagnostics { sub_function, .. } => Some(*sub_function),
            Self::ReadDeviceIdentification { .. } => Some(MEI_READ_DEVICE_ID as u16),
            Self::CanOpenGeneralReference { .. } => Some(MEI_CANOPEN as u16),
            _ => None,
        }
    }

    /// The (table, range) pairs the request touches, 0..=2 of them. FC 5/6/22 touch one address;
    /// FC 24 touches its pointer register; FC 23 yields the read range then the write range
    /// (both holding registers). Functions outside the four tables (diagnostics, file records,
    /// device identification, user-defined) touch none.
    pub fn ranges(&self) -> Ranges {
        match *self {
            Self::ReadCoils(r) => Ranges::one(Table::Coils, r),
            Self::ReadDiscreteInputs(r) => Ranges::one(Table::DiscreteInputs, r),
            Self::ReadHoldingRegisters(r) => Ranges::one(Table::HoldingRegisters, r),
            Self::ReadInputRegisters(r) => Ranges::one(Table::InputRegisters, r),
            Self::WriteSingleCoil { address, .. } => {
                Ranges::one(Table::Coils, AddressRange::single(address))
            }
            Self::WriteSingleRegister { address, .. }
            | Self::MaskWriteRegister { address, .. }
            | Self::ReadFifoQueue { address } => {
                Ranges::one(Table::HoldingRegisters, AddressRange::single(address))
            }
            Self::WriteMultipleCoils { range, .. } => Ranges::one(Table::Coils, range),
            Self::WriteMultipleRegisters { range, .. } => {
                Ranges::one(Table::HoldingRegisters, range)
            }
            Self::ReadWriteMultipleRegisters { read, write, .. } => Ranges::two(
                (Table::HoldingRegisters, read),
                (Table::HoldingRegisters, write),
            ),
            _ => Ranges::none(),
        }
    }

    /// The table of the first range, if any.
    pub fn table(&self) -> Option<Table> {
        self.ranges().next().map(|(table, _)| table)
    }

    /// The values a write puts on the device: FC 5, 6, 15, 16 and the write half of FC 23.
    /// `None` for reads and for FC 22 (the result depends on the current value) and FC 21 (file
    /// records are outside the tables; see [`Request::WriteFileRecord`]).
    pub fn written(&self) -> Option<Written<'a>> {
        match *self {
            Self::WriteSingleCoil { value, .. } => Some(Written::Coils(CoilValues::single(value))),
            Self::WriteSingleRegister { value, .. } => {
                Some(Written::Registers(RegisterValues::single(value)))
            }
            Self::WriteMultipleCoils { values, .. } => Some(Written::Coils(values)),
            Self::WriteMultipleRegisters { values, .. }
            | Self::ReadWriteMultipleRegisters { values, .. } => Some(Written::Registers(values)),
            _ => None,
        }
    }

    /// The flat summary an audit event or a log line needs (docs/DESIGN.md event fields), without the
    /// written values (see [`Request::written`]).
    pub fn inspect(&self) -> Inspection {
        let mut ranges = self.ranges();
        let first = ranges.next();
        let second = ranges.next();
        Inspection {
            function: self.function(),
            access: self.access(),
            sub_function: self.sub_function(),
            table: first.map(|(t, _)| t),
            address: first.map(|(_, r)| r.start()),
            quantity: first.map(|(_, r)| r.count()),
            write_address: second.map(|(_, r)| r.start()),
            write_quantity: second.map(|(_, r)| r.count()),
        }
    }

    /// False only for FC 8 sub-function 0x0004 Force Listen Only Mode, which a device never
    /// answers. (Broadcasts, RTU address 0, are never answered either: that is the caller's
    /// to check with [`crate::UnitId::is_broadcast`].)
    pub const fn expects_response(&self) -> bool {
        !matches!(
            self,
            Self::Diagnostics {
                sub_function: diagnostics::FORCE_LISTEN_ONLY,
                ..
            }
        )
    }

    /// Writes the PDU into `out` and returns its length. Refuses (with
    /// [`EncodeError::Invalid`]) anything [`Request::parse`] would refuse, so
    /// `Request::parse(&out[..n]) == Ok(*self)` always holds.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        w.put_u8(self.function().get())?;
        match *self {
            Self::ReadCoils(r)
            | Self::ReadDiscreteInputs(r)
            | Self::ReadHoldingRegisters(r)
            | Self::ReadInputRegisters(r) => {
                w.put_u16(r.start())?;
                w.put_u16(r.count())?;
            }
            Self::WriteSingleCoil { address, value } => {
                w.put_u16(address)?;
                w.put_u16(if value { COIL_ON } else { COIL_OFF })?;
            }
            Self::WriteSingleRegister { address, value } => {
                w.put_u16(address)?;
                w.put_u16(value)?;
            }
            Self::ReadExceptionStatus
            | Self::GetCommEventCounter
            | Self::GetCommEventLog
            | Self::ReportServerId => {}
            Self::Diagnostics { sub_function, data } => {
                w.put_u16(sub_function)?;
                w.put(data)?;
            }
            Self::WriteMultipleCoils { range, values } => {
                w.put_u16(range.start())?;
                w.put_u16(range.count())?;
                w.put_u8(byte_len(values.as_bytes().len())?)?;
                w.put(values.as_bytes())?;
            }
            Self::WriteMultipleRegisters { range, values } => {
                w.put_u16(range.start())?;
                w.put_u16(range.count())?;
                w.put_u8(byte_len(values.as_bytes().len())?)?;
                w.put(values.as_bytes())?;
            }
            Self::ReadFileRecord(records) => {
                w.put_u8(byte_len(records.as_bytes().len())?)?;
                w.put(records.as_bytes())?;
            }
            Self::WriteFileRecord(records) => {
                w.put_u8(byte_len(records.as_bytes().len())?)?;
                w.put(records.as_bytes())?;
            }
            Self::MaskWriteRegister {
                address,
                and_mask,
                or_mask,
            } => {
                w.put_u16(address)?;
                w.put_u16(and_mask)?;
                w.put_u16(or_mask)?;
            }
            Self::ReadWriteMultipleRegisters {
                read,
                write,
                values,
            } => {
                w.put_u16(read.start())?;
                w.put_u16(read.count())?;
                w.put_u16(write.start())?;
                w.put_u16(write.count())?;
                w.put_u8(byte_len(values.as_bytes().len())?)?;
                w.put(values.as_bytes())?;
            }
            Self::ReadFifoQueue { address } => w.put_u16(address)?,
            Self::ReadDeviceIdentification {
                read_code,
                object_id,
            } => {
                w.put_u8(MEI_READ_DEVICE_ID)?;
                w.put_u8(read_code.to_u8())?;
                w.put_u8(object_id)?;
            }
            Self::CanOpenGeneralReference { data } => {
                w.put_u8(MEI_CANOPEN)?;
                w.put(data)?;
            }
            Self::UserDefined { data, .. } => w.put(data)?,
        }
        let len = w.len();
        if len > MAX_PDU_LEN {
            return Err(EncodeError::PduLength(len));
        }
        match Request::parse(w.written()) {
            Ok(parsed) if parsed == *self => Ok(len),
            Ok(_) => Err(EncodeError::Invalid(PduError::new(
                self.function().get(),
                Direction::Request,
                PduErrorKind::Value {
                    field: "value not representable on the wire",
                    value: 0,
                },
            ))),
            Err(e) => Err(EncodeError::Invalid(e)),
        }
    }
}

/// The flat view of a request for events and logs: the docs/DESIGN.md field names, FC 23's write
/// range in `write_address` / `write_quantity`. Made by [`Request::inspect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Inspection {
    /// `fc` (with [`FunctionCode::name`] as `function`).
    pub function: FunctionCode,
    /// `access`.
    pub access: Access,
    /// `sub_function`: FC 8 sub-function or FC 43 MEI type.
    pub sub_function: Option<u16>,
    /// `table` of the first range.
    pub table: Option<Table>,
    /// `address`: start of the first range (FC 23: the read range).
    pub address: Option<u16>,
    /// `quantity` of the first range.
    pub quantity: Option<u16>,
    /// FC 23: start of the write range.
    pub write_address: Option<u16>,
    /// FC 23: size of the write range.
    pub write_quantity: Option<u16>,
}

/// A byte-count field value, refusing lengths a PDU cannot hold.
fn byte_len(len: usize) -> Result<u8, EncodeError> {
    u8::try_from(len).map_err(|_| EncodeError::PduLength(len))
}

/// `min <= value <= max`, else a `Quantity` error naming `field`.
pub(crate) const fn quantity(
    field: &'static str,
    value: u16,
    min: u16,
    max: u16,
) -> Result<(), PduErrorKind> {
    if value < min || value > max {
        Err(PduErrorKind::Quantity {
            field,
            value,
            min,
            max,
        })
    } else {
        Ok(())
    }
}

/// The address range of a quantity already checked to be >= 1.
pub(crate) const fn range(address: u16, quantity: u16) -> Result<AddressRange, PduErrorKind> {
    match AddressRange::new(address, quantity) {
        Ok(r) => Ok(r),
        Err(_) => Err(PduErrorKind::AddressOverflow { address, quantity }),
    }
}

/// `found == expected`, else a `ByteCount` error.
pub(crate) const fn byte_count(expected: usize, found: usize) -> Result<(), PduErrorKind> {
    if expected == found {
        Ok(())
    } else {
        Err(PduErrorKind::ByteCount { expected, found })
    }
}

/// `min <= value <= max`, else a `ByteCountRange` error.
pub(crate) const fn byte_count_range(
    value: usize,
    min: usize,
    max: usize,
) -> Result<(), PduErrorKind> {
    if value < min || value > max {
        Err(PduErrorKind::ByteCountRange { value, min, max })
    } else {
        Ok(())
    }
}

/// The fast path of [`Request::parse`]: returns `Ok` itself only for a PDU of FC 1-6, 15, 16 or
/// 23 that passes every check of [`parse_body`] (exact length, quantity limits, byte counts,
/// FC 5 value, address + quantity <= 65536); anything else goes to [`Request::parse_full`],
/// which accepts or refuses it with the precise reason. Slice patterns pin the length, so there
/// is no per-field bounds check, and the `Result` is built in place (no `Option` to convert).
/// `tests::fast_path_agrees_with_full_parser` checks both paths agree.
#[inline(always)]
fn parse_fast(pdu: &[u8]) -> Result<Request<'_>, PduError> {
    match *pdu {
        [fc @ 1..=4, a0, a1, q0, q1] => {
            let qty = u16::from_be_bytes([q0, q1]);
            let max = if fc <= 2 {
                MAX_READ_BITS
            } else {
                MAX_READ_REGISTERS
            };
            if qty == 0 || qty > max {
                return Request::parse_full(pdu);
            }
            let Ok(range) = AddressRange::new(u16::from_be_bytes([a0, a1]), qty) else {
                return Request::parse_full(pdu);
            };
            Ok(match fc {
                1 => Request::ReadCoils(range),
                2 => Request::ReadDiscreteInputs(range),
                3 => Request::ReadHoldingRegisters(range),
                _ => Request::ReadInputRegisters(range),
            })
        }
        [5, a0, a1, v0, v1] => {
            let Ok(value) = coil_value(u16::from_be_bytes([v0, v1])) else {
                return Request::parse_full(pdu);
            };
            Ok(Request::WriteSingleCoil {
                address: u16::from_be_bytes([a0, a1]),
                value,
            })
        }
        [6, a0, a1, v0, v1] => Ok(Request::WriteSingleRegister {
            address: u16::from_be_bytes([a0, a1]),
            value: u16::from_be_bytes([v0, v1]),
        }),
        [15, a0, a1, q0, q1, bc, ref data @ ..] => {
            let qty = u16::from_be_bytes([q0, q1]);
            // 1..=1968 coils, byte count ⌈q/8⌉, exactly that many bytes (PDU <= 6 + 246).
            if qty == 0
                || qty > MAX_WRITE_COILS
                || usize::from(bc) != bit_bytes(qty)
                || data.len() != usize::from(bc)
            {
                return Request::parse_full(pdu);
            }
            let Ok(range) = AddressRange::new(u16::from_be_bytes([a0, a1]), qty) else {
                return Request::parse_full(pdu);
            };
            let Some(values) = CoilValues::new(data, qty) else {
                return Request::parse_full(pdu);
            };
            Ok(Request::WriteMultipleCoils { range, values })
        }
        [16, a0, a1, q0, q1, bc, ref data @ ..] => {
            let qty = u16::from_be_bytes([q0, q1]);
            // 1..=123 registers, byte count 2q, exactly that many bytes (PDU <= 6 + 246).
            if qty == 0
                || qty > MAX_WRITE_REGISTERS
                || usize::from(bc) != 2 * usize::from(qty)
                || data.len() != usize::from(bc)
            {
                return Request::parse_full(pdu);
            }
            let Ok(range) = AddressRange::new(u16::from_be_bytes([a0, a1]), qty) else {
                return Request::parse_full(pdu);
            };
            let Some(values) = RegisterValues::new(data) else {
                return Request::parse_full(pdu);
            };
            Ok(Request::WriteMultipleRegisters { range, values })
        }
        [23, ra0, ra1, rq0, rq1, wa0, wa1, wq0, wq1, bc, ref data @ ..] => {
            let read_qty = u16::from_be_bytes([rq0, rq1]);
            let write_qty = u16::from_be_bytes([wq0, wq1]);
            // read 1..=125, write 1..=121, byte count 2·wq, exactly that many bytes
            // (PDU <= 10 + 242).
            if read_qty == 0
                || read_qty > MAX_RW_READ_REGISTERS
                || write_qty == 0
                || write_qty > MAX_RW_WRITE_REGISTERS
                || usize::from(bc) != 2 * usize::from(write_qty)
                || data.len() != usize::from(bc)
            {
                return Request::parse_full(pdu);
            }
            let Ok(read) = AddressRange::new(u16::from_be_bytes([ra0, ra1]), read_qty) else {
                return Request::parse_full(pdu);
            };
            let Ok(write) = AddressRange::new(u16::from_be_bytes([wa0, wa1]), write_qty) else {
                return Request::parse_full(pdu);
            };
            let Some(values) = RegisterValues::new(data) else {
                return Request::parse_full(pdu);
            };
            Ok(Request::ReadWriteMultipleRegisters {
                read,
                write,
                values,
            })
        }
        _ => Request::parse_full(pdu),
    }
}

fn parse_body(fc: u8, body: &[u8]) -> Result<Request<'_>, PduErrorKind> {
    let mut r = Reader::new(body);
    let request = match fc {
        1..=4 => {
            let address = r.read_u16("starting address")?;
            let qty = r.read_u16("quantity")?;
            let max = if fc <= 2 {
                MAX_READ_BITS
            } else {
                MAX_READ_REGISTERS
            };
            quantity("quantity", qty, 1, max)?;
            r.expect_empty()?;
            let range = range(address, qty)?;
            match fc {
                1 => Request::ReadCoils(range),
                2 => Request::ReadDiscreteInputs(range),
                3 => Request::ReadHoldingRegisters(range),
                _ => Request::ReadInputRegisters(range),
            }
        }
        5 => {
            let address = r.read_u16("output address")?;
            let value = r.read_u16("output value")?;
            let value = coil_value(value)?;
            r.expect_empty()?;
            Request::WriteSingleCoil { address, value }
        }
        6 => {
            let address = r.read_u16("register address")?;
            let value = r.read_u16("register value")?;
            r.expect_empty()?;
            Request::WriteSingleRegister { address, value }
        }
        7 | 11 | 12 | 17 => {
            r.expect_empty()?;
            match fc {
                7 => Request::ReadExceptionStatus,
                11 => Request::GetCommEventCounter,
                12 => Request::GetCommEventLog,
                _ => Request::ReportServerId,
            }
        }
        8 => {
            let sub_function = r.read_u16("sub-function")?;
            let data = r.rest();
            diagnostics_data(sub_function, data)?;
            Request::Diagnostics { sub_function, data }
        }
        15 => {
            let address = r.read_u16("starting address")?;
            let qty = r.read_u16("quantity of outputs")?;
            let bc = r.read_u8("byte count")?;
            quantity("quantity of outputs", qty, 1, MAX_WRITE_COILS)?;
            byte_count(bit_bytes(qty), bc as usize)?;
            let data = r.take(bc as usize, "outputs value")?;
            r.expect_empty()?;
            let range = range(address, qty)?;
            let values = CoilValues::new(data, qty).ok_or(PduErrorKind::ByteCount {
                expected: bit_bytes(qty),
                found: data.len(),
            })?;
            Request::WriteMultipleCoils { range, values }
        }
        16 => {
            let address = r.read_u16("starting address")?;
            let qty = r.read_u16("quantity of registers")?;
            let bc = r.read_u8("byte count")?;
            quantity("quantity of registers", qty, 1, MAX_WRITE_REGISTERS)?;
            byte_count(2 * qty as usize, bc as usize)?;
            let data = r.take(bc as usize, "registers value")?;
            r.expect_empty()?;
            let range = range(address, qty)?;
            let values = registers(data)?;
            Request::WriteMultipleRegisters { range, values }
        }
        20 => {
            let bc = r.read_u8("byte count")? as usize;
            byte_count_range(bc, 0x07, 0xF5)?;
            let data = r.take(bc, "sub-requests")?;
            r.expect_empty()?;
            Request::ReadFileRecord(read_file_subrequests(data)?)
        }
        21 => {
            let bc = r.read_u8("byte count")? as usize;
            byte_count_range(bc, 0x09, 0xFB)?;
            let data = r.take(bc, "sub-requests")?;
            r.expect_empty()?;
            Request::WriteFileRecord(write_file_subrequests(data)?)
        }
        22 => {
            let address = r.read_u16("reference address")?;
            let and_mask = r.read_u16("and mask")?;
            let or_mask = r.read_u16("or mask")?;
            r.expect_empty()?;
            Request::MaskWriteRegister {
                address,
                and_mask,
                or_mask,
            }
        }
        23 => {
            let read_address = r.read_u16("read starting address")?;
            let read_qty = r.read_u16("quantity to read")?;
            let write_address = r.read_u16("write starting address")?;
            let write_qty = r.read_u16("quantity to write")?;
            let bc = r.read_u8("write byte count")?;
            quantity("quantity to read", read_qty, 1, MAX_RW_READ_REGISTERS)?;
            quantity("quantity to write", write_qty, 1, MAX_RW_WRITE_REGISTERS)?;
            byte_count(2 * write_qty as usize, bc as usize)?;
            let data = r.take(bc as usize, "write registers value")?;
            r.expect_empty()?;
            let read = range(read_address, read_qty)?;
            let write = range(write_address, write_qty)?;
            Request::ReadWriteMultipleRegisters {
                read,
                write,
                values: registers(data)?,
            }
        }
        24 => {
            let address = r.read_u16("FIFO pointer address")?;
            r.expect_empty()?;
            Request::ReadFifoQueue { address }
        }
        43 => {
            let mei = r.read_u8("MEI type")?;
            match mei {
                MEI_READ_DEVICE_ID => {
                    let code = r.read_u8("read device id code")?;
                    let object_id = r.read_u8("object id")?;
                    r.expect_empty()?;
                    let read_code = ReadDeviceIdCode::from_u8(code).ok_or(PduErrorKind::Value {
                        field: "read device id code",
                        value: code as u16,
                    })?;
                    Request::ReadDeviceIdentification {
                        read_code,
                        object_id,
                    }
                }
                MEI_CANOPEN => Request::CanOpenGeneralReference { data: r.rest() },
                other => return Err(PduErrorKind::UnknownMeiType(other)),
            }
        }
        65..=72 | 100..=110 => Request::UserDefined {
            function: FunctionCode::new(fc),
            data: r.rest(),
        },
        _ => return Err(PduErrorKind::UnknownFunction),
    };
    Ok(request)
}

/// FC 5 value: 0xFF00 on, 0x0000 off, anything else is exception 03.
pub(crate) const fn coil_value(value: u16) -> Result<bool, PduErrorKind> {
    match value {
        COIL_ON => Ok(true),
        COIL_OFF => Ok(false),
        _ => Err(PduErrorKind::Value {
            field: "output value",
            value,
        }),
    }
}

pub(crate) fn registers(data: &[u8]) -> Result<RegisterValues<'_>, PduErrorKind> {
    RegisterValues::new(data).ok_or(PduErrorKind::ByteCountMultiple {
        value: data.len(),
        multiple: 2,
    })
}

/// FC 8 data field rules per sub-function (V1.1b3 §6.8.1); unknown sub-functions are 01.
pub(crate) fn diagnostics_data(sub: u16, data: &[u8]) -> Result<(), PduErrorKind> {
    if !diagnostics::is_defined(sub) {
        return Err(PduErrorKind::UnknownSubFunction(sub));
    }
    if sub == diagnostics::RETURN_QUERY_DATA {
        return Ok(());
    }
    let mut r = Reader::new(data);
    let value = r.read_u16("data")?;
    r.expect_empty()?;
    let ok = match sub {
        diagnostics::RESTART_COMMUNICATIONS => value == 0x0000 || value == 0xFF00,
        diagnostics::CHANGE_ASCII_DELIMITER => value & 0x00FF == 0,
        _ => value == 0x0000,
    };
    if ok {
        Ok(())
    } else {
        Err(PduErrorKind::Value {
            field: "diagnostics data",
            value,
        })
    }
}

/// FC 20 sub-requests: 7 bytes each (reference type, file, record, length); the response must
/// fit a PDU; then the file/record checks (02).
fn read_file_subrequests(data: &[u8]) -> Result<FileRecordRequests<'_>, PduErrorKind> {
    if data.len() % 7 != 0 {
        return Err(PduErrorKind::ByteCountMultiple {
            value: data.len(),
            multiple: 7,
        });
    }
    let records = FileRecordRequests { bytes: data };
    // Response: fc, byte count, then per sub-request: length, reference type, 2·N data bytes.
    let response_len = records
        .iter()
        .fold(2usize, |acc, rec| acc + 2 + 2 * rec.record_length as usize);
    if response_len > MAX_PDU_LEN {
        return Err(PduErrorKind::ResponseTooLong {
            length: response_len,
        });
    }
    for chunk in data.chunks_exact(7) {
        let mut r = Reader::new(chunk);
        let reference = r.read_u8("reference type")?;
        let file = r.read_u16("file number")?;
        let record = r.read_u16("record number")?;
        let length = r.read_u16("record length")?;
        file_record_fields(reference, file, record, length)?;
    }
    Ok(records)
}

/// FC 21 sub-requests: reference type, file, record, length N, 2·N data bytes, back to back.
pub(crate) fn write_file_subrequests(data: &[u8]) -> Result<FileRecords<'_>, PduErrorKind> {
    let mut r = Reader::new(data);
    let mut address_error = None;
    while r.remaining() > 0 {
        let reference = r.read_u8("reference type")?;
        let file = r.read_u16("file number")?;
        let record = r.read_u16("record number")?;
        let length = r.read_u16("record length")?;
        r.take(2 * length as usize, "record data")?;
        if address_error.is_none() {
            address_error = file_record_fields(reference, file, record, length).err();
        }
    }
    // Structure (03) before file/record fields (02).
    match address_error {
        Some(e) => Err(e),
        None => Ok(FileRecords { bytes: data }),
    }
}

/// Reference type 6, file number 1..=0xFFFF, record number 0..=0x270F, at least one record and
/// not past record 0x270F (answered 02).
const fn file_record_fields(
    reference: u8,
    file: u16,
    record: u16,
    length: u16,
) -> Result<(), PduErrorKind> {
    if reference != FILE_REFERENCE_TYPE {
        return Err(PduErrorKind::FileRecord {
            field: "reference type",
            value: reference as u16,
        });
    }
    if file == 0 {
        return Err(PduErrorKind::FileRecord {
            field: "file number",
            value: file,
        });
    }
    if record > MAX_FILE_RECORD_NUMBER {
        return Err(PduErrorKind::FileRecord {
            field: "record number",
            value: record,
        });
    }
    if length == 0 || record as u32 + length as u32 > MAX_FILE_RECORD_NUMBER as u32 + 1 {
        return Err(PduErrorKind::FileRecord {
            field: "record length",
            value: length,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Boundary values for 16-bit address and quantity fields.
    const EDGES: [u16; 14] = [0, 1, 2, 7, 8, 120, 121, 122, 123, 124, 125, 126, 1968, 2000];

    /// Checks the fast path (inside `parse`) and the full parser agree on `pdu`; true when
    /// it is accepted.
    fn agree(pdu: &[u8]) -> bool {
        let full = Request::parse_full(pdu);
        assert_eq!(Request::parse(pdu), full, "{pdu:02X?}");
        full.is_ok()
    }

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

    #[test]
    fn fast_path_agrees_with_full_parser() {
        // Accepted PDUs per function code, so no section passes vacuously.
        let mut accepted = [0u32; 24];
        let addresses = [
            0u16,
            1,
            0x6B,
            0xFF00,
            0xFFFE,
            0xFFFF,
            0xFFFF - 124,
            0xFFFF - 1999,
        ];
        for fc in [1u8, 2, 3, 4, 5, 6, 7, 15, 16, 23] {
            for &address in &addresses {
                for q in EDGES.into_iter().chain([0xFF00, 0xFFFF, 0x00FF]) {
                    let mut pdu = vec![fc];
                    pdu.extend(address.to_be_bytes());
                    pdu.extend(q.to_be_bytes());
                    for cut in 0..pdu.len() {
                        accepted[usize::from(fc)] += u32::from(agree(&pdu[..cut]));
                    }
                    accepted[usize::from(fc)] += u32::from(agree(&pdu));
                    pdu.push(0);
                    accepted[usize::from(fc)] += u32::from(agree(&pdu));
                }
            }
        }
        // FC 16: every quantity 0..=130 against byte counts and data lengths around 2q.
        for &address in &addresses {
            for q in 0u16..=130 {
                for bc in [2 * q, (2 * q).wrapping_sub(1), 2 * q + 1, 2 * q + 2] {
                    for extra in [-2i32, -1, 0, 1] {
                        let len = i32::from(bc) + extra;
                        if !(0..=300).contains(&len) {
                            continue;
                        }
                        let mut pdu = vec![16];
                        pdu.extend(address.to_be_bytes());
                        pdu.extend(q.to_be_bytes());
                        pdu.push(bc as u8);
                        pdu.extend((0..len).map(|i| i as u8));
                        accepted[usize::from(pdu[0])] += u32::from(agree(&pdu));
                    }
                }
            }
        }
        // FC 15: quantities around the byte boundaries and the limit, byte counts around ⌈q/8⌉.
        for &address in &addresses {
            for q in (0u16..=20).chain(1960..=1975).chain([0xFFFF]) {
                let expected = bit_bytes(q) as i32;
                for bc in [expected - 1, expected, expected + 1] {
                    for extra in [-1i32, 0, 1] {
                        let len = bc + extra;
                        if !(0..=255).contains(&bc) || !(0..=300).contains(&len) {
                            continue;
                        }
                        let mut pdu = vec![15];
                        pdu.extend(address.to_be_bytes());
                        pdu.extend(q.to_be_bytes());
                        pdu.push(bc as u8);
                        pdu.extend((0..len).map(|i| i as u8));
                        accepted[usize::from(pdu[0])] += u32::from(agree(&pdu));
                    }
                }
            }
        }
        // FC 23: read and write quantities at their edges, byte counts around 2·wq.
        for &address in &addresses {
            for rq in EDGES {
                for wq in EDGES {
                    for bc in [2 * wq, 2 * wq + 1, (2 * wq).wrapping_sub(2)] {
                        for extra in [-1i32, 0, 1] {
                            let len = i32::from(bc as u8) + extra;
                            if len < 0 {
                                continue;
                            }
                            let mut pdu = vec![23];
                            pdu.extend(address.to_be_bytes());
                            pdu.extend(rq.to_be_bytes());
                            pdu.extend(0x10u16.to_be_bytes());
                            pdu.extend(wq.to_be_bytes());
                            pdu.push(bc as u8);
                            pdu.extend((0..len).map(|i| i as u8));
                            accepted[23] += u32::from(agree(&pdu));
                        }
                    }
                }
            }
        }
        // Random PDUs of the fast-path function codes (xorshift, fixed seed).
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let fc = [1u8, 2, 3, 4, 5, 6, 15, 16, 23][(x % 9) as usize];
            let len = ((x >> 8) % 14) as usize;
            let mut pdu = vec![fc];
            pdu.extend((0..len).map(|i| (x >> (16 + 4 * (i % 12))) as u8));
            accepted[usize::from(fc)] += u32::from(agree(&pdu));
        }
        for fc in [1, 2, 3, 4, 5, 6, 15, 16, 23] {
            assert!(accepted[fc] > 10, "FC {fc}: only {} accepted", accepted[fc]);
        }
    }
}
