//! The vector table: one PDU per case, annotated field by field, for every function code,
//! requests and responses, valid and invalid (with the reason and the exception a device would
//! answer). Every case is parsed directly, wrapped in a TCP ADU and an RTU ADU, and fed to the
//! streaming deframers whole, split at every offset and byte by byte; valid cases also go through
//! the encoder and must come out byte-identical. Layouts: Modbus Application Protocol V1.1b3 §6.

use zonegate_modbus::{rtu, Direction, FrameError, Request, Response};

use super::util::{assert_rtu_every_split, assert_tcp_every_split, rtu_wrap, tcp_stream, tcp_wrap};

use Direction::{Request as Req, Response as Rsp};

/// What parsing a case must give.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expect {
    Valid,
    /// `PduError::as_str()` and `exception_code()`.
    Invalid(&'static str, Option<u8>),
}

use Expect::{Invalid, Valid};

#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) direction: Direction,
    pub(crate) pdu: Vec<u8>,
    pub(crate) expect: Expect,
}

fn case(name: &'static str, direction: Direction, pdu: &[u8], expect: Expect) -> Case {
    Case {
        name,
        direction,
        pdu: pdu.to_vec(),
        expect,
    }
}

/// `head` followed by `n` bytes of `fill`.
fn with_fill(head: &[u8], n: usize, fill: u8) -> Vec<u8> {
    let mut v = head.to_vec();
    v.extend(std::iter::repeat_n(fill, n));
    v
}

fn long(name: &'static str, direction: Direction, pdu: Vec<u8>, expect: Expect) -> Case {
    Case {
        name,
        direction,
        pdu,
        expect,
    }
}

