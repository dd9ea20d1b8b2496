//! Fuzz target: the strict response PDU parser and the response-to-request matcher
//! (Modbus Application Protocol V1.1b3 §6, §7).
//!
//! Input: byte 0 = n; if n == 0 the rest is one response PDU; otherwise the next n bytes are a
//! request PDU and the rest its response. Checks: no panic; an accepted response re-encodes byte
//! for byte; `parse_for` only accepts what `parse` accepts, for the request's function.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zonegate_modbus::{Request, Response};

fn canonical(pdu: &[u8]) {
    if let Ok(response) = Response::parse(pdu) {
        let mut out = [0u8; 300];
        let n = response.encode(&mut out).expect("accepted response re-encodes");
        assert_eq!(&out[..n], pdu);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    if n == 0 || usize::from(n) > rest.len() {
        canonical(rest);
        return;
    }
    let (request, response) = rest.split_at(usize::from(n));
    canonical(response);
    let Ok(request) = Request::parse(request) else {
        return;
    };
    if let Ok(matched) = Response::parse_for(response, &request) {
        assert!(Response::parse(response).is_ok());
        assert_eq!(matched.function(), request.function());
    }
});
