//! Fuzz target: the RTU deframer (Serial Line V1.02 §2.5.1) in both directions.
//!
//! Input: byte 0 = bit 0 direction (0 request, 1 response), bits 1-7 piece size (0 = one piece);
//! the rest = the serial byte stream. Checks: no panic; `RtuDeframer` fed in pieces yields exactly
//! the ADUs `rtu::decode_adu` finds walking the whole buffer; every ADU's CRC checks out and fits
//! 256 bytes; `decode_frame` on each ADU agrees.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zonegate_modbus::{crc16, rtu, Direction, RtuDeframer};

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let direction = if control & 1 == 0 {
        Direction::Request
    } else {
        Direction::Response
    };
    let piece = usize::from(control >> 1);
    let mut expected = Vec::new();
    let mut rest = stream;
    let expected_error = loop {
        match rtu::decode_adu(rest, direction) {
            Ok(Some(adu)) => {
                let len = adu.wire_len();
                assert!(len <= rest.len() && len <= rtu::MAX_RTU_ADU_LEN);
                let frame = &rest[..len];
                let crc = u16::from_le_bytes([frame[len - 2], frame[len - 1]]);
                assert_eq!(crc16(&frame[..len - 2]), crc);
                assert_eq!(rtu::decode_frame(frame, direction).map(|a| a.pdu), Ok(adu.pdu));
                expected.push((adu.address, adu.pdu.to_vec()));
                rest = &rest[len..];
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    let _ = rtu::decode_frame(stream, direction);
    let size = if piece == 0 { stream.len().max(1) } else { piece };
    let mut d = RtuDeframer::new(direction);
    let mut got = Vec::new();
    let mut error = None;
    'outer: for chunk in stream.chunks(size) {
        let mut input = chunk;
        loop {
            let n = d.feed(input);
            input = &input[n..];
            loop {
                match d.next_adu() {
                    Ok(Some(adu)) => got.push((adu.address, adu.pdu.to_vec())),
                    Ok(None) => break,
                    Err(e) => {
                        error = Some(e);
                        break 'outer;
                    }
                }
            }
            if input.is_empty() {
                break;
            }
            assert!(n > 0, "deframer refused input with no whole ADU waiting");
        }
    }
    assert_eq!(got, expected);
    assert_eq!(error, expected_error);
});
