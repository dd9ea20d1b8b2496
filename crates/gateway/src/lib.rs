//! zonegate-gateway: the part of zonegate that touches sockets.
//!
//! It stands between Modbus TCP clients and a Modbus TCP device and lets through only what the
//! conduit's rules allow (docs/DESIGN.md, "What the wire sees"). The pure crates do the thinking:
//! `zonegate-modbus` frames and parses every byte, `zonegate-policy` decides, `zonegate-audit`
//! writes the tamper-evident record. This crate never parses a byte itself.
//!
//! ```text
//!  client ─▶ listener (one per conduit) ─▶ Session task (one per client, conn.rs)
//!                                            │ deframe · parse · decide · [durable audit]
//!                                            │ slot queue (slots.rs): answers in order
//!                                            ▼
//!                                        upstream pool (upstream.rs): at most
//!                                        `max_upstream_connections`, lent per request ─▶ device
//! ```
//!
//! Where to start reading:
//! - [`Gateway`] (server.rs): start, listeners, reload (SIGHUP, model file change), shutdown;
//! - conn.rs: one client session, the hot path: decide, forward, timeouts, deny actions;
//! - slots.rs: the session's answer queue (pipelining, ordering, 0x0B deadlines);
//! - upstream.rs: the conduit's device connections (pool, limit, late answers after 0x0B);
//! - bus.rs: Modbus RTU buses (`rtu://`, `rtu+tcp://`): one task per line, fair queue, timing;
//! - class.rs: which requests are write class for audit durability and `block_writes`;
//! - watch.rs: the live monitor (alerts) and `shadow:` candidates, beside the data path;
//! - record.rs: audit durability (`audit.sync`) and failure behaviour (`audit.on_failure`);
//! - [`sim`]: the simulated device behind `zonegate sim` and `zonegate demo`;
//! - [`demo`]: the built-in demo model and the commands it prints;
//! - [`mbaps`]: the TLS configuration for zonegate's other agents (the replication's sides).

mod bus;
mod class;
mod conn;
pub mod demo;
mod io;
pub mod mbaps;
mod metrics;
mod record;
pub mod rtu_master;
mod serial_listen;
mod server;
mod settings;
pub mod sim;
mod slots;
mod state;
mod tls;
mod upstream;
mod watch;
mod workers;

pub use metrics::{ConduitInfo, Metrics};
pub use server::{
    AuditStorageFactory, BoundListener, Gateway, GatewayOptions, ModelGate, ReloadError,
    ReloadOutcome, ReloadReadHook, ReloadTrigger, ShutdownSummary, ShutdownTrigger, StartError,
};
pub use watch::MonitorStats;
