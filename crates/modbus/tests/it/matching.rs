//! `Response::parse_for`: a response must answer the request it is matched to (same function,
//! byte count = what was asked, echoes equal). V1.1b3 §6 response layouts.

use zonegate_modbus::{ExceptionCode, FunctionCode, PduErrorKind, Request, Response};

use super::util::hex;

fn req(pdu: &str) -> Vec<u8> {
    hex(pdu)
}

/// Parses `request` and `response` hex, returns the `parse_for` outcome as `Ok(())` or the error
/// kind name.
fn answer(request: &str, response: &str) -> Result<(), &'static str> {
    let request_bytes = req(request);
    let request = Request::parse(&request_bytes).unwrap();
    let response_bytes = hex(response);
    Response::parse_for(&response_bytes, &request)
        .map(drop)
        .map_err(|e| {
            assert_eq!(e.exception_code(), None, "responses get no exception");
            e.as_str()
        })
}

#[test]
fn read_registers_byte_count_must_match_quantity() {
    // request | fc | addr | qty = 3 |; response | fc | bc | 3 registers |
    assert_eq!(answer("03 006B 0003", "03 06 022B 0000 0064"), Ok(()));
    assert_eq!(answer("03 006B 0003", "03 04 022B 0000"), Err("byte_count"));
    assert_eq!(answer("04 0008 0001", "04 02 000A"), Ok(()));
    // FC 23 answers with the read quantity.
    assert_eq!(
        answer("17 0003 0002 000E 0001 02 00FF", "17 04 0001 0002"),
        Ok(())
    );
    assert_eq!(
        answer("17 0003 0002 000E 0001 02 00FF", "17 02 0001"),
        Err("byte_count")
    );
}

#[test]
fn read_bits_byte_count_and_padding() {
    // 19 coils: 3 bytes, the top 5 bits of the last byte must be zero.
    assert_eq!(answer("01 0013 0013", "01 03 CD 6B 05"), Ok(()));
    assert_eq!(answer("01 0013 0013", "01 03 CD 6B 0D"), Err("value"));
    assert_eq!(answer("01 0013 0013", "01 02 CD 6B"), Err("byte_count"));
    let request_bytes = hex("02 00C4 0016");
    let request = Request::parse(&request_bytes).unwrap();
    let response_bytes = hex("02 03 AC DB 35");
    match Response::parse_for(&response_bytes, &request).unwrap() {
        Response::ReadDiscreteInputs(bits) => assert_eq!(bits.len(), 22),
        other => panic!("{other:?}"),
    }
}

#[test]
fn echoes_must_be_equal() {
    assert_eq!(answer("05 00AC FF00", "05 00AC FF00"), Ok(()));
    assert_eq!(answer("05 00AC FF00", "05 00AC 0000"), Err("mismatch"));
    assert_eq!(answer("05 00AC FF00", "05 00AD FF00"), Err("mismatch"));
    assert_eq!(answer("06 0001 0003", "06 0001 0004"), Err("mismatch"));
    assert_eq!(answer("0F 0013 000A 02 CD01", "0F 0013 000A"), Ok(()));
    assert_eq!(
        answer("0F 0013 000A 02 CD01", "0F 0013 0009"),
        Err("mismatch")
    );
    assert_eq!(answer("10 0001 0002 04 000A 0102", "10 0001 0002"), Ok(()));
    assert_eq!(
        answer("10 0001 0002 04 000A 0102", "10 0002 0002"),
        Err("mismatch")
    );
    assert_eq!(answer("16 0004 00F2 0025", "16 0004 00F2 0025"), Ok(()));
    assert_eq!(
        answer("16 0004 00F2 0025", "16 0004 00F2 0026"),
        Err("mismatch")
    );
    let fc21 = "15 0D 06 0004 0007 0003 06AF 04BE 100D";
    assert_eq!(answer(fc21, fc21), Ok(()));
    assert_eq!(
        answer(fc21, "15 0D 06 0004 0007 0003 06AF 04BE 100E"),
        Err("mismatch")
    );
}