/// Every request vector.
#[rustfmt::skip]
pub(crate) fn requests() -> Vec<Case> {
    vec![
        // ---- FC 1 / 2: read bits, quantity 1..=2000 ----
        //                          | fc | addr      | qty       |
        case("fc1 spec example", Req, &[0x01, 0x00, 0x13, 0x00, 0x13], Valid),
        case("fc1 qty 2000", Req, &[0x01, 0x00, 0x00, 0x07, 0xD0], Valid),
        case("fc1 qty 1 at 65535", Req, &[0x01, 0xFF, 0xFF, 0x00, 0x01], Valid),
        case("fc1 qty 0", Req, &[0x01, 0x00, 0x00, 0x00, 0x00], Invalid("quantity", Some(3))),
        case("fc1 qty 2001", Req, &[0x01, 0x00, 0x00, 0x07, 0xD1], Invalid("quantity", Some(3))),
        case("fc1 addr+qty 65537", Req, &[0x01, 0xFF, 0xFF, 0x00, 0x02], Invalid("address_overflow", Some(2))),
        case("fc1 truncated qty", Req, &[0x01, 0x00, 0x13, 0x00], Invalid("truncated", Some(3))),
        case("fc1 trailing byte", Req, &[0x01, 0x00, 0x13, 0x00, 0x13, 0x00], Invalid("trailing_bytes", Some(3))),
        case("fc2 spec example", Req, &[0x02, 0x00, 0xC4, 0x00, 0x16], Valid),
        case("fc2 qty 2001", Req, &[0x02, 0x00, 0x00, 0x07, 0xD1], Invalid("quantity", Some(3))),
        // ---- FC 3 / 4: read registers, quantity 1..=125 ----
        //                          | fc | addr      | qty       |
        case("fc3 spec example", Req, &[0x03, 0x00, 0x6B, 0x00, 0x03], Valid),
        case("fc3 qty 125", Req, &[0x03, 0x00, 0x00, 0x00, 0x7D], Valid),
        case("fc3 addr+qty = 65536", Req, &[0x03, 0xFF, 0x83, 0x00, 0x7D], Valid),
        case("fc3 addr+qty = 65537", Req, &[0x03, 0xFF, 0x84, 0x00, 0x7D], Invalid("address_overflow", Some(2))),
        case("fc3 qty 126", Req, &[0x03, 0x00, 0x00, 0x00, 0x7E], Invalid("quantity", Some(3))),
        // quantity is checked (03) before address (02): qty 0xFFFF at 0xFFFF is a 03
        case("fc3 qty and addr bad: 03 first", Req, &[0x03, 0xFF, 0xFF, 0xFF, 0xFF], Invalid("quantity", Some(3))),
        case("fc3 only fc", Req, &[0x03], Invalid("truncated", Some(3))),
        case("fc4 spec example", Req, &[0x04, 0x00, 0x08, 0x00, 0x01], Valid),
        case("fc4 qty 0", Req, &[0x04, 0x00, 0x08, 0x00, 0x00], Invalid("quantity", Some(3))),
        // ---- FC 5: value 0xFF00 / 0x0000 only ----
        //                          | fc | addr      | value     |
        case("fc5 on", Req, &[0x05, 0x00, 0xAC, 0xFF, 0x00], Valid),
        case("fc5 off", Req, &[0x05, 0x00, 0xAC, 0x00, 0x00], Valid),
        case("fc5 value 0x0001", Req, &[0x05, 0x00, 0xAC, 0x00, 0x01], Invalid("value", Some(3))),
        case("fc5 value 0xFFFF", Req, &[0x05, 0x00, 0xAC, 0xFF, 0xFF], Invalid("value", Some(3))),
        case("fc5 value 0x00FF", Req, &[0x05, 0x00, 0xAC, 0x00, 0xFF], Invalid("value", Some(3))),
        // ---- FC 6 ----
        //                          | fc | addr      | value     |
        case("fc6 spec example", Req, &[0x06, 0x00, 0x01, 0x00, 0x03], Valid),
        case("fc6 any value", Req, &[0x06, 0xFF, 0xFF, 0xFF, 0xFF], Valid),
        case("fc6 truncated", Req, &[0x06, 0x00, 0x01, 0x00], Invalid("truncated", Some(3))),
        // ---- FC 7 / 11 / 12 / 17: function code only ----
        case("fc7", Req, &[0x07], Valid),
        case("fc7 trailing", Req, &[0x07, 0x00], Invalid("trailing_bytes", Some(3))),
        case("fc11", Req, &[0x0B], Valid),
        case("fc12", Req, &[0x0C], Valid),
        case("fc12 trailing", Req, &[0x0C, 0x01, 0x02], Invalid("trailing_bytes", Some(3))),
        case("fc17", Req, &[0x11], Valid),
        // ---- FC 8: diagnostics, sub-function + data ----
        //                          | fc | sub       | data      |
        case("fc8 return query data", Req, &[0x08, 0x00, 0x00, 0xA5, 0x37], Valid),
        case("fc8 return query data, 6 bytes", Req, &[0x08, 0x00, 0x00, 1, 2, 3, 4, 5, 6], Valid),
        case("fc8 restart comms, clear log", Req, &[0x08, 0x00, 0x01, 0xFF, 0x00], Valid),
        case("fc8 restart comms", Req, &[0x08, 0x00, 0x01, 0x00, 0x00], Valid),
        case("fc8 restart comms bad data", Req, &[0x08, 0x00, 0x01, 0x00, 0x01], Invalid("value", Some(3))),
        case("fc8 diag register", Req, &[0x08, 0x00, 0x02, 0x00, 0x00], Valid),
        case("fc8 ascii delimiter ':'", Req, &[0x08, 0x00, 0x03, 0x3A, 0x00], Valid),
        case("fc8 ascii delimiter low byte set", Req, &[0x08, 0x00, 0x03, 0x3A, 0x01], Invalid("value", Some(3))),
        case("fc8 force listen only", Req, &[0x08, 0x00, 0x04, 0x00, 0x00], Valid),
        case("fc8 force listen only bad data", Req, &[0x08, 0x00, 0x04, 0x00, 0x01], Invalid("value", Some(3))),
        case("fc8 clear counters", Req, &[0x08, 0x00, 0x0A, 0x00, 0x00], Valid),
        case("fc8 bus message count", Req, &[0x08, 0x00, 0x0B, 0x00, 0x00], Valid),
        case("fc8 clear overrun", Req, &[0x08, 0x00, 0x14, 0x00, 0x00], Valid),
        case("fc8 reserved 0x05", Req, &[0x08, 0x00, 0x05, 0x00, 0x00], Invalid("unknown_sub_function", Some(1))),
        case("fc8 legacy 0x13", Req, &[0x08, 0x00, 0x13, 0x00, 0x00], Invalid("unknown_sub_function", Some(1))),
        case("fc8 reserved 0x15", Req, &[0x08, 0x00, 0x15, 0x00, 0x00], Invalid("unknown_sub_function", Some(1))),
        case("fc8 counter missing data", Req, &[0x08, 0x00, 0x0B], Invalid("truncated", Some(3))),
        case("fc8 counter 4 data bytes", Req, &[0x08, 0x00, 0x0B, 0, 0, 0, 0], Invalid("trailing_bytes", Some(3))),
        case("fc8 no sub-function", Req, &[0x08, 0x00], Invalid("truncated", Some(3))),
        // ---- FC 15: quantity 1..=1968, byte count ceil(q/8) ----
        //                          | fc | addr      | qty       | bc | values    |
        case("fc15 spec example", Req, &[0x0F, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD, 0x01], Valid),
        long("fc15 qty 1968", Req, with_fill(&[0x0F, 0x00, 0x00, 0x07, 0xB0, 0xF6], 246, 0xA5), Valid),
        long("fc15 qty 1969", Req, with_fill(&[0x0F, 0x00, 0x00, 0x07, 0xB1, 0xF7], 247, 0xA5), Invalid("quantity", Some(3))),
        case("fc15 qty 0", Req, &[0x0F, 0x00, 0x13, 0x00, 0x00, 0x00], Invalid("quantity", Some(3))),
        case("fc15 bc too small", Req, &[0x0F, 0x00, 0x13, 0x00, 0x0A, 0x01, 0xCD], Invalid("byte_count", Some(3))),
        case("fc15 bc too large", Req, &[0x0F, 0x00, 0x13, 0x00, 0x0A, 0x03, 0xCD, 0x01, 0x00], Invalid("byte_count", Some(3))),
        case("fc15 data short", Req, &[0x0F, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD], Invalid("truncated", Some(3))),
        case("fc15 data trailing", Req, &[0x0F, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD, 0x01, 0x00], Invalid("trailing_bytes", Some(3))),
        case("fc15 addr+qty 65537", Req, &[0x0F, 0xFF, 0xFF, 0x00, 0x02, 0x01, 0x03], Invalid("address_overflow", Some(2))),
        // ---- FC 16: quantity 1..=123, byte count 2q ----
        //                          | fc | addr      | qty       | bc | values              |
        case("fc16 spec example", Req, &[0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02], Valid),
        long("fc16 qty 123", Req, with_fill(&[0x10, 0x00, 0x00, 0x00, 0x7B, 0xF6], 246, 0x11), Valid),
        case("fc16 qty 124 (sawp/suricata accept up to 125)", Req, &[0x10, 0x00, 0x00, 0x00, 0x7C, 0xF8], Invalid("quantity", Some(3))),
        case("fc16 qty 0", Req, &[0x10, 0x00, 0x00, 0x00, 0x00, 0x00], Invalid("quantity", Some(3))),
        case("fc16 bc odd", Req, &[0x10, 0x00, 0x01, 0x00, 0x01, 0x03, 0x00, 0x0A, 0x00], Invalid("byte_count", Some(3))),
        case("fc16 bc != 2q", Req, &[0x10, 0x00, 0x01, 0x00, 0x02, 0x02, 0x00, 0x0A], Invalid("byte_count", Some(3))),
        case("fc16 data short", Req, &[0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01], Invalid("truncated", Some(3))),
        case("fc16 addr+qty 65537", Req, &[0x10, 0xFF, 0xFF, 0x00, 0x02, 0x04, 0, 1, 0, 2], Invalid("address_overflow", Some(2))),
        // ---- FC 20: read file record ----
        //                          | fc | bc | ref | file      | record    | length    | ...
        case("fc20 spec example", Req, &[0x14, 0x0E, 0x06, 0x00, 0x04, 0x00, 0x01, 0x00, 0x02, 0x06, 0x00, 0x03, 0x00, 0x09, 0x00, 0x02], Valid),
        case("fc20 one sub-request", Req, &[0x14, 0x07, 0x06, 0x00, 0x01, 0x27, 0x0F, 0x00, 0x01], Valid),
        case("fc20 bc 6", Req, &[0x14, 0x06, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00], Invalid("byte_count_range", Some(3))),
        case("fc20 bc not a multiple of 7", Req, &[0x14, 0x08, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00], Invalid("byte_count_multiple", Some(3))),
        case("fc20 reference type 7", Req, &[0x14, 0x07, 0x07, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01], Invalid("file_record", Some(2))),
        case("fc20 file 0", Req, &[0x14, 0x07, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01], Invalid("file_record", Some(2))),
        case("fc20 record 0x2710", Req, &[0x14, 0x07, 0x06, 0x00, 0x01, 0x27, 0x10, 0x00, 0x01], Invalid("file_record", Some(2))),
        case("fc20 record + length past 0x270F", Req, &[0x14, 0x07, 0x06, 0x00, 0x01, 0x27, 0x0F, 0x00, 0x02], Invalid("file_record", Some(2))),
        case("fc20 length 0", Req, &[0x14, 0x07, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00], Invalid("file_record", Some(2))),
        case("fc20 response would exceed 253", Req, &[0x14, 0x07, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00, 0x7D], Invalid("response_too_long", Some(3))),
        case("fc20 data short", Req, &[0x14, 0x0E, 0x06, 0x00, 0x04, 0x00, 0x01, 0x00, 0x02], Invalid("truncated", Some(3))),
        // ---- FC 21: write file record ----
        //                          | fc | bc | ref | file      | record    | length    | data                          |
        case("fc21 spec example", Req, &[0x15, 0x0D, 0x06, 0x00, 0x04, 0x00, 0x07, 0x00, 0x03, 0x06, 0xAF, 0x04, 0xBE, 0x10, 0x0D], Valid),
        case("fc21 bc 8", Req, &[0x15, 0x08, 0x06, 0x00, 0x04, 0x00, 0x07, 0x00, 0x01, 0x06], Invalid("byte_count_range", Some(3))),
        case("fc21 reference type 5", Req, &[0x15, 0x09, 0x05, 0x00, 0x04, 0x00, 0x07, 0x00, 0x01, 0x06, 0xAF], Invalid("file_record", Some(2))),
        case("fc21 record data short", Req, &[0x15, 0x0B, 0x06, 0x00, 0x04, 0x00, 0x07, 0x00, 0x03, 0x06, 0xAF, 0x04, 0xBE], Invalid("truncated", Some(3))),
        // ---- FC 22: mask write ----
        //                          | fc | addr      | and       | or        |
        case("fc22 spec example", Req, &[0x16, 0x00, 0x04, 0x00, 0xF2, 0x00, 0x25], Valid),
        case("fc22 truncated", Req, &[0x16, 0x00, 0x04, 0x00, 0xF2, 0x00], Invalid("truncated", Some(3))),
        // ---- FC 23: read 1..=125, write 1..=121, bc 2·wq ----
        //                          | fc | r addr    | r qty     | w addr    | w qty     | bc | values                        |
        case("fc23 spec example", Req, &[0x17, 0x00, 0x03, 0x00, 0x06, 0x00, 0x0E, 0x00, 0x03, 0x06, 0x00, 0xFF, 0x00, 0xFF, 0x00, 0xFF], Valid),
        long("fc23 write 121", Req, with_fill( &[0x17, 0x00, 0x00, 0x00, 0x7D, 0x00, 0x00, 0x00, 0x79, 0xF2], 242, 0x01, ), Valid),
        case("fc23 read 126", Req, &[0x17, 0x00, 0x03, 0x00, 0x7E, 0x00, 0x0E, 0x00, 0x01, 0x02, 0x00, 0xFF], Invalid("quantity", Some(3))),
        case("fc23 read 0", Req, &[0x17, 0x00, 0x03, 0x00, 0x00, 0x00, 0x0E, 0x00, 0x01, 0x02, 0x00, 0xFF], Invalid("quantity", Some(3))),
        case("fc23 write 122 (sawp accepts)", Req, &[0x17, 0x00, 0x03, 0x00, 0x01, 0x00, 0x0E, 0x00, 0x7A, 0xF4], Invalid("quantity", Some(3))),
        case("fc23 bc != 2wq", Req, &[0x17, 0x00, 0x03, 0x00, 0x01, 0x00, 0x0E, 0x00, 0x01, 0x04, 0x00, 0xFF, 0x00, 0xFF], Invalid("byte_count", Some(3))),
        case("fc23 write addr overflow", Req, &[0x17, 0x00, 0x03, 0x00, 0x01, 0xFF, 0xFF, 0x00, 0x02, 0x04, 0, 1, 0, 2], Invalid("address_overflow", Some(2))),
        case("fc23 read addr overflow", Req, &[0x17, 0xFF, 0xFF, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x02, 0, 1], Invalid("address_overflow", Some(2))),
        // ---- FC 24 ----
        //                          | fc | fifo ptr  |
        case("fc24 spec example", Req, &[0x18, 0x04, 0xDE], Valid),
        case("fc24 trailing", Req, &[0x18, 0x04, 0xDE, 0x00], Invalid("trailing_bytes", Some(3))),
        // ---- FC 43: MEI 14 read codes 1..=4, MEI 13 opaque, other MEI -> 01 ----
        //                          | fc | mei | code | object |
        case("fc43/14 basic", Req, &[0x2B, 0x0E, 0x01, 0x00], Valid),
        case("fc43/14 regular", Req, &[0x2B, 0x0E, 0x02, 0x03], Valid),
        case("fc43/14 extended", Req, &[0x2B, 0x0E, 0x03, 0x80], Valid),
        case("fc43/14 specific", Req, &[0x2B, 0x0E, 0x04, 0x01], Valid),
        case("fc43/14 read code 0 (pymodbus accepts)", Req, &[0x2B, 0x0E, 0x00, 0x00], Invalid("value", Some(3))),
        case("fc43/14 read code 5", Req, &[0x2B, 0x0E, 0x05, 0x00], Invalid("value", Some(3))),
        case("fc43/14 no object id", Req, &[0x2B, 0x0E, 0x01], Invalid("truncated", Some(3))),
        case("fc43/14 trailing", Req, &[0x2B, 0x0E, 0x01, 0x00, 0x00], Invalid("trailing_bytes", Some(3))),
        case("fc43/13 canopen", Req, &[0x2B, 0x0D, 0x01, 0x02, 0x03], Valid),
        case("fc43 mei 15", Req, &[0x2B, 0x0F, 0x01, 0x00], Invalid("unknown_mei_type", Some(1))),
        case("fc43 no mei", Req, &[0x2B], Invalid("truncated", Some(3))),
        // ---- user-defined 65..=72, 100..=110: opaque ----
        case("fc65 user-defined", Req, &[0x41, 0x01, 0x02], Valid),
        case("fc72 user-defined, no data", Req, &[0x48], Valid),
        case("fc100 user-defined", Req, &[0x64, 0xFF], Valid),
        case("fc110 user-defined", Req, &[0x6E, 0x00, 0x00, 0x00], Valid),
        // ---- unknown function codes -> 01 ----
        case("empty PDU", Req, &[], Invalid("empty", None)),
        case("fc0", Req, &[0x00, 0x00, 0x00, 0x00, 0x01], Invalid("unknown_function", Some(1))),
        case("fc9 reserved", Req, &[0x09], Invalid("unknown_function", Some(1))),
        case("fc13 reserved", Req, &[0x0D, 0x00], Invalid("unknown_function", Some(1))),
        case("fc25", Req, &[0x19, 0x00, 0x00], Invalid("unknown_function", Some(1))),
        case("fc73 just past user range", Req, &[0x49], Invalid("unknown_function", Some(1))),
        case("fc90 UMAS", Req, &[0x5A, 0x00, 0x02], Invalid("unknown_function", Some(1))),
        case("fc111", Req, &[0x6F], Invalid("unknown_function", Some(1))),
        case("fc127", Req, &[0x7F, 0x00], Invalid("unknown_function", Some(1))),
        case("0x83 in a request", Req, &[0x83, 0x02], Invalid("unknown_function", Some(1))),
    ]
}

