//! zonegate-monitor: the pure detector core of zonegate's monitor, used live by the gateway and
//! offline by `zonegate analyze`.
//!
//! No sockets and no clock: every ADU comes with its timestamp ([`Adu::ts_us`]), so the same
//! input gives the same alerts live, offline and in tests.
//!
//! - [`Monitor`]: pairs responses with requests by transaction id per [`Flow`], keeps the
//!   [`Stats`], runs every detector of [`DETECTORS`] and learns a [`Baseline`].
//! - [`Baseline`]: per (master, slave, unit): functions and sub-functions, address ranges per
//!   table, written-value range per register, poll period per request signature; a JSON file
//!   a person can read.
//! - [`Inventory`]: every address with its role, unit ids and functions, and the vendor,
//!   product and revision devices gave in FC 43/14 answers.
//! - [`learn`]: a reviewable model synthesised from a baseline; [`replay`]: a model's policy
//!   evaluated on observed requests (what would enforce block).
#![forbid(unsafe_code)]

mod baseline;
mod detectors;
mod engine;
mod inventory;
pub mod learn;
pub mod replay;
pub mod time;

pub use baseline::{
    function_key, table_key, Baseline, BaselineError, Channel, ChannelKey, Poll, RangeSet,
};
pub use detectors::{detector, Detector, Kind, Thresholds, DETECTORS};
pub use engine::{Adu, Alert, Answer, Flow, Monitor, Side, Stats, Transaction};
pub use inventory::{Asset, Inventory, Role};
