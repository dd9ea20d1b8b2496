//! zonegate-toolkit's one integration-test binary: the checks (each triggered by a minimal
//! model, none by the shipped examples), the report, the assessment, the firewall compiler (with
//! `nft -c -f` when nft is installed) and the probe against an in-test fake gateway.

// Test helpers outside #[test] functions may unwrap too (a failed setup is a failed test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod it {
    pub(crate) mod assess;
    pub(crate) mod check;
    pub(crate) mod compile;
    pub(crate) mod diagram;
    pub(crate) mod live;
    pub(crate) mod probe;
    pub(crate) mod replication;
    pub(crate) mod report;
    pub(crate) mod truth;
    pub(crate) mod util;
}
