//! The `zonegate` binary's one integration-test binary: runs the built CLI as a user would.
//! Each subcommand's tests live in their own module under `tests/it/`.

// Tests may unwrap and expect: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod it {
    pub(crate) mod analyze;
    pub(crate) mod assess;
    pub(crate) mod check;
    pub(crate) mod compile;
    pub(crate) mod decode;
    pub(crate) mod log;
    pub(crate) mod report;
    pub(crate) mod run;
    pub(crate) mod service;
    pub(crate) mod util;
}