#[test]
fn function_must_match() {
    assert_eq!(
        answer("03 006B 0003", "04 06 022B 0000 0064"),
        Err("mismatch")
    );
    // An exception for the same function answers it; one for another function does not.
    assert_eq!(answer("03 006B 0003", "83 02"), Ok(()));
    assert_eq!(answer("03 006B 0003", "84 02"), Err("mismatch"));
    let request_bytes = hex("10 0001 0001 02 0005");
    let request = Request::parse(&request_bytes).unwrap();
    assert_eq!(
        Response::parse_for(&[0x90, 0x06], &request).unwrap(),
        Response::Exception {
            function: FunctionCode::WRITE_MULTIPLE_REGISTERS,
            code: ExceptionCode::ServerDeviceBusy
        }
    );
}

#[test]
fn diagnostics_sub_function_and_echo() {
    assert_eq!(answer("08 0000 A537", "08 0000 A537"), Ok(()));
    assert_eq!(answer("08 0000 A537", "08 0000 A538"), Err("mismatch"));
    assert_eq!(answer("08 000B 0000", "08 000B 012C"), Ok(()));
    assert_eq!(answer("08 000B 0000", "08 000C 012C"), Err("mismatch"));
    // Force Listen Only never gets an answer.
    assert_eq!(
        answer("08 0004 0000", "08 0004 0000"),
        Err("unexpected_response")
    );
    let listen_only = hex("08 0004 0000");
    assert!(!Request::parse(&listen_only).unwrap().expects_response());
}

#[test]
fn file_records_must_answer_each_sub_request() {
    let request = "14 0E 06 0004 0001 0002 06 0003 0009 0002";
    assert_eq!(
        answer(request, "14 0C 05 06 0DFE 0020 05 06 33CD 0040"),
        Ok(())
    );
    // second sub-response has 1 record instead of 2
    assert_eq!(
        answer(request, "14 0A 05 06 0DFE 0020 03 06 33CD"),
        Err("mismatch")
    );
    // one sub-response missing
    assert_eq!(answer(request, "14 06 05 06 0DFE 0020"), Err("mismatch"));
}

#[test]
fn device_identification_read_code_and_object() {
    assert_eq!(
        answer("2B 0E 01 00", "2B 0E 01 01 00 00 01 00 01 41"),
        Ok(())
    );
    assert_eq!(
        answer("2B 0E 01 00", "2B 0E 02 01 00 00 01 00 01 41"),
        Err("mismatch")
    );
    assert_eq!(
        answer("2B 0E 04 01", "2B 0E 04 01 00 00 01 01 01 41"),
        Ok(())
    );
    assert_eq!(
        answer("2B 0E 04 01", "2B 0E 04 01 00 00 01 02 01 41"),
        Err("mismatch")
    );
    assert_eq!(answer("2B 0E 01 00", "2B 0D 00"), Err("mismatch"));
}

#[test]
fn mismatch_error_names_the_field() {
    let request_bytes = hex("06 0001 0003");
    let request = Request::parse(&request_bytes).unwrap();
    let e = Response::parse_for(&hex("06 0002 0003"), &request).unwrap_err();
    assert_eq!(
        *e.kind(),
        PduErrorKind::Mismatch {
            field: "register address",
            expected: 1,
            found: 2
        }
    );
    assert!(e.to_string().contains("register address"), "{e}");
}

#[test]
fn matched_bit_response_re_encodes() {
    let request_bytes = hex("01 0013 0013");
    let request = Request::parse(&request_bytes).unwrap();
    let wire = hex("01 03 CD 6B 05");
    let response = Response::parse_for(&wire, &request).unwrap();
    let mut out = [0u8; 8];
    let n = response.encode(&mut out).unwrap();
    assert_eq!(&out[..n], &wire[..]);
}

#[test]
fn inspection_has_the_event_fields() {
    let fc23 = hex("17 0003 0006 000E 0003 06 00FF 00FF 00FF");
    let i = Request::parse(&fc23).unwrap().inspect();
    assert_eq!(i.function.name(), Some("read_write_multiple_registers"));
    assert_eq!(i.access.as_str(), "write");
    assert_eq!(i.table.map(|t| t.as_str()), Some("holding"));
    assert_eq!((i.address, i.quantity), (Some(3), Some(6)));
    assert_eq!((i.write_address, i.write_quantity), (Some(14), Some(3)));
    let fc8 = hex("08 0004 0000");
    let i = Request::parse(&fc8).unwrap().inspect();
    assert_eq!((i.sub_function, i.table, i.address), (Some(4), None, None));
}