/// Every response vector.
#[rustfmt::skip]
pub(crate) fn responses() -> Vec<Case> {
    let mut fc3_125 = vec![0x03, 0xFA];
    fc3_125.extend((0..125u16).flat_map(|v| v.to_be_bytes()));
    vec![
        // ---- exception responses: fc | 0x80, code ----
        //                          | fc   | code |
        case("exception 01 to fc1", Rsp, &[0x81, 0x01], Valid),
        case("exception 02 to fc3", Rsp, &[0x83, 0x02], Valid),
        case("exception 03 to fc16", Rsp, &[0x90, 0x03], Valid),
        case("exception 04", Rsp, &[0x83, 0x04], Valid),
        case("exception 06 busy", Rsp, &[0x86, 0x06], Valid),
        case("exception 07 legacy NAK", Rsp, &[0x83, 0x07], Valid),
        case("exception 08", Rsp, &[0x94, 0x08], Valid),
        case("exception 0A", Rsp, &[0x83, 0x0A], Valid),
        case("exception 0B", Rsp, &[0x83, 0x0B], Valid),
        case("exception to unknown fc90", Rsp, &[0xDA, 0x01], Valid),
        case("exception code 00", Rsp, &[0x83, 0x00], Invalid("exception_code", None)),
        case("exception code 09", Rsp, &[0x83, 0x09], Invalid("exception_code", None)),
        case("exception code 0C", Rsp, &[0x83, 0x0C], Invalid("exception_code", None)),
        case("exception to fc0", Rsp, &[0x80, 0x01], Invalid("unknown_function", None)),
        case("exception trailing", Rsp, &[0x83, 0x02, 0x00], Invalid("trailing_bytes", None)),
        case("exception without code", Rsp, &[0x83], Invalid("truncated", None)),
        // ---- FC 1 / 2: bc 1..=250 ----
        //                          | fc | bc | status         |
        case("fc1 spec example", Rsp, &[0x01, 0x03, 0xCD, 0x6B, 0x05], Valid),
        case("fc2 spec example", Rsp, &[0x02, 0x03, 0xAC, 0xDB, 0x35], Valid),
        long("fc1 bc 250", Rsp, with_fill(&[0x01, 0xFA], 250, 0xFF), Valid),
        case("fc1 bc 0", Rsp, &[0x01, 0x00], Invalid("byte_count_range", None)),
        long("fc1 bc 251", Rsp, with_fill(&[0x01, 0xFB], 251, 0x00), Invalid("byte_count_range", None)),
        case("fc1 data short", Rsp, &[0x01, 0x03, 0xCD, 0x6B], Invalid("truncated", None)),
        case("fc1 data trailing", Rsp, &[0x01, 0x01, 0xCD, 0x6B], Invalid("trailing_bytes", None)),
        // ---- FC 3 / 4: bc 2..=250, even ----
        //                          | fc | bc | registers                     |
        case("fc3 spec example", Rsp, &[0x03, 0x06, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64], Valid),
        long("fc3 125 registers", Rsp, fc3_125, Valid),
        case("fc4 spec example", Rsp, &[0x04, 0x02, 0x00, 0x0A], Valid),
        case("fc3 bc odd", Rsp, &[0x03, 0x03, 0x00, 0x01, 0x02], Invalid("byte_count_multiple", None)),
        case("fc3 bc 0", Rsp, &[0x03, 0x00], Invalid("byte_count_range", None)),
        long("fc3 bc 252", Rsp, with_fill(&[0x03, 0xFC], 4, 0x00), Invalid("byte_count_range", None)),
        case("fc4 data short", Rsp, &[0x04, 0x04, 0x00, 0x0A], Invalid("truncated", None)),
        // ---- FC 5 / 6: echo ----
        //                          | fc | addr      | value     |
        case("fc5 echo", Rsp, &[0x05, 0x00, 0xAC, 0xFF, 0x00], Valid),
        case("fc5 bad value", Rsp, &[0x05, 0x00, 0xAC, 0x12, 0x34], Invalid("value", None)),
        case("fc6 echo", Rsp, &[0x06, 0x00, 0x01, 0x00, 0x03], Valid),
        case("fc6 trailing", Rsp, &[0x06, 0x00, 0x01, 0x00, 0x03, 0x00], Invalid("trailing_bytes", None)),
        // ---- FC 7 ----
        case("fc7", Rsp, &[0x07, 0x6D], Valid),
        case("fc7 empty", Rsp, &[0x07], Invalid("truncated", None)),
        // ---- FC 8 ----
        //                          | fc | sub       | data      |
        case("fc8 echo", Rsp, &[0x08, 0x00, 0x00, 0xA5, 0x37], Valid),
        case("fc8 counter", Rsp, &[0x08, 0x00, 0x0B, 0x01, 0x2C], Valid),
        case("fc8 answer to listen-only", Rsp, &[0x08, 0x00, 0x04, 0x00, 0x00], Invalid("unexpected_response", None)),
        case("fc8 reserved sub", Rsp, &[0x08, 0x00, 0x07, 0x00, 0x00], Invalid("unknown_sub_function", None)),
        case("fc8 counter short", Rsp, &[0x08, 0x00, 0x0B, 0x01], Invalid("truncated", None)),
        // ---- FC 11 / 12 ----
        //                          | fc | status    | count     |
        case("fc11", Rsp, &[0x0B, 0xFF, 0xFF, 0x01, 0x08], Valid),
        case("fc11 bad status", Rsp, &[0x0B, 0x00, 0x01, 0x01, 0x08], Invalid("value", None)),
        //                          | fc | bc | status    | events    | messages  | events  |
        case("fc12", Rsp, &[0x0C, 0x08, 0x00, 0x00, 0x01, 0x08, 0x01, 0x21, 0x20, 0x00], Valid),
        case("fc12 no events", Rsp, &[0x0C, 0x06, 0x00, 0x00, 0x01, 0x08, 0x01, 0x21], Valid),
        case("fc12 bc 5", Rsp, &[0x0C, 0x05, 0x00, 0x00, 0x01, 0x08, 0x01], Invalid("byte_count_range", None)),
        long("fc12 bc 71", Rsp, with_fill(&[0x0C, 0x47, 0x00, 0x00, 0x01, 0x08, 0x01, 0x21], 65, 0), Invalid("byte_count_range", None)),
        // ---- FC 15 / 16: address + quantity echo ----
        //                          | fc | addr      | qty       |
        case("fc15", Rsp, &[0x0F, 0x00, 0x13, 0x00, 0x0A], Valid),
        case("fc15 qty 1969", Rsp, &[0x0F, 0x00, 0x00, 0x07, 0xB1], Invalid("quantity", None)),
        case("fc16", Rsp, &[0x10, 0x00, 0x01, 0x00, 0x02], Valid),
        case("fc16 qty 124", Rsp, &[0x10, 0x00, 0x01, 0x00, 0x7C], Invalid("quantity", None)),
        case("fc16 addr overflow", Rsp, &[0x10, 0xFF, 0xFF, 0x00, 0x02], Invalid("address_overflow", None)),
        // ---- FC 17 ----
        //                          | fc | bc | id | run | extra |
        case("fc17", Rsp, &[0x11, 0x03, 0x42, 0xFF, 0x01], Valid),
        case("fc17 bc 0", Rsp, &[0x11, 0x00], Invalid("byte_count_range", None)),
        // ---- FC 20 ----
        //                          | fc | bc | len | ref | data      |...
        case("fc20 spec example", Rsp, &[0x14, 0x0C, 0x05, 0x06, 0x0D, 0xFE, 0x00, 0x20, 0x05, 0x06, 0x33, 0xCD, 0x00, 0x40], Valid),
        case("fc20 bad reference", Rsp, &[0x14, 0x04, 0x03, 0x07, 0x0D, 0xFE], Invalid("file_record", None)),
        case("fc20 even sub length", Rsp, &[0x14, 0x05, 0x04, 0x06, 0x0D, 0xFE, 0x00], Invalid("byte_count_range", None)),
        case("fc20 sub longer than bc", Rsp, &[0x14, 0x04, 0x05, 0x06, 0x0D, 0xFE], Invalid("truncated", None)),
        // ---- FC 21: echo ----
        case("fc21 echo", Rsp, &[0x15, 0x0D, 0x06, 0x00, 0x04, 0x00, 0x07, 0x00, 0x03, 0x06, 0xAF, 0x04, 0xBE, 0x10, 0x0D], Valid),
        // ---- FC 22: echo ----
        case("fc22 echo", Rsp, &[0x16, 0x00, 0x04, 0x00, 0xF2, 0x00, 0x25], Valid),
        // ---- FC 23 ----
        //                          | fc | bc | registers                                       |
        case("fc23 spec example", Rsp, &[0x17, 0x0C, 0x00, 0xFE, 0x0A, 0xCD, 0x00, 0x01, 0x00, 0x03, 0x00, 0x0D, 0x00, 0xFF], Valid),
        case("fc23 bc odd", Rsp, &[0x17, 0x03, 0x00, 0x01, 0x02], Invalid("byte_count_multiple", None)),
        // ---- FC 24: bc(2) = 2 + 2·count, count <= 31 ----
        //                          | fc | bc        | count     | values              |
        case("fc24 spec example", Rsp, &[0x18, 0x00, 0x06, 0x00, 0x02, 0x01, 0xB8, 0x12, 0x84], Valid),
        case("fc24 empty queue", Rsp, &[0x18, 0x00, 0x02, 0x00, 0x00], Valid),
        long("fc24 count 31", Rsp, with_fill(&[0x18, 0x00, 0x40, 0x00, 0x1F], 62, 0x07), Valid),
        long("fc24 count 32", Rsp, with_fill(&[0x18, 0x00, 0x42, 0x00, 0x20], 64, 0x07), Invalid("quantity", None)),
        case("fc24 bc mismatch", Rsp, &[0x18, 0x00, 0x08, 0x00, 0x02, 0x01, 0xB8, 0x12, 0x84], Invalid("byte_count", None)),
        // ---- FC 43 / 14 ----
        //                          | fc | mei | code | conf | more | next | n | id | len | value ...
        case("fc43/14 basic", Rsp, &[0x2B, 0x0E, 0x01, 0x01, 0x00, 0x00, 0x03, 0x00, 0x04, b'A', b'C', b'M', b'E', 0x01, 0x02, b'X', b'1', 0x02, 0x03, b'1', b'.', b'0'], Valid),
        case("fc43/14 more follows", Rsp, &[0x2B, 0x0E, 0x02, 0x82, 0xFF, 0x03, 0x01, 0x00, 0x01, b'A'], Valid),
        case("fc43/14 no objects", Rsp, &[0x2B, 0x0E, 0x01, 0x01, 0x00, 0x00, 0x00], Valid),
        // Off-spec conformity levels are kept, not refused (it only describes the device):
        // regression for the modbus-eit capture's answer, refused for conformity level 0.
        case("fc43/14 conformity 4", Rsp, &[0x2B, 0x0E, 0x01, 0x04, 0x00, 0x00, 0x00], Valid),
        case("fc43/14 conformity level 0 is tolerated", Rsp, &[0x2B, 0x0E, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, b'A'], Valid),
        case("fc43/14 more follows 01", Rsp, &[0x2B, 0x0E, 0x01, 0x01, 0x01, 0x00, 0x00], Invalid("value", None)),
        case("fc43/14 read code 0", Rsp, &[0x2B, 0x0E, 0x00, 0x01, 0x00, 0x00, 0x00], Invalid("value", None)),
        case("fc43/14 object count too high", Rsp, &[0x2B, 0x0E, 0x01, 0x01, 0x00, 0x00, 0x02, 0x00, 0x01, b'A'], Invalid("truncated", None)),
        case("fc43/14 object value short", Rsp, &[0x2B, 0x0E, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x05, b'A'], Invalid("truncated", None)),
        case("fc43/14 trailing after objects", Rsp, &[0x2B, 0x0E, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, b'A', 0x00], Invalid("trailing_bytes", None)),
        case("fc43/13 canopen", Rsp, &[0x2B, 0x0D, 0x00], Valid),
        case("fc43 mei 0", Rsp, &[0x2B, 0x00], Invalid("unknown_mei_type", None)),
        // ---- user-defined and unknown ----
        case("fc66 user-defined", Rsp, &[0x42, 0xAA, 0xBB], Valid),
        case("fc9 reserved", Rsp, &[0x09, 0x00], Invalid("unknown_function", None)),
        case("fc90 UMAS", Rsp, &[0x5A, 0x00], Invalid("unknown_function", None)),
        case("empty PDU", Rsp, &[], Invalid("empty", None)),
        long("254-byte PDU", Rsp, with_fill(&[0x41], 253, 0), Invalid("too_long", None)),
    ]
}

