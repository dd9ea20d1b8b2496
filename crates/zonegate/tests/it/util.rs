//! Helpers shared by the CLI tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// Path of the `zonegate` binary that Cargo built for these tests.
pub(crate) fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_zonegate"))
}

/// Runs `zonegate ARGS...` and returns its output.
pub(crate) fn zonegate(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run zonegate")
}

/// The repository root (for `examples/`).
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
