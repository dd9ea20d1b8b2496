//! [`Request::encode`]: writes a [`Request`] as a PDU, the inverse of the parser.
//!
//! Separate from the parser and the policy view because only clients (`zonegate probe`, tests,
//! benches) build requests; the gateway forwards the bytes it parsed. The encoder re-parses what
//! it wrote, so it refuses anything the parser would refuse and `parse(encode(x)) == x`.

use super::Request;
use crate::cursor::Writer;
use crate::error::{EncodeError, PduError, PduErrorKind};
use crate::pdu::{COIL_OFF, COIL_ON, MAX_PDU_LEN, MEI_CANOPEN, MEI_READ_DEVICE_ID};
use crate::types::Direction;

impl Request<'_> {
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

/// A byte-count field value, refusing lengths a PDU cannot hold.
fn byte_len(len: usize) -> Result<u8, EncodeError> {
    u8::try_from(len).map_err(|_| EncodeError::PduLength(len))
}
