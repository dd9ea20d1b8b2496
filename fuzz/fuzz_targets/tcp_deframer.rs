//! Fuzz target: the MBAP deframer (TCP guide V1.0b §3.1.3) and the PDU parsers behind it.
//!
//! Input: byte 0 = piece size for the streaming deframer (0 = one piece), the rest = the stream.
//! Checks: no panic; `TcpDeframer` fed in pieces yields exactly the ADUs `tcp::decode_adu` finds
//! walking the whole buffer, and the same error; no ADU over 260 bytes or past the input; every
//! PDU the parser accepts re-encodes byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zonegate_modbus::{tcp, Request, Response, TcpDeframer, MAX_TCP_ADU_LEN};

fn canonical(pdu: &[u8]) {
    let mut out = [0u8; 300];
    if let Ok(r) = Request::parse(pdu) {
        let n = r.encode(&mut out).expect("accepted request re-encodes");
        assert_eq!(&out[..n], pdu);
        for (_, range) in r.ranges() {
            assert!(range.count() >= 1 && u32::from(range.start()) + u32::from(range.count()) <= 65536);
        }
    }
    if let Ok(r) = Response::parse(pdu) {
        let n = r.encode(&mut out).expect("accepted response re-encodes");
        assert_eq!(&out[..n], pdu);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&piece, stream)) = data.split_first() else {
        return;
    };
    // Reference: walk the whole buffer with the zero-copy decoder.
    let mut expected = Vec::new();
    let mut rest = stream;
    let expected_error = loop {
        match tcp::decode_adu(rest) {
            Ok(Some(adu)) => {
                assert!(adu.wire_len() <= rest.len() && adu.wire_len() <= MAX_TCP_ADU_LEN);
                canonical(adu.pdu);
                expected.push((adu.header, adu.pdu.to_vec()));
                rest = &rest[adu.wire_len()..];
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    // The streaming deframer, fed in pieces, must agree.
    let size = if piece == 0 { stream.len().max(1) } else { usize::from(piece) };
    let mut d = TcpDeframer::new();
    let mut got = Vec::new();
    let mut error = None;
    'outer: for chunk in stream.chunks(size) {
        let mut input = chunk;
        loop {
            let n = d.feed(input);
            input = &input[n..];
            loop {
                match d.next_adu() {
                    Ok(Some(adu)) => got.push((adu.header, adu.pdu.to_vec())),
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
