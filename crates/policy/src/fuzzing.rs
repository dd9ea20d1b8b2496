//! Fuzzing entry points (rustls habit: the body lives in the library, the `fuzz/` crate calls
//! it). Not part of the stable API.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use zonegate_modbus::{Request, UnitId};

use crate::{load_bytes, Policy, RateLimiter, Transaction};

/// How far [`fuzz_load`] got with an input (tests assert that their seeds get all the way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// The loader rejected the input (with positioned errors).
    Rejected,
    /// The model loaded but did not compile.
    Loaded,
    /// The model loaded and compiled, and the fixed requests were decided.
    Decided,
}

/// Loads `data` as a model file and, when it loads and compiles, decides a few requests.
/// Panics only when an invariant breaks: every load error has a position and a message.
pub fn fuzz_load(data: &[u8]) -> Reached {
    let model = match load_bytes(data, "fuzz.yaml") {
        Ok(m) => m,
        Err(errors) => {
            assert!(!errors.is_empty(), "an Err without errors");
            for e in &errors {
                assert!(e.line >= 1 && e.column >= 1, "error without position: {e}");
                assert!(!e.message.is_empty(), "error without message");
            }
            return Reached::Rejected;
        }
    };
    let Ok(policy) = Policy::compile(&model) else {
        return Reached::Loaded;
    };
    let limiter = RateLimiter::with_capacity(64);
    let now = Instant::now();
    let pdus: [&[u8]; 4] = [
        &[0x03, 0x00, 0x00, 0x00, 0x0A],
        &[0x06, 0x00, 0x64, 0x00, 0xC8],
        &[0x08, 0x00, 0x04, 0x00, 0x00],
        &[
            0x17, 0x00, 0x00, 0x00, 0x01, 0x00, 0x64, 0x00, 0x01, 0x02, 0x00, 0x01,
        ],
    ];
    let sources = [
        IpAddr::V4(Ipv4Addr::new(10, 20, 1, 10)),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    for conduit in policy.conduits() {
        for pdu in pdus {
            let Ok(request) = Request::parse(pdu) else {
                continue;
            };
            for src in sources {
                let tx = Transaction {
                    src,
                    unit: UnitId::new(1),
                    request: &request,
                    role: None,
                };
                let v = conduit.decide(&tx, &limiter, now);
                assert_eq!(v.is_allow(), v.exception().is_none());
            }
        }
    }
    Reached::Decided
}
