//! zonegate-audit: the tamper-evident audit trail of zonegate (IEC 62443-3-3 SR 2.8, 2.10,
//! 2.11, 2.12, 3.9, 6.1).
//!
//! - [`Event`] is one record (docs/DESIGN.md "Event record"), one JSON object per line.
//! - [`chain`] defines the canonical bytes and the SHA-256 hash chain (`seq`, `prev`, `hash`).
//! - [`AuditLog::start`] spawns the writer thread; [`AuditHandle::append`] returns a [`Ticket`]
//!   (a future) that resolves once the record is written, and fsynced when durable, with group
//!   commit. See [`writer`] for how the gateway calls it and for the failure contract.
//! - [`keys`]: Ed25519 signed checkpoints that make cutting off the tail detectable.
//! - [`verify()`] checks a log (rotated files, signatures) and names the first bad record;
//!   [`show`] filters and prints records for a person; [`syslog`] exports to a SIEM.
//!
//! Files rotate by size (see [`storage`]); the chain continues across files, and a restarted
//! writer continues the chain from the last valid record.

mod aggregate;
pub mod chain;
pub mod config;
mod encode;
pub mod error;
pub mod event;
pub mod keys;
pub mod ops;
pub mod priority;
pub mod show;
pub mod storage;
pub mod syslog;
pub mod verify;
pub mod writer;

pub use chain::{sha256_hex, GENESIS_PREV};
pub use config::{AuditConfig, OnFailure, SyncMode, SyslogConfig, SyslogTransport};
pub use error::AuditError;
pub use event::{Decision, Event, Kind, MAX_VALUES};
pub use ops::{CheckpointMark, FsyncHistogram};
pub use storage::{FileStorage, Storage};
pub use verify::{verify, Anchor, Finding, Report, VerifyOptions};
pub use writer::{AuditHandle, AuditLog, Stats, Ticket};
