//! The policy view of a parsed [`Request`]: what the gateway decides on and what an audit event
//! records (function, access class, FC 8 sub-function / FC 43 MEI type, the (table, range)
//! pairs touched, the values written) and the flat [`Inspection`] summary.
//!
//! Separate from the parser because this is what the policy engine and the audit code read: a
//! question "which addresses does FC 23 touch?" is answered here, not in the wire rules.

use super::{diagnostics, Request};
use crate::pdu::{CoilValues, Ranges, RegisterValues, Written, MEI_CANOPEN, MEI_READ_DEVICE_ID};
use crate::types::{Access, AddressRange, FunctionCode, Table};

impl<'a> Request<'a> {
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
