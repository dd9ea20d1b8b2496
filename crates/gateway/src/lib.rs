//! zonegate-gateway: the part of zonegate that touches sockets.
//!
//! It stands between Modbus TCP clients and a Modbus TCP device and lets through only what the
//! conduit's rules allow (DESIGN.md, "What the wire sees"). The pure crates do the thinking:
//! `zonegate-modbus` frames and parses every byte, `zonegate-policy` decides, `zonegate-audit`
//! writes the tamper-evident record. This crate never parses a byte itself.
//!
//! ```text
//!  client ─▶ listener (one per conduit) ─▶ Session task (one per client, conn.rs)
//!                                            │ deframe · parse · decide · [durable audit]
//!                                            ▼
//!                                        upstream TCP (one per client session) ─▶ device
//! ```
//!
//! Where to start reading:
//! - [`Gateway`] (server.rs): start, listeners, reload (SIGHUP, model file change), shutdown;
//! - conn.rs: one client session, the hot path: pipelining, ordering, timeouts, deny actions;
//! - record.rs: audit durability (`audit.sync`) and failure behaviour (`audit.on_failure`);
//! - [`sim`]: the simulated device behind `zonegate sim` and `zonegate demo`;
//! - [`demo`]: the built-in demo model and the commands it prints.

mod conn;
pub mod demo;
mod io;
mod record;
mod server;
mod settings;
pub mod sim;
mod state;

pub use server::{
    AuditStorageFactory, BoundListener, Gateway, GatewayOptions, ReloadError, ReloadOutcome,
    ReloadReadHook, ReloadTrigger, ShutdownSummary, ShutdownTrigger, StartError,
};
