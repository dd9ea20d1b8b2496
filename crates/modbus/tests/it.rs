//! The codec's one integration-test binary: annotated byte vectors for every function code
//! (requests and responses, valid and invalid, TCP and RTU), each fed split at every offset,
//! response-to-request matching, and property tests (no panic, round trips).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap

mod it {
    pub(crate) mod matching;
    pub(crate) mod props;
    pub(crate) mod rtu;
    pub(crate) mod tcp;
    pub(crate) mod util;
    pub(crate) mod vectors;
}
