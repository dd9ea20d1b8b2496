//! zonegate-toolkit: the model toolkit behind `zonegate check`, `report`, `assess`, `compile`
//! and `probe`.
//!
//! Start here:
//! - [`load`] reads a model file with `zonegate-policy`'s strict loader and returns a
//!   [`model::Site`]: the policy crate's [`zonegate_policy::Model`] (the one model) with what each
//!   rule allows read from the compiled policy ([`allowed`]).
//! - [`check`]: design checks with stable ids (`ZG-C001`...), text/JSON/SARIF output.
//! - [`report`]: the IEC 62443 zone implementation report (text, markdown, JSON, HTML + SVG).
//! - [`assess`]: IEC 62443-3-3 assessment against the embedded requirements table
//!   ([`requirements`], `data/iec62443-3-3.csv`).
//! - [`compile`]: nftables / iptables-restore rules for the zone boundaries.
//! - [`probe`]: a commissioning test of a live conduit (a small Modbus TCP client).
//! - [`identify`]: `inventory --probe`, FC 43/14 and FC 17 to the model's devices only.
//!
//! - [`cli`]: what the `zonegate` subcommands share (load or print the errors, write the output).
//!
//! Everything except `probe` and `cli` is pure: it takes a [`model::Site`] and returns text or
//! JSON.

pub mod allowed;
pub mod assess;
pub mod check;
pub mod cli;
pub mod compile;
pub mod diagram;
pub mod identify;
pub mod mbaps;
pub mod model;
pub mod probe;
pub mod replication;
pub mod report;
pub mod requirements;
pub mod threats;
pub mod util;

use std::path::Path;

pub use zonegate_policy::{LoadError, LoadErrors};

/// Loads a model file.
pub fn load(path: &Path) -> Result<model::Site, LoadErrors> {
    Ok(model::Site::new(zonegate_policy::load_file(path)?))
}

/// Loads a model from text (`file` names it in messages).
pub fn load_str(text: &str, file: &str) -> Result<model::Site, LoadErrors> {
    Ok(model::Site::new(zonegate_policy::load_str(text, file)?))
}