/// Fits an ADU: 1..=253 bytes.
fn framable(c: &Case) -> bool {
    (1..=zonegate_modbus::MAX_PDU_LEN).contains(&c.pdu.len())
}

pub(crate) fn all() -> Vec<Case> {
    let mut v = requests();
    v.extend(responses());
    v
}

/// Parses a PDU in a direction; `Ok(())` or `(kind, exception)`.
fn parse(direction: Direction, pdu: &[u8]) -> Result<(), (&'static str, Option<u8>)> {
    let err = |e: zonegate_modbus::PduError| {
        assert!(!e.to_string().is_empty());
        (e.as_str(), e.exception_code().map(|c| c.to_u8()))
    };
    match direction {
        Direction::Request => Request::parse(pdu).map(drop).map_err(err),
        Direction::Response => Response::parse(pdu).map(drop).map_err(err),
    }
}

/// Valid cases re-encode to the same bytes.
fn assert_round_trip(c: &Case) {
    let mut out = [0u8; 300];
    let n = match c.direction {
        Direction::Request => Request::parse(&c.pdu).unwrap().encode(&mut out),
        Direction::Response => Response::parse(&c.pdu).unwrap().encode(&mut out),
    };
    assert_eq!(
        n.map(|n| &out[..n]),
        Ok(&c.pdu[..]),
        "{}: re-encode",
        c.name
    );
}

