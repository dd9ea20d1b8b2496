//! The `zonegate` binary's one integration-test binary: runs the built CLI as a user would.
//! Each subcommand's tests live in their own module under `tests/it/`.

mod it {
    pub(crate) mod assess;
    pub(crate) mod check;
    pub(crate) mod compile;
    pub(crate) mod decode;
    pub(crate) mod log;
    pub(crate) mod report;
    pub(crate) mod util;
}
