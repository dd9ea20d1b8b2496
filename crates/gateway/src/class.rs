//! Which requests are "write class" for the audit trail: made durable before they are
//! forwarded (`audit.sync: writes`) and refused while the log fails (`on_failure: block_writes`).
//!
//! Deny by default: a request is write class unless V1.1b3 describes it as only reading or
//! returning data. The policy's `access` class (read | write | diagnostics | other) says which
//! rules may allow a function; it is not this: FC 8 is `diagnostics` to the policy, yet its
//! sub-function 0x01 restarts the device's communications and 0x04 silences it.
//!
//! Reads (nothing in the device changes, in the spec's words):
//! - FC 1, 2, 3, 4 "Read Coils / Discrete Inputs / Holding Registers / Input Registers";
//! - FC 7 "Read Exception Status", FC 11 "Get Comm Event Counter", FC 12 "Get Comm Event Log",
//!   FC 17 "Report Server ID", FC 20 "Read File Record", FC 24 "Read FIFO Queue" (§6.18: it
//!   "reads the contents of a First-In-First-Out (FIFO) queue", nothing is removed);
//! - FC 43 / MEI 14 "Read Device Identification";
//! - FC 8 sub-functions that only return data: 0x00 Return Query Data, 0x02 Return Diagnostic
//!   Register, 0x0B-0x12 Return Bus Message / ... / Bus Character Overrun Count.
//!
//! Write class: everything else. FC 5, 6, 15, 16, 21, 22, 23; FC 8 0x01 Restart Communications
//! Option, 0x03 Change ASCII Input Delimiter, 0x04 Force Listen Only Mode, 0x0A Clear Counters
//! and Diagnostic Register, 0x14 Clear Overrun Counter and Flag; FC 43 / MEI 13 CANopen General
//! Reference (it can write objects); every user-defined code (its meaning is the vendor's).

use zonegate_modbus::{diagnostics, Request};

/// True unless `request` only reads (see the module docs).
pub(crate) fn is_write_class(request: &Request<'_>) -> bool {
    match request {
        Request::ReadCoils(_)
        | Request::ReadDiscreteInputs(_)
        | Request::ReadHoldingRegisters(_)
        | Request::ReadInputRegisters(_)
        | Request::ReadExceptionStatus
        | Request::GetCommEventCounter
        | Request::GetCommEventLog
        | Request::ReportServerId
        | Request::ReadFileRecord(_)
        | Request::ReadFifoQueue { .. }
        | Request::ReadDeviceIdentification { .. } => false,
        Request::Diagnostics { sub_function, .. } => !matches!(
            *sub_function,
            diagnostics::RETURN_QUERY_DATA | diagnostics::RETURN_DIAGNOSTIC_REGISTER | 0x0B..=0x12
        ),
        _ => true,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn class_of(pdu: &[u8]) -> bool {
        is_write_class(&Request::parse(pdu).unwrap())
    }

    #[test]
    fn reads_are_not_write_class() {
        for pdu in [
            &[0x01, 0, 0, 0, 8][..],
            &[0x02, 0, 0, 0, 8],
            &[0x03, 0, 0, 0, 2],
            &[0x04, 0, 0, 0, 2],
            &[0x07],
            &[0x0B],
            &[0x0C],
            &[0x11],
            &[0x18, 0, 4],
            &[0x2B, 0x0E, 1, 0],
            // FC 8 Return Query Data, Return Diagnostic Register, Return Bus Message Count.
            &[0x08, 0, 0, 0x12, 0x34],
            &[0x08, 0, 2, 0, 0],
            &[0x08, 0, 0x0B, 0, 0],
            &[0x08, 0, 0x12, 0, 0],
        ] {
            assert!(!class_of(pdu), "{pdu:02x?}");
        }
    }

    #[test]
    fn fc8_restart_listen_only_clear_and_user_defined_are_write_class() {
        for pdu in [
            &[0x05, 0, 1, 0xFF, 0][..],
            &[0x06, 0, 1, 0, 7],
            &[0x16, 0, 1, 0xFF, 0xFF, 0, 0],
            // FC 8 Restart Communications, Change ASCII delimiter, Force Listen Only,
            // Clear Counters, Clear Overrun Counter.
            &[0x08, 0, 1, 0, 0],
            &[0x08, 0, 3, 0x0A, 0],
            &[0x08, 0, 4, 0, 0],
            &[0x08, 0, 0x0A, 0, 0],
            &[0x08, 0, 0x14, 0, 0],
            // CANopen General Reference, user-defined 65 and 100.
            &[0x2B, 0x0D, 1, 2],
            &[0x41, 1, 2, 3],
            &[0x64],
        ] {
            assert!(class_of(pdu), "{pdu:02x?}");
        }
    }
}