#[test]
fn every_vector_parses_as_annotated() {
    for c in all() {
        let got = parse(c.direction, &c.pdu);
        match c.expect {
            Valid => {
                assert_eq!(got, Ok(()), "{}", c.name);
                assert_round_trip(&c);
            }
            Invalid(kind, exception) => {
                assert_eq!(got, Err((kind, exception)), "{}", c.name);
            }
        }
    }
}

#[test]
fn every_vector_through_tcp_split_at_every_offset() {
    for c in all().into_iter().filter(framable) {
        let wire = tcp_wrap(0x1234, 0x11, &c.pdu);
        assert_tcp_every_split(&wire, &[(0x1234, 0x11, c.pdu.clone())]);
    }
}

#[test]
fn every_vector_through_rtu() {
    for c in all().into_iter().filter(framable) {
        let wire = rtu_wrap(0x11, &c.pdu);
        let whole = rtu::decode_frame(&wire, c.direction);
        match rtu::frame_len(&wire, c.direction) {
            Ok(Some(n)) if n == wire.len() => {
                assert_rtu_every_split(&wire, c.direction, &[(0, 0x11, c.pdu.clone())]);
                assert_eq!(whole.map(|a| a.pdu), Ok(&c.pdu[..]), "{}", c.name);
            }
            Err(FrameError::UnknownLength { .. }) => {
                // Opaque payloads: framed by silence only.
                assert!(
                    matches!(c.expect, Valid) || parse(c.direction, &c.pdu).is_err(),
                    "{}",
                    c.name
                );
                assert_eq!(whole.map(|a| a.pdu), Ok(&c.pdu[..]), "{}", c.name);
                assert!(rtu::decode_adu(&wire, c.direction).is_err(), "{}", c.name);
            }
            other => {
                // The byte counts disagree with the bytes: only invalid PDUs get here, and the
                // silence-delimited decoder refuses the frame.
                assert!(matches!(c.expect, Invalid(..)), "{}: {other:?}", c.name);
                assert!(whole.is_err(), "{}: {whole:?}", c.name);
            }
        }
    }
}

