//! Fuzz target: the strict request PDU parser (Modbus Application Protocol V1.1b3 §6).
//!
//! Input: one PDU. Checks: no panic; an accepted request re-encodes byte for byte, its ranges
//! stay inside the 65536-address tables, its written values count matches; a refused one has a
//! readable reason and answers 01, 02 or 03 (or nothing for an empty PDU).
#![no_main]

use libfuzzer_sys::fuzz_target;
use zonegate_modbus::{ExceptionCode, Request};

fuzz_target!(|pdu: &[u8]| {
    match Request::parse(pdu) {
        Ok(request) => {
            let mut out = [0u8; 300];
            let n = request.encode(&mut out).expect("accepted request re-encodes");
            assert_eq!(&out[..n], pdu);
            assert_eq!(Request::parse(&out[..n]), Ok(request));
            for (_, range) in request.ranges() {
                assert!(range.count() >= 1);
                assert!(u32::from(range.start()) + u32::from(range.count()) <= 65536);
            }
            if let Some(written) = request.written() {
                assert_eq!(written.iter().count(), written.len());
            }
            assert_eq!(request.access(), request.function().access());
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            match e.exception_code() {
                None => assert!(pdu.is_empty()),
                Some(code) => assert!(matches!(
                    code,
                    ExceptionCode::IllegalFunction
                        | ExceptionCode::IllegalDataAddress
                        | ExceptionCode::IllegalDataValue
                )),
            }
        }
    }
});
