//! The full request parser: one arm per function code (V1.1b3 §6.1-§6.21), with the data rules
//! of FC 8 (per sub-function), FC 20 and FC 21 (file record sub-requests).
//!
//! This is the reference for what a valid request is and which exception an invalid one gets;
//! [`super::fast`] only short-cuts the common shapes and falls back to it for the error.

use super::fields::{byte_count, byte_count_range, coil_value, quantity, range, registers};
use super::{diagnostics, Request};
use crate::cursor::Reader;
use crate::error::PduErrorKind;
use crate::pdu::{
    bit_bytes, CoilValues, FileRecordRequests, FileRecords, ReadDeviceIdCode, FILE_REFERENCE_TYPE,
    MAX_FILE_RECORD_NUMBER, MAX_PDU_LEN, MAX_READ_BITS, MAX_READ_REGISTERS, MAX_RW_READ_REGISTERS,
    MAX_RW_WRITE_REGISTERS, MAX_WRITE_COILS, MAX_WRITE_REGISTERS, MEI_CANOPEN, MEI_READ_DEVICE_ID,
};
use crate::types::FunctionCode;

/// The body (after the function code) of a request with function code `fc`.
pub(super) fn parse_body(fc: u8, body: &[u8]) -> Result<Request<'_>, PduErrorKind> {
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