#[test]
fn pipelined_tcp_adus_split_at_every_offset() {
    let cases = all();
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for (i, c) in cases.iter().filter(|c| framable(c)).take(60).enumerate() {
        let tid = i as u16;
        wire.extend(tcp_wrap(tid, 1, &c.pdu));
        expected.push((tid, 1, c.pdu.clone()));
    }
    assert_tcp_every_split(&wire, &expected);
    // And the zero-copy decoder walks the same buffer.
    let mut rest = &wire[..];
    let mut n = 0;
    while let Some(adu) = zonegate_modbus::tcp::decode_adu(rest).unwrap() {
        assert_eq!(adu.pdu, &expected[n].2[..]);
        rest = &rest[adu.wire_len()..];
        n += 1;
    }
    assert_eq!((n, rest.len()), (expected.len(), 0));
    // Three pieces at a time, in every size from 1 to 300, for larger reads.
    for size in [1, 2, 3, 7, 64, 259, 260, 261, 300, 1000] {
        let pieces: Vec<&[u8]> = wire.chunks(size).collect();
        assert_eq!(
            tcp_stream(&pieces).as_deref(),
            Ok(&expected[..]),
            "size {size}"
        );
    }
}

#[test]
fn pipelined_rtu_adus_split_at_every_offset() {
    for direction in [Direction::Request, Direction::Response] {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for c in all() {
            if c.direction != direction || !matches!(c.expect, Valid) {
                continue;
            }
            let one = rtu_wrap(7, &c.pdu);
            if rtu::frame_len(&one, direction) == Ok(Some(one.len())) {
                wire.extend(one);
                expected.push((0, 7, c.pdu.clone()));
            }
        }
        assert!(expected.len() > 20);
        assert_rtu_every_split(&wire, direction, &expected);
    }
}

