//! zonegate-replicate: one-way replication of Modbus data, a software data diode (issue 13).
//!
//! ```text
//!  OT zone                                     |  one way (UDP)  |   DMZ
//!  device <-Modbus- Transmitter --datagrams--> | --------------> | Receiver -> Image -> replica
//!          (link.rs)  (transmit.rs)            |                 | (verify.rs) (image.rs) (receive.rs)
//! ```
//!
//! Pure parts (no socket, no tokio): [`datagram`] (the wire format, with sequence number,
//! source time, block id, values and tag), [`auth`] (HMAC-SHA256 or Ed25519), [`verify`] (the
//! receive side's state machine: bad tag, foreign, replayed, duplicate, reordered, gap) and
//! [`image`] (the replica and its staleness). I/O parts: [`link`] (the transmit side's device
//! access as a Modbus master, through `zonegate-modbus`), [`transmit`] (polls and sends, never
//! reads its UDP socket) and [`receive`] (reads datagrams, serves the read-only replica, writes
//! its own audit chain with `zonegate-audit`), and [`state`] (the replay window's position on
//! disk, so a restart does not reopen it). TLS, on both sides, is the gateway's
//! (`zonegate_gateway::mbaps`): one TLS stack in the build.

pub mod auth;
pub mod datagram;
pub mod image;
pub mod link;
pub mod receive;
pub mod state;
pub mod transmit;
pub mod verify;

pub use auth::{HmacKey, KeyError, TagKey, VerifyKey};
pub use datagram::{Datagram, DecodeError};
pub use image::{Applied, Image};
pub use link::{DeviceLink, LinkError};
pub use receive::{ReceiveAgent, ReceiveCounters, ReceiveError, ReceiveHandle, ReceiveOptions};
pub use state::{ReplayState, StateError};
pub use transmit::{TransmitError, TransmitStats, Transmitter};
pub use verify::{Outcome, Receiver, Rejection};
