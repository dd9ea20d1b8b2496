//! The field rules of a request or response PDU: quantity limits, address ranges that must not
//! pass 65535, byte counts, the FC 5 coil value and register data of an even length.
//!
//! Separate because both parsers use them (crate::response answers with the same rules), and
//! each maps a broken field to the [`PduErrorKind`] that gives the right exception code.

use crate::error::PduErrorKind;
use crate::pdu::{RegisterValues, COIL_OFF, COIL_ON};
use crate::types::AddressRange;

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
