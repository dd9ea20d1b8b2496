//! zonegate-toolkit: the model toolkit behind `zonegate check`, `report`, `assess`, `compile`
//! and `probe`.
//!
//! Start here:
//! - [`load`] reads a model file with `zonegate-policy`'s strict loader and returns the toolkit's
//!   [`model::Site`] view (every element with its YAML line) next to the loaded model.
//! - [`check`]: design checks with stable ids (`ZG-C001`...), text/JSON/SARIF output.
//! - [`report`]: the IEC 62443 zone implementation report (text, markdown, JSON, HTML + SVG).
//! - [`assess`]: IEC 62443-3-3 assessment against the embedded requirements table
//!   ([`requirements`], `data/iec62443-3-3.csv`).
//! - [`compile`]: nftables / iptables-restore rules for the zone boundaries.
//! - [`probe`]: a commissioning test of a live conduit (a small Modbus TCP client).
//!
//! - [`cli`]: what the `zonegate` subcommands share (load or print the errors, write the output).
//!
//! Everything except `probe` and `cli` is pure: it takes a [`model::Site`] and returns text or
//! JSON.

pub mod adapter;
pub mod assess;
pub mod check;
pub mod cli;
pub mod compile;
pub mod model;
pub mod probe;
pub mod replication;
pub mod report;
pub mod requirements;
pub mod util;

use std::path::Path;

pub use zonegate_policy::{LoadError, LoadErrors};

/// Loads a model file: the toolkit view and the loader's model.
pub fn load(path: &Path) -> Result<(model::Site, zonegate_policy::Model), LoadErrors> {
    let m = zonegate_policy::load_file(path)?;
    Ok((adapter::site(&m), m))
}

/// Loads a model from text (`file` names it in messages).
pub fn load_str(
    text: &str,
    file: &str,
) -> Result<(model::Site, zonegate_policy::Model), LoadErrors> {
    let m = zonegate_policy::load_str(text, file)?;
    Ok((adapter::site(&m), m))
}