/// Writes the vector table as the committed fuzz seed corpus (`fuzz/corpus/<target>/`). Run by
/// hand after changing the vectors:
/// `cargo test -p zonegate-modbus --test it -- --ignored write_fuzz_corpus`.
#[test]
#[ignore = "writes files; run by hand to refresh fuzz/corpus"]
fn write_fuzz_corpus() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        let file: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        std::fs::write(dir.join(file), bytes).unwrap();
    };
    for c in all() {
        let (target, dir_bit) = match c.direction {
            Direction::Request => ("pdu_request", 0u8),
            Direction::Response => ("pdu_response", 1u8),
        };
        if c.direction == Direction::Request {
            write(target, c.name, &c.pdu);
        } else {
            let mut v = vec![0];
            v.extend(&c.pdu);
            write(target, c.name, &v);
        }
        if !framable(&c) {
            continue;
        }
        let mut tcp = vec![0];
        tcp.extend(tcp_wrap(1, 1, &c.pdu));
        write(
            "tcp_deframer",
            &format!("{}_{}", c.direction.as_str(), c.name),
            &tcp,
        );
        let mut rtu = vec![dir_bit];
        rtu.extend(rtu_wrap(1, &c.pdu));
        write(
            "rtu_deframer",
            &format!("{}_{}", c.direction.as_str(), c.name),
            &rtu,
        );
    }
    // Matched request/response pairs for pdu_response.
    let pairs: [(&str, &[u8], &[u8]); 4] = [
        (
            "pair_fc3",
            &[0x03, 0x00, 0x6B, 0x00, 0x03],
            &[0x03, 0x06, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64],
        ),
        (
            "pair_fc1",
            &[0x01, 0x00, 0x13, 0x00, 0x13],
            &[0x01, 0x03, 0xCD, 0x6B, 0x05],
        ),
        (
            "pair_fc16",
            &[0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02],
            &[0x10, 0x00, 0x01, 0x00, 0x02],
        ),
        (
            "pair_fc3_exception",
            &[0x03, 0x00, 0x6B, 0x00, 0x03],
            &[0x83, 0x02],
        ),
    ];
    for (name, request, response) in pairs {
        let mut v = vec![request.len() as u8];
        v.extend(request);
        v.extend(response);
        write("pdu_response", name, &v);
    }
    // Pipelined streams, in pieces of 1 and 7 bytes.
    let stream: Vec<u8> = requests()
        .iter()
        .filter(|c| framable(c))
        .take(20)
        .flat_map(|c| tcp_wrap(2, 1, &c.pdu))
        .collect();
    for piece in [1u8, 7] {
        let mut v = vec![piece];
        v.extend(&stream);
        write("tcp_deframer", &format!("pipelined_{piece}"), &v);
    }
}
